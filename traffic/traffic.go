// Package traffic generates client write traffic against an account and
// judges afterwards whether any acknowledged write was lost. It behaves like
// a well-written storage client: it resolves the account's primary and epoch
// from the location service, sends the epoch with every write, follows
// redirects (421 not_primary, 409 stale_epoch) by re-resolving, and retries
// the same key and value through fencing and transient faults.
//
// Every acknowledged write is recorded (Ack); Audit later reads all of them
// back from the account's current primary. A write that was never
// acknowledged (e.g. in flight when Stop was called) is not the system's
// promise and is never counted as lost.
package traffic

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/batonhq/baton/internal/clock"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// Config configures a Generator.
type Config struct {
	Location *location.Client
	Account  string
	// Rate is the total target of new keys per second across all workers;
	// 0 means as fast as the workers can go.
	Rate float64
	// Workers is the number of concurrent writers (default 8).
	Workers int
	// RunID prefixes every key so runs never collide (default: random).
	RunID string
	// HTTPClient is used for stamp calls (default: the Location client's).
	HTTPClient *http.Client
	// MaxBackoff bounds the pause between retries of one write (default 100ms).
	MaxBackoff time.Duration
	// AckLog, if set, receives every ack as one JSON line (see ReadAcks). The
	// generator serialises writes to it.
	AckLog io.Writer
	Logger *zap.Logger
}

// Ack is one acknowledged write: what the stamp promised to keep.
type Ack struct {
	Account   string    `json:"account"`
	Key       string    `json:"key"`
	Value     string    `json:"value"`
	Stamp     string    `json:"stamp"`
	StampURL  string    `json:"stamp_url"`
	Epoch     uint64    `json:"epoch"`
	Partition int       `json:"partition"`
	LSN       uint64    `json:"lsn"`
	At        time.Time `json:"at"`
}

// Retry reasons counted in Stats.Retries.
const (
	ReasonNotPrimary  = "not_primary"
	ReasonStaleEpoch  = "stale_epoch"
	ReasonFenced      = "fenced"
	ReasonInjected    = "injected_fault"
	ReasonConnection  = "connection"
	ReasonServerError = "server_error" // other 5xx / 429
	ReasonOther       = "other"        // unexpected 4xx, retried with backoff
)

// Stats counts what a Generator did.
type Stats struct {
	RunID     string           `json:"run_id"`
	Elapsed   time.Duration    `json:"elapsed"`
	Attempts  int64            `json:"attempts"`  // write calls sent
	Acks      int64            `json:"acks"`      // writes acknowledged
	Abandoned int64            `json:"abandoned"` // writes in flight at Stop: never acknowledged, not judged
	Retries   map[string]int64 `json:"retries"`   // by reason
	Redirects int64            `json:"redirects"` // 421s followed
	Resolves  int64            `json:"resolves"`  // location lookups
	// AcksByStamp counts acknowledgements per stamp name.
	AcksByStamp map[string]int64 `json:"acks_by_stamp"`
	// LastError is the most recent error that caused a retry, for diagnosis.
	LastError string `json:"last_error,omitempty"`
}

// route is where writes currently go.
type route struct {
	url   string
	epoch uint64
	gen   uint64 // bumps on every resolve, to coalesce concurrent re-resolves
	at    time.Time
}

// Generator writes unique keys to an account. Create with New.
type Generator struct {
	cfg Config
	log *zap.Logger
	hc  *http.Client

	mu      sync.Mutex // guards rt, clients, acks, ackLog, lastErr, retries
	rt      route
	clients map[string]*stamp.Client
	acks    []Ack
	retries map[string]int64
	lastErr string
	logErr  error

	resolveMu sync.Mutex // one location lookup at a time

	attempts, acked, abandoned, redirects, resolves atomic.Int64

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started time.Time
	ended   time.Time // guarded by mu
	stopped atomic.Bool
	stats   Stats
}

// New returns a Generator; nothing runs until Start.
func New(cfg Config) *Generator {
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 100 * time.Millisecond
	}
	if cfg.RunID == "" {
		cfg.RunID = newRunID()
	}
	hc := cfg.HTTPClient
	if hc == nil && cfg.Location != nil {
		hc = cfg.Location.HTTPClient()
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Generator{cfg: cfg, log: log, hc: hc, clients: map[string]*stamp.Client{}, retries: map[string]int64{}}
}

