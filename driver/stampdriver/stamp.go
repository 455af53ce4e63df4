// Package stampdriver serves Baton's reference stamp (package stamp)
// through the driver contract: an account's site is one stamp (a single
// endpoint, its base URL, serves every partition), a partition knows its
// peer on the other stamp (a flush-send needs no replica side), and the
// stamp fences by epoch (driver.EpochFencer): a fence is durable, and a
// promote at a new epoch leaves the old primary refusing writes for good.
// The old primary rejoins in baton reprotect (demote, restore, protect),
// which reads more of the stamp than the contract says.
//
// Control calls carry at most ChunkSize partitions each, ParallelChunks at
// once, so a 10,000-partition account is a handful of calls.
package stampdriver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/internal/clock"
	"github.com/batonhq/baton/stamp"
)

// ChunkSize bounds the partitions carried by one control call.
const ChunkSize = 1000

// ParallelChunks is how many chunked calls run at once against one stamp.
const ParallelChunks = 4

// replayWait is each flush-replay call's long poll (each answer a
// progress report); replayRetryFor bounds the retries of a whole
// flush-replay call that fails on the way, after which its partitions
// still to replay answer that error.
const (
	replayWait     = time.Second
	replayRetryFor = 5 * time.Second
	// The backoff between whole calls that fail on the way.
	firstBackoff, maxBackoff = 100 * time.Millisecond, 2 * time.Second
)

// Driver is the reference stamp's driver.
type Driver struct {
	client func(base string) *stamp.Client
}

// New returns the driver calling each stamp through client(base URL).
func New(client func(base string) *stamp.Client) *Driver {
	return &Driver{client: client}
}

// Kind is driver.KindStamp.
func (d *Driver) Kind() driver.Kind { return driver.KindStamp }

// Close does nothing: the stamps' clients are the caller's.
func (d *Driver) Close() error { return nil }

// FencesByEpoch marks the stamp a driver.EpochFencer.
func (d *Driver) FencesByEpoch() {}

// Positions reads each partition's LSNs from the stamp's status: a
// primary's written and acknowledged, a secondary's received (as Written)
// and replayed.
func (d *Driver) Positions(ctx context.Context, side driver.Side, ps []int) []driver.Positions {
	out := make([]driver.Positions, len(ps))
	st, err := d.status(ctx, side, ps)
	for i, p := range ps {
		out[i] = driver.Positions{Partition: p, Err: err}
		sp, ok := st[p]
		switch {
		case err != nil:
		case !ok:
			out[i].Err = fmt.Errorf("partition %d is not in the status of %s on %s", p, side.Account, side.Endpoint(0))
		case sp.Role == stamp.RolePrimary:
			out[i].Primary, out[i].Written, out[i].Acked = true, sp.LastWritten, sp.LastAcked
		default:
			out[i].Written, out[i].Replayed = sp.LastReceived, sp.LastReplayed
		}
	}
	return out
}

// status is the status of ps on side, by partition. A long list asks for
// every partition (one short request) rather than name them all.
func (d *Driver) status(ctx context.Context, side driver.Side, ps []int) (map[int]stamp.PartitionStatus, error) {
	ask := ps
	if len(ask) > 256 {
		ask = nil
	}
	st, err := d.client(side.Endpoint(0)).Status(ctx, side.Account, ask)
	if err != nil {
		return nil, classify(err)
	}
	out := make(map[int]stamp.PartitionStatus, len(st.Partitions))
	for _, p := range st.Partitions {
		out[p.Partition] = p
	}
	return out, nil
}

// Fence fences the partitions at the side's epoch (a partition at another
// epoch refuses, final: someone else moved the account). Position: the
// final LSN. The fence has no lease: it holds until an unfence or a
// promote elsewhere.
func (d *Driver) Fence(ctx context.Context, primary driver.Side, ps []int, _ time.Duration) []driver.Result {
	return d.control(ctx, primary, stamp.CtlFence, ps)
}

