package stamp

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"go.etcd.io/bbolt"

	"github.com/batonhq/baton/internal/jsonhttp"
)

// The recovered area: a/<account>/recovered/ partition(4) lsn(8) epoch(8)
// -> JSON RecoveredEntry. Keyed by where the entry stood, so demoting
// again moves nothing twice.
var bucketRecovered = []byte("recovered")

func recoveredKey(p int, lsn, epoch uint64) []byte {
	k := make([]byte, 20)
	binary.BigEndian.PutUint32(k, uint32(p))
	binary.BigEndian.PutUint64(k[4:], lsn)
	binary.BigEndian.PutUint64(k[12:], epoch)
	return k
}

// demote turns the old primary's partitions ps into secondaries of the new
// primary at req.Epoch. req.Targets gives, for every partition, the LSN the
// new primary continued from: the entries past it (written here, never
// replayed there) move to the recovered area, the log is cut back to it,
// and the partition's counters stand at it, so reverse replication resumes
// from there. The data of the keys those entries wrote still holds their
// values: RestoreRequest rewinds it. A partition already demoted at
// req.Epoch answers the same (idempotent).
func (s *Server) demote(a *account, ps []int, req *ControlRequest) ([]ControlResult, error) {
	if req.Epoch == 0 {
		return nil, errBad("demote needs \"epoch\": the new primary's epoch")
	}
	a.shipMu.Lock() // no shipment of these partitions while they change role
	defer a.shipMu.Unlock()
	a.replayMu.Lock()
	defer a.replayMu.Unlock()
	a.recvMu.Lock()
	defer a.recvMu.Unlock()
	it, err := s.demoteLocked(a, ps, req)
	if err != nil {
		return nil, err
	}
	if err := s.waitItem(it); err != nil {
		return nil, fmt.Errorf("demote: %w", err)
	}
	counts, err := s.recoveredCounts(a, ps)
	if err != nil {
		return nil, err
	}
	out := results(a, ps, func(p *partition) (uint64, bool) { return p.lastReceived, true })
	for i := range out {
		out[i].Recovered = counts[out[i].Partition]
	}
	return out, nil
}

// demoteLocked checks every partition, then flips those not yet demoted and
// queues one commit that moves their diverged entries and persists their
// new state.
func (s *Server) demoteLocked(a *account, ps []int, req *ControlRequest) (*commitItem, error) {
	a.lockParts(ps)
	defer a.unlockParts(ps)
	var flips []int
	for _, pi := range ps {
		flip, err := s.checkDemotableLocked(a, a.parts[pi], req)
		if err != nil {
			return nil, err
		}
		if flip {
			flips = append(flips, pi)
		}
	}
	type cut struct {
		p        int
		at, to   uint64 // move (at, to]
		oldEpoch uint64
	}
	cuts := make([]cut, len(flips))
	for i, pi := range flips {
		p := a.parts[pi]
		target := req.Targets[pi]
		cuts[i] = cut{p: pi, at: target, to: p.durable.Load(), oldEpoch: p.epoch}
		p.role, p.epoch, p.fenced, p.shipping = RoleSecondary, req.Epoch, false, false
		p.next, p.lastSent, p.lastAcked, p.reported = target, 0, 0, 0
		p.durable.Store(target)
		p.lastReceived, p.lastReplayed, p.sourceWritten = target, target, target
		p.replayTarget, p.replayStartedAt, p.replayDoneAt = 0, time.Time{}, time.Time{}
		p.sendStartedAt, p.sendDoneAt = time.Time{}, time.Time{}
	}
	name, epoch, now := a.spec.Account, req.Epoch, time.Now().UTC()
	it := newItem(len(cuts), func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		rec, err := tx.Bucket(accountBucketName(name)).CreateBucketIfNotExists(bucketRecovered)
		if err != nil {
			return err
		}
		for _, c := range cuts {
			if err := moveDiverged(b.log, rec, c.p, c.at, c.to, now); err != nil {
				return err
			}
			if err := b.state.Put(stateKey(c.p, kindConfig), encodeConfig(RoleSecondary, false, false, epoch)); err != nil {
				return err
			}
			for _, kind := range []byte{kindWritten, kindReceived, kindReplayed} {
				if err := putU64(b.state, c.p, kind, c.at); err != nil {
					return err
				}
			}
			if err := b.state.Put(stateKey(c.p, kindAcked), encodeAcked(0, time.Time{})); err != nil {
				return err
			}
		}
		return nil
	}, nil)
	return it, s.enqueue(it)
}

// checkDemotableLocked says whether p needs demoting to req.Epoch, or
// refuses the call.
func (s *Server) checkDemotableLocked(a *account, p *partition, req *ControlRequest) (bool, error) {
	target, ok := req.Targets[p.id]
	switch {
	case p.role == RoleSecondary && p.epoch == req.Epoch:
		return false, nil // already done: answer the same
	case !ok:
		return false, errBad("demote needs a target for partition %d: the LSN the new primary continued from", p.id)
	case p.role != RolePrimary:
		return false, errConflict("partition %d of account %q is a secondary at epoch %d on stamp %s, not an old primary; "+
			"demote runs on the stamp the account failed over from", p.id, a.spec.Account, p.epoch, s.cfg.Name)
	case req.Epoch <= p.epoch:
		return false, errStale(p.epoch, "demote to epoch %d refused: partition %d of account %q is at epoch %d; "+
			"demote takes the new primary's epoch, above the old one", req.Epoch, p.id, a.spec.Account, p.epoch)
	case target > p.durable.Load():
		return false, errConflict("partition %d of account %q ends at LSN %d on stamp %s, before the new primary's %d: "+
			"its log is behind what it once acknowledged (data lost?); seed it instead", p.id, a.spec.Account,
			p.durable.Load(), s.cfg.Name, target)
	}
	return true, nil
}

