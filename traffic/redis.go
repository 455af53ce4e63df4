package traffic

import (
	"context"
	"crypto/tls"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batonhq/baton/location"
)

// RedisRoute is where a Redis account's writes go: its primary site and
// each shard's server there.
type RedisRoute struct {
	Site      string
	URL       string // the site's registered URL, redis://SITE
	Epoch     uint64
	Endpoints []string
}

// LocationRoute resolves a Redis account's route from the location
// service, as an application does.
func LocationRoute(loc *location.Client, account string) func(context.Context) (RedisRoute, error) {
	return func(ctx context.Context) (RedisRoute, error) {
		a, err := loc.Lookup(ctx, account)
		if err != nil {
			return RedisRoute{}, err
		}
		return RedisRoute{Site: a.Primary, URL: a.PrimaryURL, Epoch: a.Epoch, Endpoints: a.PrimaryEndpoints}, nil
	}
}

// RedisConfig configures a RedisWriter.
type RedisConfig struct {
	Account string
	// Resolve answers the account's current route (LocationRoute).
	Resolve func(context.Context) (RedisRoute, error)
	// TLS and Password are how the servers are called.
	TLS      *tls.Config
	Password string
}

// RedisWriter writes unique keys to every shard of a Redis account, one
// writer per shard, with plain SETs: a SET answered OK is acknowledged
// (an Ack: Partition the shard, Stamp the site). A SET refused (READONLY:
// the shard's primary was demoted by a failover) or failed on the way is
// not; the writer resolves the route again and goes on. A write held by a
// fence waits for its answer, as an application's would.
type RedisWriter struct {
	cfg     RedisConfig
	mu      sync.Mutex
	acks    []Ack
	clients map[string]*redis.Client
	stop    chan struct{}
	wg      sync.WaitGroup
	acked   atomic.Int64
	errs    atomic.Int64
}

// NewRedis returns a writer; nothing runs until Start.
func NewRedis(cfg RedisConfig) *RedisWriter {
	return &RedisWriter{cfg: cfg, clients: map[string]*redis.Client{}, stop: make(chan struct{})}
}

// Start resolves the route and starts a writer per shard.
func (w *RedisWriter) Start(ctx context.Context) error {
	rt, err := w.cfg.Resolve(ctx)
	if err != nil {
		return fmt.Errorf("resolve %s: %w", w.cfg.Account, err)
	}
	for shard := range rt.Endpoints {
		w.wg.Go(func() { w.write(shard, rt) })
	}
	return nil
}

// write is shard's writer: keys k-<shard>-<n>, in order, until Stop.
func (w *RedisWriter) write(shard int, rt RedisRoute) {
	ctx := context.Background()
	for n := 0; ; n++ {
		select {
		case <-w.stop:
			return
		default:
		}
		key := fmt.Sprintf("%s-%d-%d", w.cfg.Account, shard, n)
		err := w.client(rt.Endpoints[shard]).Set(ctx, key, ValueFor(key), 0).Err()
		if err == nil {
			w.mu.Lock()
			w.acks = append(w.acks, Ack{Account: w.cfg.Account, Key: key, Value: ValueFor(key), Stamp: rt.Site,
				StampURL: rt.Endpoints[shard], Partition: shard, At: time.Now()})
			w.mu.Unlock()
			w.acked.Add(1)
			continue
		}
		w.errs.Add(1)
		if again, rerr := w.cfg.Resolve(ctx); rerr == nil && len(again.Endpoints) == len(rt.Endpoints) {
			rt = again
		}
	}
}

// client is the (cached) client of the server at addr; reads wait long:
// a write held by a fence is answered when the fence ends.
func (w *RedisWriter) client(addr string) *redis.Client {
	w.mu.Lock()
	defer w.mu.Unlock()
	c, ok := w.clients[addr]
	if !ok {
		var tlsCfg *tls.Config
		if w.cfg.TLS != nil {
			tlsCfg = w.cfg.TLS.Clone()
		}
		c = redis.NewClient(&redis.Options{Addr: addr, TLSConfig: tlsCfg, Password: w.cfg.Password,
			ReadTimeout: 15 * time.Minute, MaxRetries: -1})
		w.clients[addr] = c
	}
	return c
}

// AckCount is how many writes were acknowledged so far.
func (w *RedisWriter) AckCount() int64 { return w.acked.Load() }

// Stop ends the writers (each after its write in flight) and answers the
// acknowledged writes.
func (w *RedisWriter) Stop() []Ack {
	close(w.stop)
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	for addr, c := range w.clients {
		_ = c.Close()
		delete(w.clients, addr)
	}
	return w.acks
}

// AuditRedis reads every acknowledged key back from the account's current
// primaries (cfg.Resolve) and counts the lost and the changed ones; an
// audit of nothing acknowledged fails (AuditReport.Err), as for stamps.
func AuditRedis(ctx context.Context, cfg RedisConfig, acks []Ack) (AuditReport, error) {
	start := time.Now()
	rep := AuditReport{Account: cfg.Account, Acks: len(acks), Checked: len(acks)} // rep.Err fails 0 acks
	rt, err := cfg.Resolve(ctx)
	if err != nil {
		return rep, fmt.Errorf("audit %s: resolve: %w", cfg.Account, err)
	}
	rep.Stamp, rep.StampURL, rep.Epoch = rt.Site, rt.URL, rt.Epoch
	w := NewRedis(cfg)
	defer w.Stop()
	byShard := map[int][]Ack{}
	for _, a := range acks {
		byShard[a.Partition] = append(byShard[a.Partition], a)
	}
	shards := make([]int, 0, len(byShard))
	for s := range byShard {
		shards = append(shards, s)
	}
	sort.Ints(shards)
	for _, s := range shards {
		if s >= len(rt.Endpoints) {
			return rep, fmt.Errorf("audit %s: shard %d acknowledged, but the account has %d", cfg.Account, s, len(rt.Endpoints))
		}
		if err := auditShard(ctx, w.client(rt.Endpoints[s]), byShard[s], &rep); err != nil {
			return rep, fmt.Errorf("audit %s shard %d on %s: %w", cfg.Account, s, rt.Endpoints[s], err)
		}
	}
	rep.Elapsed = time.Since(start)
	return rep, nil
}

// auditShard reads a shard's acknowledged keys, 500 at a time.
func auditShard(ctx context.Context, c *redis.Client, acks []Ack, rep *AuditReport) error {
	for i := 0; i < len(acks); i += 500 {
		batch := acks[i:min(i+500, len(acks))]
		keys := make([]string, len(batch))
		for j, a := range batch {
			keys[j] = a.Key
		}
		vals, err := c.MGet(ctx, keys...).Result()
		if err != nil {
			return err
		}
		for j, a := range batch {
			got, ok := vals[j].(string)
			switch {
			case !ok:
				rep.Lost++
				if len(rep.LostKeys) < 20 {
					rep.LostKeys = append(rep.LostKeys, a.Key)
				}
			case got != a.Value:
				rep.Mismatched++
				if len(rep.Mismatches) < 20 {
					rep.Mismatches = append(rep.Mismatches, Mismatch{Key: a.Key, Want: a.Value, Got: got})
				}
			}
		}
	}
	return nil
}