// Unfence lifts the fence at the side's epoch (a rollback).
func (d *Driver) Unfence(ctx context.Context, primary driver.Side, ps []int) []driver.Result {
	return d.control(ctx, primary, stamp.CtlUnfence, ps)
}

// Promote makes the partitions primaries at the side's epoch (the new
// one). Position: the LSN each continues from.
func (d *Driver) Promote(ctx context.Context, replica driver.Side, ps []int) []driver.Result {
	return d.control(ctx, replica, stamp.CtlPromote, ps)
}

// Rejoin answers final: a stamp's old primary rejoins in baton reprotect.
func (d *Driver) Rejoin(_ context.Context, old, _ driver.Side, ps []int) []driver.Result {
	out := make([]driver.Result, len(ps))
	for i, p := range ps {
		out[i] = driver.Result{Partition: p, Err: driver.Finalf("partition %d of %s on %s rejoins in baton reprotect "+
			"(demote, restore, protect), not in a promote", p, old.Account, old.Endpoint(0))}
	}
	return out
}

// control calls op on ps in chunks and answers every partition.
func (d *Driver) control(ctx context.Context, side driver.Side, op string, ps []int) []driver.Result {
	c := d.client(side.Endpoint(0))
	answers := Control(ctx, ps, func(ctx context.Context, chunk []int) (stamp.ControlResponse, error) {
		return c.Control(ctx, side.Account, op, stamp.ControlRequest{Partitions: chunk, Epoch: side.Epoch})
	})
	out := make([]driver.Result, len(answers))
	for i, a := range answers {
		out[i] = driver.Result{Partition: a.Partition, Position: a.LSN, Err: a.Err}
	}
	return out
}

// Answer is one partition's answer to a control call: its result, or Err
// (driver.Final when no retry can change it).
type Answer struct {
	stamp.ControlResult
	Err error
}

// Control calls call on consecutive chunks of ps (ParallelChunks at once)
// and answers each partition of ps, in ps's order: a chunk whose call
// failed answers that error for each of its partitions (a
// driver.WholeCall); a partition refused on its own, its refusal. Once an
// answer is final no further chunk is called (its partitions answer that
// they were not), so a stale epoch does not go on to fence or promote the
// chunks after it.
func Control(ctx context.Context, ps []int,
	call func(ctx context.Context, chunk []int) (stamp.ControlResponse, error)) []Answer {
	out := make([]Answer, len(ps))
	sem := make(chan struct{}, ParallelChunks)
	var wg sync.WaitGroup
	var refused atomic.Bool
	for lo := 0; lo < len(ps); lo += ChunkSize {
		hi := min(lo+ChunkSize, len(ps))
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if refused.Load() {
				answerChunk(out[lo:hi], ps[lo:hi], stamp.ControlResponse{},
					errors.New("not called: a partition of an earlier chunk was refused"))
				return
			}
			r, err := call(ctx, ps[lo:hi])
			answerChunk(out[lo:hi], ps[lo:hi], r, err)
			if slices.ContainsFunc(out[lo:hi], func(a Answer) bool { return driver.IsFinal(a.Err) }) {
				refused.Store(true)
			}
		})
	}
	wg.Wait()
	return out
}

// answerChunk fills out (the answers of chunk) from its call's response.
func answerChunk(out []Answer, chunk []int, r stamp.ControlResponse, err error) {
	var pe *stamp.PartitionErrors
	byPartition := make(map[int]stamp.ControlResult, len(r.Results))
	if err == nil || errors.As(err, &pe) {
		for _, res := range r.Results {
			byPartition[res.Partition] = res
		}
	}
	for i, p := range chunk {
		res, ok := byPartition[p]
		switch {
		case !ok && err != nil && len(byPartition) == 0:
			out[i] = Answer{ControlResult: stamp.ControlResult{Partition: p}, Err: wholeCall(chunk, classify(err))}
		case !ok:
			out[i] = Answer{ControlResult: stamp.ControlResult{Partition: p},
				Err: fmt.Errorf("partition %d is missing from the stamp's answer", p)}
		default:
			out[i] = Answer{ControlResult: res, Err: classify(res.Err())}
		}
	}
}