// moveDiverged moves partition p's log entries (at, to] into rec, each
// once, and deletes them from the log.
func moveDiverged(log, rec *bbolt.Bucket, p int, at, to uint64, now time.Time) error {
	for lsn := at + 1; lsn <= to; lsn++ {
		k := logKey(p, lsn)
		v := log.Get(k)
		if v == nil {
			continue // moved by an earlier, interrupted demote
		}
		e, err := decodeEntry(lsn, v)
		if err != nil {
			return err
		}
		rk := recoveredKey(p, lsn, e.Epoch)
		if rec.Get(rk) == nil {
			b, err := json.Marshal(RecoveredEntry{Partition: p, LSN: lsn, Epoch: e.Epoch, Op: e.Op, Key: e.Key,
				Value: e.Value, RecoveredAt: now})
			if err != nil {
				return err
			}
			if err := rec.Put(rk, b); err != nil {
				return err
			}
		}
		if err := log.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// recoveredCounts counts the recovered entries of each of ps.
func (s *Server) recoveredCounts(a *account, ps []int) (map[int]int, error) {
	counts := make(map[int]int, len(ps))
	want := inSorted(ps)
	err := s.eachRecovered(a, func(e RecoveredEntry) error {
		if want(e.Partition) {
			counts[e.Partition]++
		}
		return nil
	})
	return counts, err
}

// eachRecovered calls fn for every recovered entry of the account, in
// partition and LSN order.
func (s *Server) eachRecovered(a *account, fn func(RecoveredEntry) error) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		ab := tx.Bucket(accountBucketName(a.spec.Account))
		if ab == nil {
			return nil
		}
		rec := ab.Bucket(bucketRecovered)
		if rec == nil {
			return nil
		}
		return rec.ForEach(func(_, v []byte) error {
			var e RecoveredEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("recovered entry: %w", errCorrupt)
			}
			return fn(e)
		})
	})
}

// listRecovered serves GET /v1/accounts/{a}/recovered: every recovered
// entry, one JSON object a line.
func (s *Server) listRecovered(w http.ResponseWriter, r *http.Request) error {
	a, err := s.account(r.PathValue("account"))
	if err != nil {
		return err
	}
	if err := s.injectFault(w, r, scopeControl, "", a.spec.Account, nil); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	err = s.eachRecovered(a, func(e RecoveredEntry) error { return enc.Encode(e) })
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// restore serves POST /v1/accounts/{a}/restore: it sets keys of secondary
// partitions to the values given (or deletes them), as the new primary
// holds them, rewinding what diverged on a demoted stamp.
func (s *Server) restore(w http.ResponseWriter, r *http.Request) error {
	a, err := s.account(r.PathValue("account"))
	if err != nil {
		return err
	}
	var req RestoreRequest
	if err := decodeBody(w, r, limitBatch, &req, "RestoreRequest"); err != nil {
		return err
	}
	parts := make([]int, len(req.Values))
	for i, v := range req.Values {
		if err := validateKey(v.Key); err != nil {
			return err
		}
		parts[i] = PartitionOf(v.Key, len(a.parts))
		p := a.parts[parts[i]]
		p.mu.Lock()
		role := p.role
		p.mu.Unlock()
		if role != RoleSecondary {
			return errConflict("restore sets keys of secondaries; key %q is in partition %d, %s on stamp %s",
				v.Key, parts[i], role, s.cfg.Name)
		}
	}
	a.recvMu.Lock()
	defer a.recvMu.Unlock()
	name := a.spec.Account
	if err := s.commit(newItem(len(req.Values), func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		for i, v := range req.Values {
			if v.Deleted {
				err = b.data.Delete([]byte(v.Key))
			} else {
				err = b.data.Put([]byte(v.Key), encodeValue(v.LSN, parts[i], v.Value))
			}
			if err != nil {
				return err
			}
		}
		return nil
	}, nil)); err != nil {
		return fmt.Errorf("restore %d keys of account %q: %w", len(req.Values), name, err)
	}
	jsonhttp.WriteJSON(w, http.StatusOK, map[string]int{"restored": len(req.Values)})
	return nil
}

// protect makes promoted primary partitions ship to the peer again, from
// req.Targets (what the peer holds of each). A partition already shipping
// answers the same.
func (s *Server) protect(a *account, ps []int, req *ControlRequest) ([]ControlResult, error) {
	a.shipMu.Lock()
	defer a.shipMu.Unlock()
	res, err := s.changeState(a, ps, stateChange{
		op: CtlProtect,
		check: func(p *partition) (bool, error) {
			target, ok := req.Targets[p.id]
			switch {
			case p.role == RolePrimary && p.shipping:
				return false, nil
			case p.role != RolePrimary:
				return false, errConflict("protect runs on the new primary; partition %d of account %q is %s on stamp %s",
					p.id, a.spec.Account, p.role, s.cfg.Name)
			case !ok:
				return false, errBad("protect needs a target for partition %d: the LSN the peer holds", p.id)
			case target > p.durable.Load():
				return false, errConflict("partition %d of account %q: the peer's LSN %d is past this primary's %d; "+
					"the peer diverged: demote it first", p.id, a.spec.Account, target, p.durable.Load())
			}
			return true, nil
		},
		flip: func(p *partition) {
			p.shipping = true
			p.lastSent, p.lastAcked, p.lastAckedAt = req.Targets[p.id], req.Targets[p.id], time.Now().UTC()
			p.reported = 0
		},
		counters: true,
	})
	if err != nil {
		return nil, err
	}
	a.markShipDirty(ps)
	return res, nil
}
