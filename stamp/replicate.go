package stamp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/jsonhttp"
)

const (
	// maxShipEntries bounds one background shipment across all partitions;
	// partitions left over stay dirty for the next round.
	maxShipEntries = 100000
	// maxShipBytes splits a shipment (a flush-send can be arbitrarily large)
	// into requests well under the receiver's body limit.
	maxShipBytes = 32 << 20

	shipTimeout    = 30 * time.Second
	minShipBackoff = 50 * time.Millisecond
	maxShipBackoff = 2 * time.Second
)

// shipRange is one partition's entries [from, to] to ship.
type shipRange struct {
	p        int
	from, to uint64
}

// shipLoop is the account's background shipper: it wakes when writes
// commit and ships dirty partitions until none is behind, backing off
// (and ignoring new wake-ups) while the peer fails.
func (s *Server) shipLoop(a *account) {
	defer s.wg.Done()
	// Heartbeats go out from heartbeatLoop, for every account at once; this
	// slower tick only makes sure nothing dirty waits for a wake-up.
	sweep := time.NewTicker(4 * s.cfg.HeartbeatInterval)
	defer sweep.Stop()
	var backoff time.Duration
	for {
		if backoff > 0 {
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-s.stop:
				t.Stop()
				return
			}
		} else {
			select {
			case <-a.shipKick:
			case <-sweep.C:
			case <-s.stop:
				return
			}
		}
		more, err := s.shipOnce(a)
		if err != nil {
			backoff = min(max(2*backoff, minShipBackoff), maxShipBackoff)
			if s.ctx.Err() == nil {
				s.log.Warn("shipment failed; backing off", zap.String("account", a.spec.Account),
					zap.String("peer", a.spec.Peer), zap.Duration("backoff", backoff), zap.Error(err))
			}
			continue
		}
		backoff = 0
		if more {
			kick(a.shipKick)
		}
	}
}

// shipOnce ships up to ReplicationBatch entries of every dirty partition in
// one shipment. It reports whether partitions were left dirty.
func (s *Server) shipOnce(a *account) (bool, error) {
	a.shipMu.Lock()
	defer a.shipMu.Unlock()
	dirty := a.takeDirty(&a.shipDirty)
	var ranges []shipRange
	total := 0
	for i, pi := range dirty {
		if total >= maxShipEntries {
			a.markShipDirty(dirty[i:])
			break
		}
		p := a.parts[pi]
		p.mu.Lock()
		if p.role != RolePrimary || !p.shipping {
			p.mu.Unlock()
			continue
		}
		from := p.lastSent + 1
		to := min(p.durable.Load(), p.lastSent+uint64(s.cfg.ReplicationBatch))
		if from > to {
			p.mu.Unlock()
			continue
		}
		p.lastSent = to
		p.mu.Unlock()
		ranges = append(ranges, shipRange{p: pi, from: from, to: to})
		total += int(to - from + 1)
	}
	if len(ranges) == 0 {
		return false, nil
	}
	err := s.ship(s.ctx, a, ranges)
	// Re-mark partitions still behind: writes committed during the shipment,
	// or the rest beyond ReplicationBatch, or everything after a failure.
	var behind []int
	for _, r := range ranges {
		p := a.parts[r.p]
		p.mu.Lock()
		if p.lastAcked < p.durable.Load() {
			behind = append(behind, r.p)
		}
		p.mu.Unlock()
	}
	a.addDirty(&a.shipDirty, behind)
	if err != nil {
		return false, err
	}
	return len(behind) > 0, nil
}

// ship sends ranges to the peer (in as few requests as the size limit
// allows, one after the other), then records and persists the acks. The
// caller holds a.shipMu and has set each partition's lastSent to its range
// end. On failure lastSent is rewound to lastAcked so the next attempt
// resends from the first unacknowledged entry.
func (s *Server) ship(ctx context.Context, a *account, ranges []shipRange) error {
	err := s.shipChunks(ctx, a, ranges)
	if err != nil {
		for _, r := range ranges {
			p := a.parts[r.p]
			p.mu.Lock()
			p.lastSent = p.lastAcked
			p.mu.Unlock()
		}
	}
	return err
}