// RunID is the prefix of every key this generator writes.
func (g *Generator) RunID() string { return g.cfg.RunID }

// ValueFor is the value written for key. It is derived from the key so a
// reader can check any stored value without the ack log.
func ValueFor(key string) string {
	h := fnv.New64a()
	_, _ = h.Write([]byte(key))
	return "v1:" + key + ":" + strconv.FormatUint(h.Sum64(), 16)
}

// Start resolves the account (failing fast if it is unknown) and starts the
// workers. They run until Stop or until ctx is done.
func (g *Generator) Start(ctx context.Context) error {
	if g.cfg.Location == nil || g.cfg.Account == "" {
		return errors.New("traffic: Config.Location and Config.Account are required")
	}
	if _, err := g.resolve(ctx, 0); err != nil {
		return err
	}
	ctx, g.cancel = context.WithCancel(ctx)
	var lim *rate.Limiter
	if g.cfg.Rate > 0 {
		// A burst of one worker-round keeps the rate smooth without starving
		// workers at low rates.
		lim = rate.NewLimiter(rate.Limit(g.cfg.Rate), g.cfg.Workers)
	}
	g.started = time.Now()
	for w := range g.cfg.Workers {
		g.wg.Add(1)
		go g.worker(ctx, w, lim)
	}
	return nil
}

// Stop stops the workers and returns the final stats. Writes still in flight
// are abandoned: they were never acknowledged, so they are not judged. Stop
// is idempotent.
func (g *Generator) Stop() Stats {
	if g.stopped.Swap(true) {
		return g.stats
	}
	if g.cancel != nil {
		g.cancel()
	}
	g.wg.Wait()
	g.mu.Lock()
	g.ended = time.Now()
	g.mu.Unlock()
	g.stats = g.Stats()
	return g.stats
}

// Err is the first error writing the ack log, if any.
func (g *Generator) Err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.logErr
}

// Stats returns counters so far (safe while running).
func (g *Generator) Stats() Stats {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := Stats{
		RunID:       g.cfg.RunID,
		Attempts:    g.attempts.Load(),
		Acks:        g.acked.Load(),
		Abandoned:   g.abandoned.Load(),
		Redirects:   g.redirects.Load(),
		Resolves:    g.resolves.Load(),
		Retries:     make(map[string]int64, len(g.retries)),
		AcksByStamp: map[string]int64{},
		LastError:   g.lastErr,
	}
	switch {
	case !g.ended.IsZero():
		s.Elapsed = g.ended.Sub(g.started)
	case !g.started.IsZero():
		s.Elapsed = time.Since(g.started)
	}
	for k, v := range g.retries {
		s.Retries[k] = v
	}
	for _, a := range g.acks {
		s.AcksByStamp[a.Stamp]++
	}
	return s
}

// Acked returns a copy of every acknowledged write so far, in ack order.
func (g *Generator) Acked() []Ack {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]Ack(nil), g.acks...)
}

// AckCount is the number of acknowledged writes so far (cheap).
func (g *Generator) AckCount() int64 { return g.acked.Load() }

