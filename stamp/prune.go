package stamp

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// DefaultLogRetain is how many entries below what is safe to drop each
// partition's log keeps, unless Config.LogRetain says otherwise.
const DefaultLogRetain = 10000

// Pruning runs every pruneEvery and drops at most pruneMax entries a round,
// so a long log is cut in steps that do not hold up writes.
const (
	pruneEvery = time.Second
	pruneMax   = 50000
)

// pruneLoop keeps the account's log bounded: entries the peer has durably
// received (a primary's LastAcked) or that this stamp has applied (a
// secondary's LastReplayed), less LogRetain, are dropped. A primary that
// does not ship keeps everything past what its peer last acknowledged: a
// reprotect ships from there.
func (s *Server) pruneLoop(a *account) {
	defer s.wg.Done()
	if s.cfg.LogRetain < 0 {
		return
	}
	t := time.NewTicker(pruneEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
		if err := s.pruneOnce(a); err != nil && s.ctx.Err() == nil {
			s.log.Warn("pruning the log failed; retrying", zap.String("account", a.spec.Account), zap.Error(err))
		}
	}
}

// pruneBound is the highest LSN of p's log that may go (0: none), with the
// partition's lock held.
func (s *Server) pruneBoundLocked(p *partition) uint64 {
	safe := p.lastReplayed
	if p.role == RolePrimary {
		safe = p.lastAcked
	}
	retain := uint64(s.cfg.LogRetain)
	if safe <= retain {
		return 0
	}
	return safe - retain
}

// pruneOnce drops, in one commit, up to pruneMax entries of the partitions
// whose bound moved past what was pruned.
func (s *Server) pruneOnce(a *account) error {
	type cut struct {
		p        int
		from, to uint64
	}
	var cuts []cut
	budget := uint64(pruneMax)
	for _, p := range a.parts {
		p.mu.Lock()
		bound := s.pruneBoundLocked(p)
		if bound > p.pruned && budget > 0 {
			to := min(bound, p.pruned+budget)
			cuts = append(cuts, cut{p.id, p.pruned + 1, to})
			budget -= to - p.pruned
		}
		p.mu.Unlock()
	}
	if len(cuts) == 0 {
		return nil
	}
	name := a.spec.Account
	err := s.commit(newItem(int(pruneMax-budget), func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		c := b.log.Cursor()
		for _, ct := range cuts {
			for k, _ := c.Seek(logKey(ct.p, 0)); k != nil; k, _ = c.Seek(logKey(ct.p, 0)) {
				if int(binary.BigEndian.Uint32(k)) != ct.p || binary.BigEndian.Uint64(k[4:]) > ct.to {
					break
				}
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		return nil
	}, nil))
	if err != nil {
		return fmt.Errorf("prune %q: %w", name, err)
	}
	for _, ct := range cuts {
		p := a.parts[ct.p]
		p.mu.Lock()
		p.pruned = max(p.pruned, ct.to)
		p.mu.Unlock()
	}
	return nil
}