func (s *Server) shipChunks(ctx context.Context, a *account, ranges []shipRange) error {
	var entries [][]Entry
	if err := s.db.View(func(tx *bbolt.Tx) error {
		entries = make([][]Entry, len(ranges))
		for i, r := range ranges {
			es, err := readLog(tx, a.spec.Account, r.p, r.from, r.to)
			if err != nil {
				return err
			}
			entries[i] = es
		}
		return nil
	}); err != nil {
		return fmt.Errorf("read log to ship: %w", err)
	}
	req := &ReplicateRequest{Account: a.spec.Account, FromStamp: s.cfg.Name}
	report := s.addReport(a, req)
	size := 0
	send := func() error {
		if len(req.Partitions) == 0 {
			return nil
		}
		resp, err := s.postReplicate(ctx, a.spec.Peer, req)
		if err != nil {
			return err
		}
		if err := s.recordAcks(a, req, resp); err != nil {
			return err
		}
		report()
		req.Partitions, req.Written, size, report = nil, nil, 0, func() {}
		return nil
	}
	for i, r := range ranges {
		es := entries[i]
		start := 0
		for j := range es {
			size += len(es[j].Key) + len(es[j].Value) + 64
			if size >= maxShipBytes {
				req.Partitions = append(req.Partitions, PartitionShipment{Partition: r.p, Entries: es[start : j+1]})
				start = j + 1
				if err := send(); err != nil {
					return err
				}
			}
		}
		if start < len(es) {
			req.Partitions = append(req.Partitions, PartitionShipment{Partition: r.p, Entries: es[start:]})
		}
	}
	return send()
}

// addReport puts into req the primary's LastWritten of every shipping
// partition whose value changed since it was last reported, stamped with the
// time, and returns the function that marks them reported once the peer
// answered.
func (s *Server) addReport(a *account, req *ReplicateRequest) (reported func()) {
	type rep struct {
		p *partition
		w uint64
	}
	var reps []rep
	for _, p := range a.parts {
		p.mu.Lock()
		if p.role == RolePrimary && p.shipping {
			if w := p.durable.Load(); w != p.reported {
				reps = append(reps, rep{p, w})
			}
		}
		p.mu.Unlock()
	}
	req.SentAt = time.Now().UTC()
	if len(reps) > 0 {
		req.Written = make(map[int]uint64, len(reps))
		for _, r := range reps {
			req.Written[r.p.id] = r.w
		}
	}
	return func() {
		for _, r := range reps {
			r.p.mu.Lock()
			r.p.reported = max(r.p.reported, r.w)
			r.p.mu.Unlock()
		}
		a.dirtyMu.Lock()
		a.lastReport = req.SentAt
		a.dirtyMu.Unlock()
	}
}

// recordAcks advances lastAcked to what the peer acknowledged and persists
// it, so a restart does not resend what the peer already has.
func (s *Server) recordAcks(a *account, req *ReplicateRequest, resp *ReplicateResponse) error {
	now := time.Now().UTC()
	type ack struct {
		p   int
		lsn uint64
	}
	acks := make([]ack, 0, len(req.Partitions))
	for _, ps := range req.Partitions {
		last := ps.Entries[len(ps.Entries)-1].LSN
		got, ok := resp.Acks[ps.Partition]
		if !ok || got < last {
			return fmt.Errorf("peer acknowledged partition %d up to %d (present: %v), shipped up to %d",
				ps.Partition, got, ok, last)
		}
		p := a.parts[ps.Partition]
		p.mu.Lock()
		if last > p.lastAcked {
			p.lastAcked = last
		}
		p.lastAckedAt = now
		acks = append(acks, ack{ps.Partition, p.lastAcked})
		p.mu.Unlock()
	}
	name := a.spec.Account
	return s.commit(newItem(len(acks), func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		for _, k := range acks {
			if err := b.state.Put(stateKey(k.p, kindAcked), encodeAcked(k.lsn, now)); err != nil {
				return err
			}
		}
		return nil
	}, nil))
}

// postReplicate sends one shipment to peer after the configured WAN delay.
// A refusal is the peer's *APIError.
func (s *Server) postReplicate(ctx context.Context, peer string, req *ReplicateRequest) (*ReplicateResponse, error) {
	if d := s.cfg.ReplicationDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	// A hung peer must not hold shipMu (and so flush-send) for long.
	ctx, cancel := context.WithTimeout(ctx, shipTimeout)
	defer cancel()
	var out ReplicateResponse
	if err := NewClient(peer, s.hc).do(ctx, http.MethodPost, "/v1/internal/replicate", nil, req, &out); err != nil {
		return nil, fmt.Errorf("ship to %s: %w", peer, err)
	}
	return &out, nil
}

// peerFailure turns a failed shipment into the answer of a control call.
func peerFailure(peer string, err error) error {
	var ae *APIError
	if errors.As(err, &ae) && ae.Status < 500 {
		return errConflict("peer %s refused the shipment: %s", peer, ae.Message)
	}
	return errUnavailable("peer %s is unreachable or failing (%v); retry once it is back", peer, err)
}

// replicate receives a shipment on a secondary: it checks the shipment,
// keeps what is new in it durably, records the source's report of what it
// wrote, and acknowledges what each partition has received.
func (s *Server) replicate(w http.ResponseWriter, r *http.Request) error {
	var req ReplicateRequest
	if err := decodeBody(w, r, limitReplicate, &req, "ReplicateRequest"); err != nil {
		return err
	}
	a, err := s.account(req.Account)
	if err != nil {
		return err
	}
	if err := s.refuseShipment(w, r, a); err != nil {
		return err
	}
	shipped, err := s.checkShipment(a, &req)
	if err != nil {
		return err
	}
	involves := func(q int) bool { return shipped[q] }
	if err := s.injectFault(w, r, scopeReplication, "", a.spec.Account, involves); err != nil {
		return err
	}
	a.recvMu.Lock()
	defer a.recvMu.Unlock()
	fresh, err := s.freshEntries(a, &req)
	if err != nil {
		return err
	}
	if err := s.receive(a, fresh); err != nil {
		return err
	}
	a.recordReport(&req)
	jsonhttp.WriteJSON(w, http.StatusOK, a.acks(&req))
	return nil
}