func (g *Generator) worker(ctx context.Context, w int, lim *rate.Limiter) {
	defer g.wg.Done()
	for seq := 1; ; seq++ {
		if lim != nil {
			if err := lim.Wait(ctx); err != nil {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
		key := g.cfg.RunID + "-" + strconv.Itoa(w) + "-" + strconv.Itoa(seq)
		if !g.write(ctx, key, ValueFor(key)) {
			g.abandoned.Add(1)
			return
		}
	}
}

func (g *Generator) client(url string) *stamp.Client {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.clients[url]
	if !ok {
		c = stamp.NewClient(url, g.hc)
		g.clients[url] = c
	}
	return c
}

func (g *Generator) current() route {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.rt
}

// minResolveInterval bounds how often a fenced or failing stamp makes the
// workers ask the location service again. Low enough to notice a move fast,
// high enough not to hammer the location service from every worker.
const minResolveInterval = 20 * time.Millisecond

// resolve looks the account up unless another worker already did so since
// seenGen (coalescing: one lookup serves every worker that saw the same
// stale route).
func (g *Generator) resolve(ctx context.Context, seenGen uint64) (route, error) {
	g.resolveMu.Lock()
	defer g.resolveMu.Unlock()
	if cur := g.current(); cur.gen > seenGen {
		return cur, nil
	}
	g.resolves.Add(1)
	a, err := g.cfg.Location.Lookup(ctx, g.cfg.Account)
	if err != nil {
		return route{}, fmt.Errorf("resolve account %s: %w", g.cfg.Account, err)
	}
	if a.PrimaryURL == "" {
		return route{}, fmt.Errorf("resolve account %s: primary stamp %s has no registered URL", g.cfg.Account, a.Primary)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rt = route{url: a.PrimaryURL, epoch: a.Epoch, gen: g.rt.gen + 1, at: time.Now()}
	return g.rt, nil
}

// refresh re-resolves if the route rt is stale enough; on a lookup error it
// keeps rt (the location service being briefly unreachable must not stop
// the retry loop).
func (g *Generator) refresh(ctx context.Context, rt route, force bool) route {
	cur := g.current()
	if cur.gen > rt.gen {
		return cur
	}
	if !force && time.Since(cur.at) < minResolveInterval {
		return rt
	}
	nr, err := g.resolve(ctx, rt.gen)
	if err != nil {
		if ctx.Err() == nil {
			g.noteErr(err)
		}
		return rt
	}
	return nr
}

func (g *Generator) noteRetry(reason string, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.retries[reason]++
	g.lastErr = err.Error()
}

func (g *Generator) noteErr(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.lastErr = err.Error()
}

func (g *Generator) record(a Ack) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.acks = append(g.acks, a)
	g.acked.Add(1)
	if g.cfg.AckLog != nil && g.logErr == nil {
		b, err := json.Marshal(a)
		if err == nil {
			b = append(b, '\n')
			_, err = g.cfg.AckLog.Write(b)
		}
		if err != nil {
			g.logErr = fmt.Errorf("write ack log: %w", err)
		}
	}
}

func classify(err error) (reason string, ae *stamp.APIError) {
	if errors.As(err, &ae) {
		switch {
		case ae.Code == stamp.CodeNotPrimary || ae.Status == http.StatusMisdirectedRequest:
			return ReasonNotPrimary, ae
		case ae.Code == stamp.CodeStaleEpoch:
			return ReasonStaleEpoch, ae
		case ae.Code == stamp.CodeFenced:
			return ReasonFenced, ae
		case ae.Code == stamp.CodeInjected:
			return ReasonInjected, ae
		case ae.Retryable():
			return ReasonServerError, ae
		}
		return ReasonOther, ae
	}
	return ReasonConnection, nil
}

func (g *Generator) backoff(ctx context.Context, attempt int) bool {
	d := time.Millisecond << min(attempt, 10)
	d = min(d, g.cfg.MaxBackoff)
	d = d/2 + time.Duration(mrand.Int64N(int64(d/2)+1)) // jitter so workers do not retry in lockstep
	return clock.Sleep(ctx, d)
}

// write puts key=value until it is acknowledged; false if ctx ended first.
func (g *Generator) write(ctx context.Context, key, value string) bool {
	rt := g.current()
	target := rt.url // may differ from rt.url while following a 421's hint
	for attempt := 0; ; attempt++ {
		if ctx.Err() != nil {
			return false
		}
		g.attempts.Add(1)
		res, err := g.client(target).Put(ctx, g.cfg.Account, key, value, rt.epoch)
		if err == nil {
			g.record(Ack{
				Account: g.cfg.Account, Key: key, Value: value,
				Stamp: res.Stamp, StampURL: target, Epoch: res.Epoch,
				Partition: res.Partition, LSN: res.LSN, At: time.Now().UTC(),
			})
			return true
		}
		if ctx.Err() != nil {
			return false // our own cancellation, not the stamp's failure
		}
		reason, ae := classify(err)
		g.noteRetry(reason, err)
		switch reason {
		case ReasonNotPrimary:
			g.redirects.Add(1)
			refused := target
			rt = g.refresh(ctx, rt, true)
			target = rt.url
			// The location service may not have been moved yet (the
			// failover updates it last); then the stamp's own hint is the
			// best guess at who is primary.
			if target == refused && ae.Primary != "" && ae.Primary != refused {
				target = ae.Primary
			}
			// Redirect loops while a failover is half done are possible;
			// back off after the first hop so they cost little.
			if attempt > 0 && !g.backoff(ctx, attempt) {
				return false
			}
		case ReasonStaleEpoch:
			rt = g.refresh(ctx, rt, true)
			target = rt.url
			if attempt > 0 && !g.backoff(ctx, attempt) {
				return false
			}
		default:
			// Fenced, injected, connection or server error: same key, same
			// value, after a short pause; look again in case the account has
			// moved meanwhile (a fenced old primary stays fenced forever).
			if !g.backoff(ctx, attempt) {
				return false
			}
			nr := g.refresh(ctx, rt, false)
			if nr.gen != rt.gen {
				rt, target = nr, nr.url
			}
		}
	}
}

// ReadAcks reads a JSONL ack log written through Config.AckLog.
func ReadAcks(r io.Reader) ([]Ack, error) {
	dec := json.NewDecoder(r)
	var out []Ack
	for line := 1; ; line++ {
		var a Ack
		err := dec.Decode(&a)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, fmt.Errorf("ack log record %d: %w", line, err)
		}
		out = append(out, a)
	}
}

// Violation is one split-brain finding.
type Violation struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// Split-brain violation kinds.
const (
	// KindKeyTwoStamps: one key acknowledged by two stamps under one epoch.
	KindKeyTwoStamps = "key_two_stamps_same_epoch"
	// KindLSNTwoKeys: one (stamp, epoch, partition, LSN) acknowledged for two keys.
	KindLSNTwoKeys = "lsn_two_keys"
	// KindPartitionTwoPrimaries: two stamps acknowledged writes for the same
	// partition under the same epoch, i.e. two primaries at once.
	KindPartitionTwoPrimaries = "partition_two_primaries_same_epoch"
)

// CheckSplitBrain looks for evidence in acks that two stamps acted as
// primary at once, or that a stamp gave one log position to two writes.
// Violations are sorted for stable output.
func CheckSplitBrain(acks []Ack) []Violation {
	type keyEpoch struct {
		key   string
		epoch uint64
	}
	type pos struct {
		stamp     string
		epoch     uint64
		partition int
		lsn       uint64
	}
	type partEpoch struct {
		partition int
		epoch     uint64
	}
	keyStamp := map[keyEpoch]string{}
	lsnKey := map[pos]string{}
	partStamp := map[partEpoch]string{}
	seen := map[string]bool{}
	var out []Violation
	add := func(kind, msg string) {
		if !seen[kind+msg] {
			seen[kind+msg] = true
			out = append(out, Violation{Kind: kind, Message: msg})
		}
	}
	for _, a := range acks {
		ke := keyEpoch{a.Key, a.Epoch}
		if s, ok := keyStamp[ke]; ok && s != a.Stamp {
			add(KindKeyTwoStamps, fmt.Sprintf("key %s acknowledged by %s and %s at epoch %d", a.Key, s, a.Stamp, a.Epoch))
		} else if !ok {
			keyStamp[ke] = a.Stamp
		}
		p := pos{a.Stamp, a.Epoch, a.Partition, a.LSN}
		if k, ok := lsnKey[p]; ok && k != a.Key {
			add(KindLSNTwoKeys, fmt.Sprintf("%s epoch %d partition %d LSN %d acknowledged for both %s and %s", a.Stamp, a.Epoch, a.Partition, a.LSN, k, a.Key))
		} else if !ok {
			lsnKey[p] = a.Key
		}
		pe := partEpoch{a.Partition, a.Epoch}
		if s, ok := partStamp[pe]; ok && s != a.Stamp {
			add(KindPartitionTwoPrimaries, fmt.Sprintf("partition %d took writes on both %s and %s at epoch %d", a.Partition, s, a.Stamp, a.Epoch))
		} else if !ok {
			partStamp[pe] = a.Stamp
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Message < out[j].Message
	})
	return out
}

// newRunID is a random key prefix, so that runs never collide.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:]) // crypto/rand never fails on supported platforms
	return "r" + hex.EncodeToString(b[:])
}
