package stamp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/zap"
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

// peerError is a non-2xx answer from the peer stamp.
type peerError struct {
	status int
	body   ErrorBody
}

func (e *peerError) Error() string {
	return fmt.Sprintf("peer answered %d %s: %s", e.status, e.body.Code, e.body.Message)
}

// shipLoop is the account's background shipper: it wakes when writes
// commit and ships dirty partitions until none is behind, backing off
// (and ignoring new wake-ups) while the peer fails.
func (s *Server) shipLoop(a *account) {
	defer s.wg.Done()
	heartbeat := time.NewTicker(s.cfg.HeartbeatInterval)
	defer heartbeat.Stop()
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
			case <-heartbeat.C:
			case <-s.stop:
				return
			}
		}
		more, err := s.shipOnce(a)
		if err != nil {
			backoff = min(max(2*backoff, minShipBackoff), maxShipBackoff)
			if s.ctx.Err() == nil {
				s.log.Warn("shipment failed; backing off", zap.String("account", a.spec.Account), zap.String("peer", a.spec.Peer), zap.Duration("backoff", backoff), zap.Error(err))
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
		return false, s.heartbeatIfDue(a)
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
	if len(behind) > 0 {
		a.dirtyMu.Lock()
		for _, pi := range behind {
			a.shipDirty[pi] = struct{}{}
		}
		a.dirtyMu.Unlock()
	}
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

// heartbeatIfDue sends an entry-less shipment carrying only the report of
// LastWritten when nothing was reported for a heartbeat interval. The caller
// holds a.shipMu.
func (s *Server) heartbeatIfDue(a *account) error {
	a.dirtyMu.Lock()
	due := time.Since(a.lastReport) >= s.cfg.HeartbeatInterval
	a.dirtyMu.Unlock()
	if !due || a.spec.Role != RolePrimary || a.spec.Peer == "" || !a.anyShipping() {
		return nil
	}
	req := &ReplicateRequest{Account: a.spec.Account, FromStamp: s.cfg.Name}
	report := s.addReport(a, req)
	if _, err := s.postReplicate(s.ctx, a.spec.Peer, req); err != nil {
		return err
	}
	report()
	return nil
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
			return fmt.Errorf("peer acknowledged partition %d up to %d (present: %v), shipped up to %d", ps.Partition, got, ok, last)
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
func (s *Server) postReplicate(ctx context.Context, peer string, req *ReplicateRequest) (*ReplicateResponse, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode shipment: %w", err)
	}
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
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, peer+"/v1/internal/replicate", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("ship to %s: %w", peer, err)
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := s.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("ship to %s: %w", peer, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("ship to %s: read answer: %w", peer, err)
	}
	if resp.StatusCode != http.StatusOK {
		pe := &peerError{status: resp.StatusCode}
		if json.Unmarshal(data, &pe.body) != nil || pe.body.Code == "" {
			pe.body = ErrorBody{Code: http.StatusText(resp.StatusCode), Message: string(bytes.TrimSpace(data))}
		}
		return nil, fmt.Errorf("ship to %s: %w", peer, pe)
	}
	var out ReplicateResponse
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, fmt.Errorf("ship to %s: decode answer: %w", peer, err)
	}
	return &out, nil
}

// peerFailure turns a failed shipment into the answer of a control call.
func peerFailure(peer string, err error) error {
	var pe *peerError
	if errors.As(err, &pe) && pe.status < 500 {
		return errConflict("peer %s refused the shipment: %s", peer, pe.body.Message)
	}
	return errUnavailable("peer %s is unreachable or failing (%v); retry once it is back", peer, err)
}

// replicate receives a shipment on a secondary.
func (s *Server) replicate(w http.ResponseWriter, r *http.Request) error {
	var req ReplicateRequest
	if err := decodeBody(r, limitReplicate, &req, "ReplicateRequest"); err != nil {
		return err
	}
	a, err := s.account(req.Account)
	if err != nil {
		return err
	}
	seen := make(map[int]bool, len(req.Partitions))
	for _, ps := range req.Partitions {
		if ps.Partition < 0 || ps.Partition >= len(a.parts) {
			return errNotFound("partition %d does not exist in account %q on stamp %s", ps.Partition, a.spec.Account, s.cfg.Name)
		}
		if seen[ps.Partition] {
			return errBad("partition %d appears twice in the shipment", ps.Partition)
		}
		seen[ps.Partition] = true
		for i := range ps.Entries {
			e := &ps.Entries[i]
			if i > 0 && e.LSN != ps.Entries[i-1].LSN+1 {
				return errBad("partition %d: entries not contiguous (LSN %d after %d)", ps.Partition, e.LSN, ps.Entries[i-1].LSN)
			}
			if e.LSN == 0 || (e.Op != OpPut && e.Op != OpDelete) {
				return errBad("partition %d: entry LSN %d op %q is invalid", ps.Partition, e.LSN, e.Op)
			}
		}
	}
	if err := s.injectFault(w, r, scopeReplication, "", a.spec.Account, func(q int) bool { return seen[q] }); err != nil {
		return err
	}

	a.recvMu.Lock()
	defer a.recvMu.Unlock()
	type recv struct {
		p       int
		entries []Entry
	}
	var todo []recv
	for _, ps := range req.Partitions {
		p := a.parts[ps.Partition]
		p.mu.Lock()
		role, last := p.role, p.lastReceived
		p.mu.Unlock()
		if role != RoleSecondary {
			return errConflict("partition %d of account %q is %s on stamp %s, not secondary; it takes no shipments (was it promoted?)", ps.Partition, a.spec.Account, role, s.cfg.Name)
		}
		es := ps.Entries
		for len(es) > 0 && es[0].LSN <= last {
			es = es[1:] // already received: shipments are idempotent
		}
		if len(es) == 0 {
			continue
		}
		if es[0].LSN != last+1 {
			return errConflict("partition %d of account %q: shipment starts at LSN %d but expected LSN %d", ps.Partition, a.spec.Account, es[0].LSN, last+1)
		}
		todo = append(todo, recv{ps.Partition, es})
	}
	if len(todo) > 0 {
		ops := 0
		for _, t := range todo {
			ops += len(t.entries)
		}
		name := a.spec.Account
		if err := s.commit(newItem(ops, func(tx *bbolt.Tx) error {
			b, err := openAcctBuckets(tx, name)
			if err != nil {
				return err
			}
			for _, t := range todo {
				for i := range t.entries {
					e := &t.entries[i]
					if err := b.log.Put(logKey(t.p, e.LSN), encodeEntry(e)); err != nil {
						return err
					}
				}
				if err := putU64(b.state, t.p, kindReceived, t.entries[len(t.entries)-1].LSN); err != nil {
					return err
				}
			}
			return nil
		}, nil)); err != nil {
			return fmt.Errorf("persist shipment for account %q: %w", name, err)
		}
		dirty := make([]int, len(todo))
		for i, t := range todo {
			p := a.parts[t.p]
			p.mu.Lock()
			p.lastReceived = t.entries[len(t.entries)-1].LSN
			p.mu.Unlock()
			dirty[i] = t.p
		}
		a.markReplayDirty(dirty)
	}
	a.recordReport(&req)
	resp := ReplicateResponse{Acks: make(map[int]uint64, len(req.Partitions))}
	for _, ps := range req.Partitions {
		p := a.parts[ps.Partition]
		p.mu.Lock()
		resp.Acks[ps.Partition] = p.lastReceived
		p.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}