// FlushSend ships what each partition wrote to its peer, the whole group
// in one call; a call that fails on the way is made again partition by
// partition (8 at a time), so one bad partition does not stall the rest.
// Position: the sent (and acknowledged) LSN; Took: the shipping time.
func (d *Driver) FlushSend(ctx context.Context, primary, _ driver.Side, ps []int) []driver.Result {
	c := d.client(primary.Endpoint(0))
	send := func(ctx context.Context, ps []int) (stamp.ControlResponse, error) {
		return c.FlushSend(ctx, primary.Account, stamp.ControlRequest{Partitions: ps})
	}
	out := make([]Answer, len(ps))
	r, err := send(ctx, ps)
	answerChunk(out, ps, r, err)
	var pe *stamp.PartitionErrors
	if err != nil && !errors.As(err, &pe) && len(ps) > 1 && !driver.IsFinal(classify(err)) {
		perPartition(ps, func(i, p int) {
			r, err := send(ctx, []int{p})
			answerChunk(out[i:i+1], []int{p}, r, err)
		})
	}
	res := make([]driver.Result, len(out))
	for i, a := range out {
		res[i] = driver.Result{Partition: a.Partition, Position: a.LSN, Err: a.Err,
			Took: took(a.Status.SendStartedAt, a.Status.SendDoneAt)}
	}
	return res
}

// perPartition calls f for each partition of ps, 8 at a time.
func perPartition(ps []int, f func(i, p int)) {
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, p := range ps {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			f(i, p)
		})
	}
	wg.Wait()
}

// wholeCall marks err, the answer of a call on ps, as the whole call's
// when the call named more than one partition.
func wholeCall(ps []int, err error) error {
	if len(ps) > 1 {
		return driver.WholeCall(err)
	}
	return err
}

func took(from, to time.Time) time.Duration {
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return 0
	}
	return to.Sub(from)
}

// classify marks a refusal no retry can change (a stamp's 4xx: stale
// epoch, conflict, bad request) final; the stamp's error stays in the
// chain for the caller to read.
func classify(err error) error {
	var se *stamp.APIError
	if errors.As(err, &se) && !se.Retryable() {
		return driver.Final(err)
	}
	return err
}

// Losses reads what each secondary partition knows of its lost source:
// what it replayed and received, and the source's last written LSN and
// write rate as of its last report.
func (d *Driver) Losses(ctx context.Context, replica driver.Side, ps []int) []driver.Loss {
	out := make([]driver.Loss, len(ps))
	st, err := d.status(ctx, replica, ps)
	for i, p := range ps {
		sp, ok := st[p]
		out[i] = driver.Loss{Partition: p, Unit: driver.UnitOps, Err: err}
		switch {
		case err != nil:
		case !ok:
			out[i].Err = fmt.Errorf("partition %d is not in the status of %s on %s", p, replica.Account, replica.Endpoint(0))
		default:
			out[i].Replayed, out[i].Received, out[i].Written = sp.LastReplayed, sp.LastReceived, sp.SourceWritten
			out[i].LastHeard, out[i].WriteRate = sp.SourceSeenAt, sp.SourceWriteRate
		}
	}
	return out
}