// checkShipment refuses a shipment that names a partition the account does
// not have, names one twice, or carries entries that are not contiguous and
// valid. It returns the partitions shipped.
func (s *Server) checkShipment(a *account, req *ReplicateRequest) (map[int]bool, error) {
	shipped := make(map[int]bool, len(req.Partitions))
	for _, ps := range req.Partitions {
		if ps.Partition < 0 || ps.Partition >= len(a.parts) {
			return nil, errNotFound("partition %d does not exist in account %q on stamp %s",
				ps.Partition, a.spec.Account, s.cfg.Name)
		}
		if shipped[ps.Partition] {
			return nil, errBad("partition %d appears twice in the shipment", ps.Partition)
		}
		shipped[ps.Partition] = true
		for i := range ps.Entries {
			e := &ps.Entries[i]
			if i > 0 && e.LSN != ps.Entries[i-1].LSN+1 {
				return nil, errBad("partition %d: entries not contiguous (LSN %d after %d)",
					ps.Partition, e.LSN, ps.Entries[i-1].LSN)
			}
			if e.LSN == 0 || (e.Op != OpPut && e.Op != OpDelete) {
				return nil, errBad("partition %d: entry LSN %d op %q is invalid", ps.Partition, e.LSN, e.Op)
			}
		}
	}
	return shipped, nil
}

// received is one partition's entries a shipment brings that it did not
// have yet.
type received struct {
	p       int
	entries []Entry
}

// freshEntries drops from the shipment what each partition already
// received (shipments are idempotent) and refuses it if a partition is not
// secondary or the rest does not follow what it has. The caller holds
// a.recvMu.
func (s *Server) freshEntries(a *account, req *ReplicateRequest) ([]received, error) {
	var fresh []received
	for _, ps := range req.Partitions {
		p := a.parts[ps.Partition]
		p.mu.Lock()
		role, last := p.role, p.lastReceived
		p.mu.Unlock()
		if role != RoleSecondary {
			return nil, errConflict("partition %d of account %q is %s on stamp %s, not secondary; "+
				"it takes no shipments (was it promoted?)", ps.Partition, a.spec.Account, role, s.cfg.Name)
		}
		es := ps.Entries
		for len(es) > 0 && es[0].LSN <= last {
			es = es[1:]
		}
		if len(es) == 0 {
			continue
		}
		if es[0].LSN != last+1 {
			return nil, errConflict("partition %d of account %q: shipment starts at LSN %d but expected LSN %d",
				ps.Partition, a.spec.Account, es[0].LSN, last+1)
		}
		fresh = append(fresh, received{ps.Partition, es})
	}
	return fresh, nil
}

// receive makes the fresh entries durable in the log, with each partition's
// LastReceived, in one commit; then it advances LastReceived and wakes the
// replayer. The caller holds a.recvMu.
func (s *Server) receive(a *account, fresh []received) error {
	if len(fresh) == 0 {
		return nil
	}
	ops := 0
	for _, f := range fresh {
		ops += len(f.entries)
	}
	name := a.spec.Account
	if err := s.commit(newItem(ops, func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		for _, f := range fresh {
			for i := range f.entries {
				e := &f.entries[i]
				if err := b.log.Put(logKey(f.p, e.LSN), encodeEntry(e)); err != nil {
					return err
				}
			}
			if err := putU64(b.state, f.p, kindReceived, f.entries[len(f.entries)-1].LSN); err != nil {
				return err
			}
		}
		return nil
	}, nil)); err != nil {
		return fmt.Errorf("persist shipment for account %q: %w", name, err)
	}
	dirty := make([]int, len(fresh))
	for i, f := range fresh {
		p := a.parts[f.p]
		p.mu.Lock()
		p.lastReceived = f.entries[len(f.entries)-1].LSN
		p.mu.Unlock()
		dirty[i] = f.p
	}
	a.markReplayDirty(dirty)
	return nil
}

// acks answers a shipment: the last LSN each shipped partition received.
func (a *account) acks(req *ReplicateRequest) ReplicateResponse {
	resp := ReplicateResponse{Acks: make(map[int]uint64, len(req.Partitions))}
	for _, ps := range req.Partitions {
		p := a.parts[ps.Partition]
		p.mu.Lock()
		resp.Acks[ps.Partition] = p.lastReceived
		p.mu.Unlock()
	}
	return resp
}
