package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/stampdriver"
	"github.com/batonhq/baton/stamp"
)

// PartitionFailure is a partition a control call could not do yet, with the
// last answer it got.
type PartitionFailure struct {
	Partition int
	Error     string
}

// controlAll calls a stamp's control op on ps in chunks
// (stampdriver.Control), retrying on their own the partitions refused with
// an answer that may go away, until until; a final refusal of any
// partition stops it at once with that error. It is for the stamp's own
// reprotect steps (demote, seed, protect), which read more of an answer
// than the driver contract carries.
func controlAll(
	ctx context.Context,
	until time.Time,
	ps []int,
	call func(ctx context.Context, chunk []int) (stamp.ControlResponse, error),
) ([]stamp.ControlResult, []PartitionFailure, error) {
	answers, failed, err := untilDone(ctx, until, ps,
		func(ctx context.Context, ps []int) []stampdriver.Answer { return stampdriver.Control(ctx, ps, call) },
		func(a stampdriver.Answer) (int, error) { return a.Partition, a.Err })
	done := make([]stamp.ControlResult, len(answers))
	for i, a := range answers {
		done[i] = a.ControlResult
	}
	return done, failed, err
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
	what := fmt.Sprintf("fence %s", in.Account)
	ss, err := a.storeFor(ctx, in.Account, in.FromURL)
	if err != nil {
		return res, classify(what, err)
	}
	ps := in.Only
	if ps == nil {
		ps = AllPartitions(in.Partitions)
	}
	ss.side.Epoch = in.Epoch
	res = FenceResult{FinalLSN: make([]uint64, in.Partitions), Fenced: make([]bool, in.Partitions)}
	done, failed, final := untilAll(ctx, budget(ctx, in.Until), ps, func(ctx context.Context, ps []int) []driver.Result {
		return ss.st.Fence(ctx, ss.side, ps, fenceLease)
	})
	if final != nil {
		return res, classify(what, final)
	}
	if err := outOfTime(ctx, what, len(failed)); err != nil {
		return res, err
	}
	for _, r := range done {
		res.FinalLSN[r.Partition], res.Fenced[r.Partition] = r.Position, true
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
	what := fmt.Sprintf("unfence %s", in.Account)
	ss, err := a.storeFor(ctx, in.Account, in.FromURL)
	if err != nil {
		return classify(what, err)
	}
	ss.side.Epoch = in.Epoch
	_, failed, final := untilAll(ctx, budget(ctx, time.Time{}), AllPartitions(in.Partitions),
		func(ctx context.Context, ps []int) []driver.Result { return ss.st.Unfence(ctx, ss.side, ps) })
	if final != nil {
		return classify(what, final)
	}
	if len(failed) > 0 {
		return stillFailing(what, failed)
	}
	return nil
}
