package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/batonhq/baton/internal/clock"
	"github.com/batonhq/baton/stamp"
)

// PartitionFailure is a partition a control call could not do yet, with the
// last answer it got.
type PartitionFailure struct {
	Partition int
	Error     string
}

// controlAll calls a control op on ps in chunks of chunkSize (at most
// parallelChunks at once). Partitions refused with an answer that may go
// away (the stamp's per-partition refusal, or every partition of a chunk
// whose call failed on the way) are retried on their own, backing off,
// until until. It returns the result of every partition done and the
// partitions still refused when until came, each with its last error. A
// final refusal of any partition stops it at once with that error.
func controlAll(
	ctx context.Context,
	until time.Time,
	ps []int,
	call func(ctx context.Context, chunk []int) (stamp.ControlResponse, error),
) ([]stamp.ControlResult, []PartitionFailure, error) {
	var (
		mu   sync.Mutex
		done []stamp.ControlResult
	)
	wait := firstBackoff
	for {
		var failed []PartitionFailure
		err := forChunks(ctx, ps, func(ctx context.Context, chunk []int) error {
			r, err := call(ctx, chunk)
			var pe *stamp.PartitionErrors
			if err != nil && !errors.As(err, &pe) {
				if !retryable(err) {
					return err
				}
				mu.Lock()
				for _, p := range chunk {
					failed = append(failed, PartitionFailure{Partition: p, Error: err.Error()})
				}
				mu.Unlock()
				return nil
			}
			mu.Lock()
			defer mu.Unlock()
			for _, res := range r.Results {
				perr := res.Err()
				switch {
				case perr == nil:
					done = append(done, res)
				case !retryable(perr):
					return &Refusal{Partition: res.Partition, Err: perr}
				default:
					failed = append(failed, PartitionFailure{Partition: res.Partition, Error: perr.Error()})
				}
			}
			return nil
		})
		if err != nil {
			return done, nil, err
		}
		slices.SortFunc(failed, func(x, y PartitionFailure) int { return x.Partition - y.Partition })
		if len(failed) == 0 || !time.Now().Add(wait).Before(until) || !clock.Sleep(ctx, wait) {
			return done, failed, nil
		}
		wait = min(2*wait, maxBackoff)
		ps = ps[:0:0]
		for _, f := range failed {
			ps = append(ps, f.Partition)
		}
	}
}

// stillFailing is the error of a control op that could not do every
// partition in time: retryable, naming them.
func stillFailing(what string, failed []PartitionFailure) error {
	ps := make([]int, len(failed))
	for i, f := range failed {
		ps[i] = f.Partition
	}
	return fmt.Errorf(
		"%s: %d partitions still refused %s (last: %s)",
		what,
		len(failed),
		spanOf(ps),
		failed[len(failed)-1].Error,
	)
}

// spanOf names a few partitions: [3], [3 7 9], [0 1 2 3 4 5 6 7] and 40 more.
func spanOf(ps []int) string {
	if len(ps) <= 8 {
		return fmt.Sprint(ps)
	}
	return fmt.Sprintf("%v and %d more", ps[:8], len(ps)-8)
}

// FenceInput fences every partition of an account on the source.
type FenceInput struct {
	Account    string
	FromURL    string
	Partitions int
	// Epoch the partitions must be at (the precheck's); a mismatch means
	// someone else moved the account, and fencing is refused.
	Epoch uint64
	// Only these partitions (nil = all).
	Only []int
	// BestEffort: partitions still refused at Until are reported in
	// Unreachable instead of failing the activity, and the workflow decides
	// (an unplanned failover gives them up; a planned one rolls back).
	BestEffort bool
	// Until: stop retrying refused partitions at this time (zero = the
	// activity's own deadline).
	Until time.Time
}

// FenceResult gives each partition's final LSN, indexed by partition, and
// (best effort) the partitions that could not be fenced with each one's
// last error (Errors[i] is Unreachable[i]'s).
type FenceResult struct {
	FinalLSN    []uint64
	Fenced      []bool
	Unreachable []int
	Errors      []string
	LastError   string
	Timing
}

// Fence stops writes on the source partitions and returns their final LSNs.
// Partitions refused with an answer that may go away are retried on their
// own until Until; a final refusal (stale epoch, not primary) fails it.
func (a *Activities) Fence(ctx context.Context, in FenceInput) (res FenceResult, err error) {
	defer keepAlive(ctx)()
	defer res.Timing.record(ctx)
	ps := in.Only
	if ps == nil {
		ps = AllPartitions(in.Partitions)
	}
	if ss, ok, err := a.storeFor(ctx, in.Account, in.FromURL); ok || err != nil {
		if err != nil {
			return res, classify("fence "+in.Account, err)
		}
		return a.fenceStore(ctx, ss, in, ps)
	}
	src := a.stamp(in.FromURL)
	res = FenceResult{FinalLSN: make([]uint64, in.Partitions), Fenced: make([]bool, in.Partitions)}
	done, failed, err := controlAll(
		ctx,
		budget(ctx, in.Until),
		ps,
		func(ctx context.Context, chunk []int) (stamp.ControlResponse, error) {
			return src.Fence(ctx, in.Account, stamp.ControlRequest{Partitions: chunk, Epoch: in.Epoch})
		},
	)
	what := fmt.Sprintf("fence %s", in.Account)
	if err != nil {
		return res, classify(what, err)
	}
	for _, r := range done {
		res.FinalLSN[r.Partition], res.Fenced[r.Partition] = r.LSN, true
	}
	return res, res.unreachable(what, in.BestEffort, failed)
}

// unreachable records the partitions still failing at the end of a fence:
// best effort, as Unreachable with their errors; otherwise they fail it.
func (res *FenceResult) unreachable(what string, bestEffort bool, failed []PartitionFailure) error {
	if len(failed) > 0 && !bestEffort {
		return stillFailing(what, failed)
	}
	for _, f := range failed {
		res.Unreachable = append(res.Unreachable, f.Partition)
		res.Errors = append(res.Errors, f.Error)
		res.LastError = fmt.Sprintf("partition %d: %s", f.Partition, f.Error)
	}
	return nil
}

// UnfenceInput rolls a fence back.
type UnfenceInput struct {
	Account    string
	FromURL    string
	Partitions int
	Epoch      uint64
}

// Unfence lets the source take writes again: the rollback of a failover that
// stopped before promote. Refused partitions are retried on their own until
// the activity's deadline; then it fails (retryably) naming them.
func (a *Activities) Unfence(ctx context.Context, in UnfenceInput) error {
	defer keepAlive(ctx)()
	if ss, ok, err := a.storeFor(ctx, in.Account, in.FromURL); ok || err != nil {
		if err != nil {
			return classify("unfence "+in.Account, err)
		}
		return a.unfenceStore(ctx, ss, in)
	}
	src := a.stamp(in.FromURL)
	_, failed, err := controlAll(
		ctx,
		budget(ctx, time.Time{}),
		AllPartitions(in.Partitions),
		func(ctx context.Context, chunk []int) (stamp.ControlResponse, error) {
			return src.Unfence(ctx, in.Account, stamp.ControlRequest{Partitions: chunk, Epoch: in.Epoch})
		},
	)
	what := fmt.Sprintf("unfence %s", in.Account)
	if err != nil {
		return classify(what, err)
	}
	if len(failed) > 0 {
		return stillFailing(what, failed)
	}
	return nil
}
