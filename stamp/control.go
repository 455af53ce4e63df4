package stamp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"go.etcd.io/bbolt"

	"github.com/batonhq/baton/internal/jsonhttp"
)

const (
	limitControl = 8 << 20 // targets for every partition of the largest account fit
	maxWait      = 10 * time.Minute
)

func validOp(op string) error {
	switch op {
	case CtlFence, CtlFlushSend, CtlFlushReplay, CtlPromote, CtlUnfence, CtlDemote, CtlProtect, CtlSeed:
		return nil
	}
	return errBad("unknown control op %q; use fence, flush-send, flush-replay, promote, unfence, demote, protect or seed", op)
}

// controlBulk serves POST /v1/accounts/{a}/control/{op}.
func (s *Server) controlBulk(w http.ResponseWriter, r *http.Request) error {
	a, err := s.account(r.PathValue("account"))
	if err != nil {
		return err
	}
	op := r.PathValue("op")
	if err := validOp(op); err != nil {
		return err
	}
	var req ControlRequest
	if err := decodeBody(w, r, limitControl, &req, "ControlRequest"); err != nil {
		return err
	}
	var ps []int
	switch {
	case req.All:
		if len(req.Partitions) > 0 {
			return errBad("set either partitions or all, not both")
		}
		ps = allPartitions(a)
	case len(req.Partitions) == 0:
		return errBad("no partitions named; list them in \"partitions\" or set \"all\": true")
	default:
		if ps, err = checkPartitions(a, req.Partitions); err != nil {
			return err
		}
	}
	failed, err := s.injectControlFaults(w, r, op, a.spec.Account, ps)
	if err != nil {
		return err
	}
	for p := range failed {
		delete(req.Targets, p) // the op runs without the failed partitions
	}
	res, err := s.control(r.Context(), a, op, without(ps, failed), &req)
	if err != nil {
		return err
	}
	s.answerControl(w, a, op, withFailed(a, ps, res, failed))
	return nil
}

// answerControl answers a control call with its per-partition results.
func (s *Server) answerControl(w http.ResponseWriter, a *account, op string, res []ControlResult) {
	jsonhttp.WriteJSON(w, http.StatusOK, ControlResponse{
		Account: a.spec.Account,
		Op:      op,
		Stamp:   s.cfg.Name,
		Results: res,
	})
}

// without returns ps less the partitions in failed.
func without(ps []int, failed map[int]*apiError) []int {
	if len(failed) == 0 {
		return ps
	}
	out := make([]int, 0, len(ps))
	for _, p := range ps {
		if failed[p] == nil {
			out = append(out, p)
		}
	}
	return out
}

// withFailed merges the results of the partitions that ran with the
// refusals of those that failed on their own, in the order of ps.
func withFailed(a *account, ps []int, res []ControlResult, failed map[int]*apiError) []ControlResult {
	if len(failed) == 0 {
		return res
	}
	out := make([]ControlResult, 0, len(ps))
	for _, p := range ps {
		if e := failed[p]; e != nil {
			out = append(out, ControlResult{Partition: p, Status: a.parts[p].status(), Error: e.partitionError()})
			continue
		}
		out = append(out, res[0])
		res = res[1:]
	}
	return out
}

// controlOne serves POST /v1/accounts/{a}/partitions/{p}/{op}.
func (s *Server) controlOne(w http.ResponseWriter, r *http.Request) error {
	a, err := s.account(r.PathValue("account"))
	if err != nil {
		return err
	}
	pi, err := strconv.Atoi(r.PathValue("partition"))
	if err != nil {
		return errBad("partition %q in the path is not an integer", r.PathValue("partition"))
	}
	ps, err := checkPartitions(a, []int{pi})
	if err != nil {
		return err
	}
	op := r.PathValue("op")
	if err := validOp(op); err != nil {
		return err
	}
	body, err := readBody(w, r, limitControl)
	if err != nil {
		return err
	}
	var req ControlRequest
	if len(body) > 0 {
		if err := decodeJSON(body, &req, "ControlRequest"); err != nil {
			return err
		}
	}
	if len(req.Partitions) > 0 || req.All {
		return errBad("the per-partition route takes the partition from the path; "+
			"drop \"partitions\" and \"all\" or use /control/%s", op)
	}
	if err := s.injectFault(w, r, scopeControl, op, a.spec.Account, inSorted(ps)); err != nil {
		return err
	}
	res, err := s.control(r.Context(), a, op, ps, &req)
	if err != nil {
		return err
	}
	// The per-partition route answers a partition's refusal as its status.
	if pe := res[0].Error; pe != nil {
		return &apiError{status: pe.StatusCode, body: pe.ErrorBody}
	}
	s.answerControl(w, a, op, res)
	return nil
}

