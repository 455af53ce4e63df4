package stamp

import (
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/zap"
)

const (
	// maxReplayTx bounds the entries applied in one transaction: big enough
	// to amortize the commit, small enough to keep the write lock short.
	maxReplayTx = 20000
	// minThrottleWait keeps a throttled replayer from waking more often than
	// this; each wake applies whatever tokens accrued meanwhile.
	minThrottleWait = 20 * time.Millisecond
	replayRetry     = time.Second
)

// replayLoop is the account's background replayer. It wakes when entries
// are received (or when throttle tokens accrue) and applies received
// entries to the data in LSN order.
func (s *Server) replayLoop(a *account) {
	defer s.wg.Done()
	var wait time.Duration
	for {
		var timer <-chan time.Time
		var t *time.Timer
		if wait > 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-a.replayKick:
		case <-timer:
		case <-s.stop:
			if t != nil {
				t.Stop()
			}
			return
		}
		if t != nil {
			t.Stop()
		}
		var err error
		wait, err = s.replayOnce(a)
		if err != nil {
			s.log.Error("replay failed; retrying", zap.String("account", a.spec.Account),
				zap.Duration("retry", replayRetry), zap.Error(err))
			wait = replayRetry
		}
	}
}

// refillLocked adds the tokens earned since the last refill; the bucket
// holds at most a tenth of a second's worth (at least one op).
func (p *partition) refillLocked(now time.Time, rate float64) {
	burst := max(1, rate/10)
	if p.tokensAt.IsZero() {
		p.tokens = burst
	} else {
		p.tokens = min(burst, p.tokens+rate*now.Sub(p.tokensAt).Seconds())
	}
	p.tokensAt = now
}

// replayOnce applies one transaction's worth of pending entries. It returns
// how long to wait before the next round when only throttled work is left
// (0: none left, or the loop was kicked to continue at once).
func (s *Server) replayOnce(a *account) (time.Duration, error) {
	a.replayMu.Lock()
	defer a.replayMu.Unlock()
	dirty := a.takeDirty(&a.replayDirty)
	if len(dirty) == 0 {
		return 0, nil
	}
	now := time.Now()
	rate := s.cfg.ReplayRate
	budget := uint64(maxReplayTx)
	var ranges []shipRange
	var keep []int
	throttled, more := false, false
	var wait time.Duration
	for i, pi := range dirty {
		if budget == 0 {
			keep = append(keep, dirty[i:]...)
			more = true
			break
		}
		p := a.parts[pi]
		p.mu.Lock()
		pending := p.lastReceived - p.lastReplayed
		if pending == 0 {
			p.mu.Unlock()
			continue
		}
		n := min(pending, budget)
		limited := false
		if rate > 0 {
			p.refillLocked(now, rate)
			if tok := uint64(p.tokens); tok < n {
				n, limited = tok, true
			}
			p.tokens -= float64(n)
		}
		if n > 0 {
			ranges = append(ranges, shipRange{p: pi, from: p.lastReplayed + 1, to: p.lastReplayed + n})
			budget -= n
		}
		if n < pending {
			keep = append(keep, pi)
			if limited {
				w := time.Duration((1 - p.tokens) / rate * float64(time.Second))
				if !throttled || w < wait {
					wait = w
				}
				throttled = true
			} else {
				more = true
			}
		}
		p.mu.Unlock()
	}
	var err error
	if len(ranges) > 0 {
		if err = s.applyReplay(a, ranges); err != nil {
			for _, r := range ranges {
				keep = append(keep, r.p)
			}
		}
	}
	a.addDirty(&a.replayDirty, keep)
	switch {
	case err != nil:
		return 0, err
	case more:
		kick(a.replayKick)
		return 0, nil
	case throttled:
		return max(wait, minThrottleWait), nil
	}
	return 0, nil
}

// applyReplay applies the ranges to the data and persists lastReplayed in
// the same transaction, so data and counter never disagree after a crash.
func (s *Server) applyReplay(a *account, ranges []shipRange) error {
	name := a.spec.Account
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		b, err := openAcctBuckets(tx, name)
		if err != nil {
			return err
		}
		c := b.log.Cursor()
		for _, r := range ranges {
			want := r.from
			for k, v := c.Seek(logKey(r.p, r.from)); k != nil && want <= r.to; k, v = c.Next() {
				lsn := binary.BigEndian.Uint64(k[4:])
				if int(binary.BigEndian.Uint32(k)) != r.p || lsn != want {
					break
				}
				e, err := decodeEntry(lsn, v)
				if err != nil {
					return fmt.Errorf("partition %d: %w", r.p, err)
				}
				if err := applyEntry(b.data, r.p, &e); err != nil {
					return err
				}
				want++
			}
			if want <= r.to {
				return fmt.Errorf("partition %d: log misses LSN %d below received %d: %w", r.p, want, r.to, errCorrupt)
			}
			if err := putU64(b.state, r.p, kindReplayed, r.to); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("replay account %q: %w", name, err)
	}
	now := time.Now().UTC()
	for _, r := range ranges {
		p := a.parts[r.p]
		p.mu.Lock()
		p.lastReplayed = r.to
		if p.replayTarget > 0 && p.lastReplayed >= p.replayTarget && p.replayDoneAt.IsZero() {
			p.replayDoneAt = now
		}
		p.mu.Unlock()
	}
	a.notifyProgress()
	return nil
}
