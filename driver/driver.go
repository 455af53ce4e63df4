// Package driver is the contract between Baton's failover and a replicated
// store: what a failover needs of each side of an account, whatever the
// store (the reference stamp, PostgreSQL streaming replication, Redis
// replication). An account is a set of partitions (a stamp's partitions, a
// database's shards), each with a primary on one site and a replica on the
// other; a failover fences every primary, flush-sends what each wrote,
// flush-replays it on the replica, and promotes the replicas.
//
// Every call takes a list of partitions and answers each on its own (one
// partition's failure does not hide the others'), and every call is
// idempotent: a repeat answers what the first did, so an activity's retry
// does the work once. Errors are classified once per driver: Final marks
// what no retry can fix (a server that is not what the call expects, bad
// credentials); everything else may go away and is retried.
package driver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Kind names a store; the location service records each account's.
type Kind string

// The stores Baton drives.
const (
	KindStamp    Kind = "stamp"
	KindRedis    Kind = "redis"
	KindPostgres Kind = "postgres"
)

// Side is one site of an account: the server of each partition.
type Side struct {
	Account string
	// Endpoints[i] serves partition i (a store's address: a stamp's base
	// URL, Redis's host:port); a single endpoint serves every partition.
	Endpoints []string
	// Epoch is the account's epoch a call carries, for a store that fences
	// by epoch (EpochFencer): a fence or unfence the current one, a
	// promote the new one. Other stores do not read it.
	Epoch uint64
}

// Endpoint is the server of partition p.
func (s Side) Endpoint(p int) string {
	if len(s.Endpoints) == 1 {
		return s.Endpoints[0]
	}
	return s.Endpoints[p]
}

// Result is one partition's answer. Position is in the store's own unit
// (a stamp's LSN, Redis's replication offset): the final written position
// after a fence, the position the replica confirmed after a flush-send,
// the replayed one after a flush-replay or a promote.
type Result struct {
	Partition int
	Position  uint64
	// Took is how long the step took for the partition on its server (a
	// flush-send's shipping, a flush-replay's replay); 0: not known.
	Took time.Duration
	Err  error
}

// Positions is where a partition's replication stands.
type Positions struct {
	Partition int
	// Primary is true when the server answering is its partition's
	// primary (fenced or not).
	Primary bool
	// On a primary, Written is its last position and Acked what its
	// replica confirmed it received; on a replica, Written is what it
	// received and Replayed what it applied.
	Written, Acked, Replayed uint64
	Err                      error
}

// Store is what a failover needs of a replicated store.
type Store interface {
	Kind() Kind
	// Positions reads each partition's positions on side.
	Positions(ctx context.Context, side Side, ps []int) []Positions
	// Fence stops the primaries of ps taking writes; after it answers, no
	// write commits there. A store whose fence can lapse holds it for at
	// most lease (it outlives no crashed orchestrator); one fencing by
	// epoch holds it until an unfence or a promote elsewhere. Position:
	// the final written position.
	Fence(ctx context.Context, primary Side, ps []int, lease time.Duration) []Result
	// Unfence lets the primaries take writes again (a rollback).
	Unfence(ctx context.Context, primary Side, ps []int) []Result
	// FlushSend returns once each replica (on the replica side) confirmed
	// it received every write of its fenced primary. Position: the
	// confirmed position.
	FlushSend(ctx context.Context, primary, replica Side, ps []int) []Result
	// FlushReplay waits until each replica applied targets[p] (a
	// flush-send's position), telling progress each partition that did. A
	// target of 0 is everything the replica received (an unplanned
	// failover's partitions whose primary was given up on).
	FlushReplay(ctx context.Context, replica Side, targets map[int]uint64, progress func(p int)) []Result
	// Promote makes the replicas primaries. Position: their position.
	Promote(ctx context.Context, replica Side, ps []int) []Result
	// Rejoin makes the old primaries replicas of the new ones (reprotect)
	// and lifts their fence: a write held by it is refused, not applied.
	Rejoin(ctx context.Context, old, primary Side, ps []int) []Result
	// Close closes the driver's connections.
	Close() error
}

// LossReader is a store that fails over unplanned: its primaries may be
// gone, and what they wrote that their replicas never received is lost.
// Losses reads, on the replica side, what each replica knows of that: it
// is called after a flush-replay to 0 and before the promote.
type LossReader interface {
	Losses(ctx context.Context, replica Side, ps []int) []Loss
}

// Loss is what a replica knows of its lost primary. Everything the primary
// wrote past Replayed is lost (a flush-replay to 0 applied all it could);
// Received-Replayed of it reached the replica but could not be applied
// (PostgreSQL: a record the primary's end cut short).
// Past Received only the old primary's own log knows: Pending says where
// to read it.
type Loss struct {
	Partition          int
	Replayed, Received uint64
	// LastHeard is when the replica last heard from its primary (zero:
	// not known).
	LastHeard time.Time
	// Written is the primary's last written position as the replica last
	// heard it, at LastHeard, and WriteRate how fast it wrote then
	// (positions/s); 0: not known.
	Written   uint64
	WriteRate float64
	// Unit names the positions' unit (UnitOps: each is one write);
	// FromText is Replayed as the store writes it (a WAL LSN's X/Y).
	Unit, FromText, Pending string
	Err                     error
}

// CallError is the answer of a whole call, set on each of its partitions:
// it says nothing of the partition it is on (a request refused as a whole,
// a call that failed on the way), so a caller names none.
type CallError struct{ Err error }

func (e *CallError) Error() string { return e.Err.Error() }
func (e *CallError) Unwrap() error { return e.Err }

// WholeCall marks err as a whole call's answer (nil stays nil).
func WholeCall(err error) error {
	if err == nil {
		return nil
	}
	return &CallError{Err: err}
}

// IsWholeCall reports whether err is a whole call's answer.
func IsWholeCall(err error) bool {
	var ce *CallError
	return errors.As(err, &ce)
}

// EpochFencer is a store whose fence is durable and whose promote moves
// the partitions to a new epoch that the old primaries refuse (the
// reference stamp): a promote need not confirm the old fences again, and
// the old primaries rejoin in a reprotect (Rejoin answers final), not in
// the promote.
type EpochFencer interface {
	Store
	FencesByEpoch()
}

// UnitOps is the Unit of a store whose positions count writes (the
// reference stamp's LSNs): its losses are counts of writes.
const UnitOps = "ops"

// FinalError is an answer no retry can change.
type FinalError struct{ Err error }

func (e *FinalError) Error() string { return e.Err.Error() }
func (e *FinalError) Unwrap() error { return e.Err }

// Final marks err as final (nil stays nil).
func Final(err error) error {
	if err == nil {
		return nil
	}
	return &FinalError{Err: err}
}

// Finalf is Final(fmt.Errorf(...)).
func Finalf(format string, args ...any) error { return Final(fmt.Errorf(format, args...)) }

// IsFinal reports whether err, or an error it wraps, is final.
func IsFinal(err error) bool {
	var fe *FinalError
	return errors.As(err, &fe)
}

// Each calls f for every partition of ps at once (shards are independent)
// and waits for all: i is the partition's index in ps.
func Each(ps []int, f func(i, p int)) {
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Go(func() { f(i, p) })
	}
	wg.Wait()
}

// Failed is the results that carry an error.
func Failed(rs []Result) []Result {
	var out []Result
	for _, r := range rs {
		if r.Err != nil {
			out = append(out, r)
		}
	}
	return out
}