// control runs op on ps. A refusal of the whole call is its error; a
// partition refused on its own is answered in its result (Error).
func (s *Server) control(ctx context.Context, a *account, op string, ps []int,
	req *ControlRequest) ([]ControlResult, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	switch op {
	case CtlFence:
		return s.fence(a, ps, req)
	case CtlFlushSend:
		return s.flushSend(ctx, a, ps)
	case CtlFlushReplay:
		return s.flushReplay(ctx, a, ps, req)
	case CtlPromote:
		return s.promote(a, ps, req)
	case CtlUnfence:
		return s.unfence(ctx, a, ps, req)
	case CtlDemote:
		return s.demote(a, ps, req)
	case CtlProtect:
		return s.protect(a, ps, req)
	case CtlSeed:
		return s.seed(ctx, a, ps)
	}
	return nil, validOp(op)
}

// results answers each partition with the op's LSN and its status.
func results(a *account, ps []int, answer func(p *partition) (uint64, bool)) []ControlResult {
	out := make([]ControlResult, len(ps))
	for i, pi := range ps {
		p := a.parts[pi]
		p.mu.Lock()
		lsn, done := answer(p)
		out[i] = ControlResult{Partition: pi, LSN: lsn, Done: done, Status: p.statusLocked()}
		p.mu.Unlock()
	}
	return out
}

// persistLocked queues the config records of ps, which the caller holds
// locked, plus their LSN counters when counters is set. Queuing under the
// locks puts the record behind every write those partitions accepted
// before, so waiting for it also waits for them.
//
// If queuing fails the server is closing or its store failed; either way
// the in-memory change is moot, so callers do not roll it back.
func (s *Server) persistLocked(a *account, ps []int, counters bool) (*commitItem, error) {
	type rec struct {
		p              int
		cfg            []byte
		written, acked uint64
		ackedAt        time.Time
	}
	recs := make([]rec, len(ps))
	for i, pi := range ps {
		p := a.parts[pi]
		recs[i] = rec{
			p:       pi,
			cfg:     encodeConfig(p.role, p.fenced, p.shipping, p.epoch),
			written: p.next,
			acked:   p.lastAcked,
			ackedAt: p.lastAckedAt,
		}
	}
	name := a.spec.Account
	it := newItem(len(recs), func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := b.state.Put(stateKey(r.p, kindConfig), r.cfg); err != nil {
				return err
			}
			if !counters {
				continue
			}
			if err := putU64(b.state, r.p, kindWritten, r.written); err != nil {
				return err
			}
			if err := b.state.Put(stateKey(r.p, kindAcked), encodeAcked(r.acked, r.ackedAt)); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	return it, s.enqueue(it)
}

// stateChange is a control call that flips partition state and makes the
// flip durable before it answers: fence, unfence and promote.
type stateChange struct {
	op string
	// check runs under p's lock: it refuses the whole call (an *apiError),
	// or says whether p needs the flip (false: already done, answer the
	// same).
	check func(p *partition) (flip bool, err error)
	// flip changes p, under its lock.
	flip func(p *partition)
	// counters persists the LSN counters with the config (promote resets
	// them).
	counters bool
}

// changeState runs c on ps: lock, check every partition, flip those that
// need it, queue their records, unlock, wait until durable, and answer each
// partition's durable LSN. Every check runs before any flip, so a refusal
// changes nothing. Even with nothing flipped the (empty) record is a
// barrier: a repeated call still waits for the writes an earlier one let
// in.
func (s *Server) changeState(a *account, ps []int, c stateChange) ([]ControlResult, error) {
	it, err := s.flipLocked(a, ps, c)
	if err != nil {
		return nil, err
	}
	if err := s.waitItem(it); err != nil {
		return nil, fmt.Errorf("%s: %w", c.op, err)
	}
	return results(a, ps, durableLSN), nil
}

// flipLocked is changeState's part under the partition locks: check, flip,
// queue.
func (s *Server) flipLocked(a *account, ps []int, c stateChange) (*commitItem, error) {
	a.lockParts(ps)
	defer a.unlockParts(ps)
	var flips []int
	for _, pi := range ps {
		flip, err := c.check(a.parts[pi])
		if err != nil {
			return nil, err
		}
		if flip {
			flips = append(flips, pi)
		}
	}
	for _, pi := range flips {
		c.flip(a.parts[pi])
	}
	it, err := s.persistLocked(a, flips, c.counters)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.op, err)
	}
	return it, nil
}