// FlushReplay long-polls the secondary until every partition replayed its
// target (0: everything it received), telling progress each one that did.
// A partition refused on its own answers its refusal while the others go
// on; a final refusal stops the wait, the partitions still replaying
// answering that they were not waited for. A whole call that keeps
// failing on the way for replayRetryFor answers its error for every
// partition still to replay.
func (d *Driver) FlushReplay(ctx context.Context, replica driver.Side, targets map[int]uint64,
	progress func(p int)) []driver.Result {
	rp := replayPoll{c: d.client(replica.Endpoint(0)), account: replica.Account, targets: targets,
		progress: progress, done: make(map[int]driver.Result, len(targets))}
	for p := range targets {
		rp.todo = append(rp.todo, p)
	}
	slices.Sort(rp.todo)
	all := slices.Clone(rp.todo)
	rp.run(ctx)
	out := make([]driver.Result, len(all))
	for i, p := range all {
		out[i] = rp.done[p]
	}
	return out
}

// replayPoll is one FlushReplay's state: the partitions still to replay
// and the answers of the others.
type replayPoll struct {
	c        *stamp.Client
	account  string
	targets  map[int]uint64
	progress func(p int)
	todo     []int // still replaying, ascending
	done     map[int]driver.Result
}

// run long-polls until every partition has its answer.
func (rp *replayPoll) run(ctx context.Context) {
	var failingSince time.Time
	backoff := firstBackoff
	for len(rp.todo) > 0 {
		r, err := rp.c.FlushReplay(ctx, rp.account, stamp.ControlRequest{
			Partitions: rp.todo, Targets: rp.targetsOf(rp.todo), WaitMillis: int(replayWait.Milliseconds()),
		})
		var pe *stamp.PartitionErrors
		if err != nil && !errors.As(err, &pe) {
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			err = classify(err)
			if driver.IsFinal(err) || ctx.Err() != nil || time.Since(failingSince) >= replayRetryFor ||
				!clock.Sleep(ctx, backoff) {
				rp.answerRest(wholeCall(rp.todo, err))
				return
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		failingSince, backoff = time.Time{}, firstBackoff
		if final := rp.take(r.Results); final != nil {
			rp.answerRest(fmt.Errorf("not waited for: %v", final))
			return
		}
		if err := ctx.Err(); err != nil {
			rp.answerRest(err)
			return
		}
	}
}

// take records one answer: done partitions and refused ones leave todo. It
// returns the first final refusal.
func (rp *replayPoll) take(results []stamp.ControlResult) (final error) {
	var todo []int
	asked := make(map[int]bool, len(rp.todo))
	for _, p := range rp.todo {
		asked[p] = true
	}
	for _, pr := range results {
		if !asked[pr.Partition] {
			continue
		}
		delete(asked, pr.Partition)
		perr := classify(pr.Err())
		switch {
		case perr != nil:
			rp.done[pr.Partition] = driver.Result{Partition: pr.Partition, Err: perr}
			if driver.IsFinal(perr) && final == nil {
				final = fmt.Errorf("partition %d: %w", pr.Partition, perr)
			}
		case pr.Done:
			rp.done[pr.Partition] = driver.Result{Partition: pr.Partition, Position: pr.LSN,
				Took: took(pr.Status.ReplayStartedAt, pr.Status.ReplayDoneAt)}
			if rp.progress != nil {
				rp.progress(pr.Partition)
			}
		default:
			todo = append(todo, pr.Partition)
		}
	}
	for p := range asked { // not in the answer: answered as such (the order of a map's keys does not matter here)
		rp.done[p] = driver.Result{Partition: p, Err: fmt.Errorf("partition %d is missing from the stamp's answer", p)}
	}
	rp.todo = todo
	return final
}

// answerRest answers err for every partition still to replay.
func (rp *replayPoll) answerRest(err error) {
	for _, p := range rp.todo {
		rp.done[p] = driver.Result{Partition: p, Err: err}
	}
	rp.todo = nil
}

// targetsOf is the targets of ps that are set (a partition without one
// replays everything it received).
func (rp *replayPoll) targetsOf(ps []int) map[int]uint64 {
	out := make(map[int]uint64, len(ps))
	for _, p := range ps {
		if t := rp.targets[p]; t > 0 {
			out[p] = t
		}
	}
	return out
}
