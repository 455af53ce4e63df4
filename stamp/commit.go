package stamp

import (
	"errors"
	"fmt"

	"go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// Group commit: every state change that must be durable before it is
// acknowledged goes through one queue drained by a single committer
// goroutine, which puts as many queued items as are waiting into one bbolt
// transaction (one fsync). Throughput then grows with concurrency instead of
// being capped at one fsync per write.
//
// Items are enqueued while the caller still holds the locks of the
// partitions they touch, so queue order is LSN order within a partition and
// a failed or pending item can never leave a hole below a committed one.

// commitItem is one unit of the queue.
type commitItem struct {
	apply func(tx *bbolt.Tx) error // runs inside the round's transaction
	after func()                   // runs after the round commits, in queue order
	ops   int                      // work estimate, bounds a round's size
	done  chan error
}

const (
	maxRoundItems = 8192
	maxRoundOps   = 50000
	queueLen      = 8192
)

var errClosed = errors.New("stamp server is closing")

func newItem(ops int, apply func(tx *bbolt.Tx) error, after func()) *commitItem {
	return &commitItem{apply: apply, after: after, ops: ops, done: make(chan error, 1)}
}

// commit enqueues it and waits until its round is durable.
func (s *Server) commit(it *commitItem) error {
	if err := s.enqueue(it); err != nil {
		return err
	}
	return s.waitItem(it)
}

// enqueue adds it to the queue. Callers that assign LSNs call it under the
// partition locks; the queue is large enough that this rarely blocks.
func (s *Server) enqueue(it *commitItem) error {
	if err := s.brokenErr(); err != nil {
		return err
	}
	select {
	case s.queue <- it:
		return nil
	case <-s.stop:
		return errClosed
	}
}

func (s *Server) waitItem(it *commitItem) error {
	select {
	case err := <-it.done:
		return err
	case <-s.stop:
		return errClosed
	}
}

func (s *Server) commitLoop() {
	defer s.wg.Done()
	items := make([]*commitItem, 0, 64)
	for {
		select {
		case it := <-s.queue:
			items = append(items[:0], it)
		case <-s.stop:
			return
		}
		ops := items[0].ops
	fill:
		for len(items) < maxRoundItems && ops < maxRoundOps {
			select {
			case it := <-s.queue:
				items = append(items, it)
				ops += it.ops
			default:
				break fill
			}
		}
		err := s.brokenErr()
		if err == nil {
			err = s.db.Update(func(tx *bbolt.Tx) error {
				for _, it := range items {
					if err := it.apply(tx); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				// LSNs were handed out for these items; after a failed commit
				// the in-memory counters no longer match the disk, so stop
				// taking writes rather than risk a hole. A restart recovers.
				err = fmt.Errorf("commit %d queued items: %w", len(items), err)
				s.setBroken(err)
				s.log.Error("store commit failed; refusing further writes until restart", zap.Error(err))
			}
		}
		for _, it := range items {
			if err == nil && it.after != nil {
				it.after()
			}
			it.done <- err
		}
	}
}

func (s *Server) brokenErr() error {
	s.brokenMu.Lock()
	defer s.brokenMu.Unlock()
	return s.broken
}

func (s *Server) setBroken(err error) {
	s.brokenMu.Lock()
	if s.broken == nil {
		s.broken = err
	}
	s.brokenMu.Unlock()
}