// durableLSN answers a partition's last durable LSN.
func durableLSN(p *partition) (uint64, bool) { return p.durable.Load(), false }

// fence stops writes on ps and answers each one's final LSN once every write
// accepted before the fence is durable.
func (s *Server) fence(a *account, ps []int, req *ControlRequest) ([]ControlResult, error) {
	return s.changeState(a, ps, stateChange{
		op: CtlFence,
		check: func(p *partition) (bool, error) {
			if err := checkPrimaryLocked(s, a, p, CtlFence, req.Epoch); err != nil {
				return false, err
			}
			return !p.fenced, nil
		},
		flip: func(p *partition) { p.fenced = true },
	})
}

func checkPrimaryLocked(s *Server, a *account, p *partition, op string, epoch uint64) error {
	if p.role != RolePrimary {
		return errConflict("%s needs a primary partition; partition %d of account %q is secondary on stamp %s",
			op, p.id, a.spec.Account, s.cfg.Name)
	}
	if epoch != 0 && epoch != p.epoch {
		return errStale(p.epoch, "%s asked for epoch %d but partition %d of account %q is at epoch %d; "+
			"re-read the account's state", op, epoch, p.id, a.spec.Account, p.epoch)
	}
	return nil
}

// unfence rolls a fence back, unless the location service says the account
// has moved on: then unfencing would let two primaries take writes.
func (s *Server) unfence(ctx context.Context, a *account, ps []int, req *ControlRequest) ([]ControlResult, error) {
	loc, err := s.lookupLocation(ctx, a.spec.Account)
	if err != nil {
		return nil, err
	}
	return s.changeState(a, ps, stateChange{
		op: CtlUnfence,
		check: func(p *partition) (bool, error) {
			if err := checkPrimaryLocked(s, a, p, CtlUnfence, req.Epoch); err != nil {
				return false, err
			}
			if loc != nil && (loc.Epoch > p.epoch || loc.Primary != s.cfg.Name) {
				return false, errStale(p.epoch, "account was promoted elsewhere: the location service names %q "+
					"primary at epoch %d, partition %d here is at epoch %d; unfencing would make two primaries, "+
					"fail forward instead", loc.Primary, loc.Epoch, p.id, p.epoch)
			}
			return p.fenced, nil
		},
		flip: func(p *partition) { p.fenced = false },
	})
}

// locationRecord is the part of the location service's account record the
// unfence check needs.
type locationRecord struct {
	Primary string `json:"primary"`
	Epoch   uint64 `json:"epoch"`
}

// errNoLocation is a 404 from the location service: it has no record.
var errNoLocation = errors.New("no location record")

// lookupLocation asks the location service where the account lives. nil
// means no location service is configured or it has no record.
func (s *Server) lookupLocation(ctx context.Context, account string) (*locationRecord, error) {
	if s.cfg.LocationURL == "" {
		return nil, nil
	}
	base, path := trimSlash(s.cfg.LocationURL), "/v1/accounts/"+url.PathEscape(account)
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var rec locationRecord
	refusal := func(status int, _ http.Header, data []byte) error {
		if status == http.StatusNotFound {
			return errNoLocation
		}
		return errUnavailable("location service %s answered %d (%s); retry the unfence once it is healthy",
			base+path, status, data)
	}
	err := jsonhttp.Do(ctx, s.hc, http.MethodGet, base, path, nil, nil, &rec, refusal)
	var ae *apiError
	switch {
	case errors.Is(err, errNoLocation):
		return nil, nil
	case errors.As(err, &ae):
		return nil, ae
	case err != nil:
		return nil, errUnavailable("cannot confirm with the location service (%v) that account %q "+
			"was not promoted elsewhere; retry the unfence", err, account)
	}
	return &rec, nil
}

// flushSend ships everything pending on ps to the peer as one group and
// answers the acknowledged LSNs.
func (s *Server) flushSend(ctx context.Context, a *account, ps []int) ([]ControlResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.ctx, cancel)()

	// Holding shipMu keeps the background shipper out, so nothing is in
	// flight and lastSent == lastAcked for every partition.
	a.shipMu.Lock()
	defer a.shipMu.Unlock()
	ranges, err := s.takeFlushRanges(a, ps)
	if err != nil {
		return nil, err
	}
	if err := s.shipFlush(ctx, a, ranges); err != nil {
		return nil, err
	}
	return results(a, ps, func(p *partition) (uint64, bool) { return p.lastAcked, false }), nil
}

// takeFlushRanges checks that every partition of ps is a shipping primary
// and takes what each has pending: its range to ship, marked sent, with the
// flush's start recorded. The caller holds a.shipMu.
func (s *Server) takeFlushRanges(a *account, ps []int) ([]shipRange, error) {
	a.lockParts(ps)
	defer a.unlockParts(ps)
	for _, pi := range ps {
		p := a.parts[pi]
		if err := checkPrimaryLocked(s, a, p, CtlFlushSend, 0); err != nil {
			return nil, err
		}
		if !p.shipping {
			return nil, errConflict("partition %d of account %q was promoted on stamp %s and ships nowhere; "+
				"flush-send runs on the old primary", pi, a.spec.Account, s.cfg.Name)
		}
	}
	now := time.Now().UTC()
	var ranges []shipRange
	for _, pi := range ps {
		p := a.parts[pi]
		switch dur := p.durable.Load(); {
		case p.lastAcked < dur:
			ranges = append(ranges, shipRange{p: pi, from: p.lastAcked + 1, to: dur})
			p.lastSent = dur
			p.sendStartedAt, p.sendDoneAt = now, time.Time{}
		case p.sendDoneAt.IsZero():
			// The background shipper got there first: the flush is done
			// the moment it is asked.
			p.sendStartedAt, p.sendDoneAt = now, now
		}
	}
	return ranges, nil
}

// shipFlush ships a flush-send's ranges and records when the peer
// acknowledged them. What it could not ship is left to the background
// shipper.
func (s *Server) shipFlush(ctx context.Context, a *account, ranges []shipRange) error {
	if len(ranges) == 0 {
		return nil
	}
	if err := s.ship(ctx, a, ranges); err != nil {
		dirty := make([]int, len(ranges))
		for i, r := range ranges {
			dirty[i] = r.p
		}
		a.markShipDirty(dirty)
		return peerFailure(a.spec.Peer, err)
	}
	done := time.Now().UTC()
	for _, r := range ranges {
		p := a.parts[r.p]
		p.mu.Lock()
		p.sendDoneAt = done
		p.mu.Unlock()
	}
	return nil
}

// flushReplay sets replay targets on ps and, with WaitMillis, waits for
// replay (which keeps its configured pace) to reach them. A partition whose
// target is beyond what it received is refused on its own; the others go
// on.
func (s *Server) flushReplay(ctx context.Context, a *account, ps []int, req *ControlRequest) ([]ControlResult, error) {
	if req.WaitMillis < 0 || time.Duration(req.WaitMillis)*time.Millisecond > maxWait {
		return nil, errBad("wait_ms %d out of range; use 0..%d", req.WaitMillis, maxWait.Milliseconds())
	}
	in := inSorted(ps)
	for p := range req.Targets {
		if !in(p) {
			return nil, errBad("target given for partition %d, which the request does not name; add it to \"partitions\"", p)
		}
	}
	targets, refused, err := s.setReplayTargets(a, ps, req.Targets)
	if err != nil {
		return nil, err
	}
	reached := func() bool {
		for i, pi := range ps {
			if refused[i] != nil {
				continue
			}
			p := a.parts[pi]
			p.mu.Lock()
			ok := p.lastReplayed >= targets[i]
			p.mu.Unlock()
			if !ok {
				return false
			}
		}
		return true
	}
	if err := s.awaitReplay(ctx, a, time.Duration(req.WaitMillis)*time.Millisecond, reached); err != nil {
		return nil, err
	}
	i := 0
	out := results(a, ps, func(p *partition) (uint64, bool) {
		done := p.lastReplayed >= targets[i]
		i++
		return p.lastReplayed, done
	})
	for i := range out {
		if refused[i] != nil {
			out[i].LSN, out[i].Done, out[i].Error = 0, false, refused[i].partitionError()
		}
	}
	return out, nil
}

// setReplayTargets records each partition's replay target (its entry in
// targets, or everything received) and wakes the replayer. A target beyond
// what a partition received refuses that partition (refused[i]); a shipping
// primary refuses the whole call.
func (s *Server) setReplayTargets(a *account, ps []int,
	want map[int]uint64) (targets []uint64, refused []*apiError, err error) {
	targets, refused = make([]uint64, len(ps)), make([]*apiError, len(ps))
	a.lockParts(ps)
	defer a.unlockParts(ps)
	for i, pi := range ps {
		p := a.parts[pi]
		if p.role == RolePrimary && p.shipping {
			return nil, nil, errConflict("flush-replay runs on the secondary; "+
				"partition %d of account %q is the shipping primary on stamp %s", pi, a.spec.Account, s.cfg.Name)
		}
		t, ok := want[pi]
		if !ok {
			t = p.lastReceived
		}
		if t > p.lastReceived {
			e := newErr(http.StatusConflict, CodeBeyondReceived, "flush-replay target %d for partition %d "+
				"of account %q is beyond the %d entries received; flush-send on the primary first",
				t, pi, a.spec.Account, p.lastReceived)
			e.body.Epoch = p.epoch
			refused[i] = e
		}
		targets[i] = t
	}
	now := time.Now().UTC()
	var behind []int
	for i, pi := range ps {
		if refused[i] != nil {
			continue
		}
		p := a.parts[pi]
		if p.replayStartedAt.IsZero() || p.replayTarget != targets[i] {
			p.replayTarget, p.replayStartedAt, p.replayDoneAt = targets[i], now, time.Time{}
		}
		if p.lastReplayed >= p.replayTarget && p.replayDoneAt.IsZero() {
			p.replayDoneAt = now
		}
		if p.lastReplayed < p.replayTarget {
			behind = append(behind, pi)
		}
	}
	if len(behind) > 0 {
		// Normally already queued by the shipment that brought the entries;
		// marking again costs nothing and wakes a replayer waiting out a retry.
		a.markReplayDirty(behind)
	}
	return targets, refused, nil
}

// awaitReplay waits up to wait for reached to hold, waking on replay
// progress; it returns early, without error, when wait passes.
func (s *Server) awaitReplay(ctx context.Context, a *account, wait time.Duration, reached func() bool) error {
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		ch := a.progressCh() // taken before the check, so no wake-up is lost
		if reached() {
			return nil
		}
		select {
		case <-ch:
		case <-t.C:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("flush-replay wait: %w", ctx.Err())
		case <-s.stop:
			return errClosed
		}
	}
}

// promote makes the secondary partitions ps primary under req.Epoch.
func (s *Server) promote(a *account, ps []int, req *ControlRequest) ([]ControlResult, error) {
	if req.Epoch == 0 {
		return nil, errBad("promote needs \"epoch\": the new epoch, above the partitions' current one")
	}
	// recvMu keeps shipments out between the replay check and the role change.
	a.recvMu.Lock()
	defer a.recvMu.Unlock()
	return s.changeState(a, ps, stateChange{
		op:    CtlPromote,
		check: func(p *partition) (bool, error) { return s.checkPromotableLocked(a, p, req.Epoch) },
		flip: func(p *partition) {
			p.role, p.epoch, p.fenced, p.shipping = RolePrimary, req.Epoch, false, false
			p.next = p.lastReplayed
			p.durable.Store(p.lastReplayed)
			p.lastSent, p.lastAcked = p.lastReplayed, p.lastReplayed
		},
		counters: true,
	})
}

// checkPromotableLocked says whether partition p can become primary at
// epoch: false with no error when it already did (a repeated promote
// answers the same).
func (s *Server) checkPromotableLocked(a *account, p *partition, epoch uint64) (bool, error) {
	switch {
	case p.promotedLocked() && epoch == p.epoch:
		return false, nil
	case epoch < p.epoch || epoch == p.epoch && p.role == RoleSecondary:
		return false, errStale(p.epoch, "promote to epoch %d refused: partition %d of account %q is at epoch %d; "+
			"promote needs a higher epoch", epoch, p.id, a.spec.Account, p.epoch)
	case p.role == RolePrimary:
		return false, errConflict("partition %d of account %q is already primary at epoch %d on stamp %s; "+
			"promote runs on the secondary", p.id, a.spec.Account, p.epoch, s.cfg.Name)
	case p.lastReplayed != p.lastReceived:
		return false, newErr(http.StatusConflict, CodeNotReplayed,
			"partition %d of account %q has replayed %d of %d received entries; flush-replay first",
			p.id, a.spec.Account, p.lastReplayed, p.lastReceived)
	}
	return true, nil
}
