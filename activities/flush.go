package activities

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"

	"go.temporal.io/sdk/activity"

	"github.com/batonhq/baton/driver"
)

// PartitionLSN is one partition's LSN and how long the step took for it.
type PartitionLSN struct {
	Partition int
	LSN       uint64
	Millis    int64
}

// FlushSendInput flush-sends a group of partitions.
type FlushSendInput struct {
	Account    string
	FromURL    string
	Partitions []int
}

// FlushSendResult: Sent partitions are on their way to replay; Failed ones
// (Errors[i] is Failed[i]'s last error, LastError the last of them) are for
// the caller to retry, so a partition that fails does not hold back its
// group.
type FlushSendResult struct {
	Sent      []PartitionLSN
	Failed    []int
	Errors    []string
	LastError string
	Timing
}

func (r *FlushSendResult) fail(p int, err error) {
	r.Failed = append(r.Failed, p)
	r.Errors = append(r.Errors, err.Error())
	r.LastError = fmt.Sprintf("partition %d: %v", p, err)
}

// FlushSend ships everything pending on the partitions as one group. A
// partition refused on its own is reported in Failed while the others are
// sent (the stamp's driver retries a group call that failed on the way
// partition by partition, so one bad partition cannot stall the rest). It
// returns an error only for a call that failed as a whole, or for a final
// refusal.
func (a *Activities) FlushSend(ctx context.Context, in FlushSendInput) (res FlushSendResult, err error) {
	defer keepAlive(ctx)()
	defer res.Timing.record(ctx)
	if len(in.Partitions) == 0 {
		return res, nil
	}
	what := fmt.Sprintf("flush-send %s (%d partitions from %d)", in.Account, len(in.Partitions), in.Partitions[0])
	ss, err := a.storeFor(ctx, in.Account, in.FromURL)
	if err != nil {
		return res, classify(what, err)
	}
	whole := 0 // partitions that failed with the whole call
	for _, r := range ss.st.FlushSend(ctx, ss.side, ss.other, in.Partitions) {
		if r.Err != nil && driver.IsWholeCall(r.Err) {
			whole++
		}
		switch {
		case r.Err == nil:
			res.Sent = append(res.Sent, PartitionLSN{Partition: r.Partition, LSN: r.Position, Millis: r.Took.Milliseconds()})
		case driver.IsFinal(r.Err):
			return FlushSendResult{}, classify(what, refusal(r.Partition, r.Err))
		default:
			res.fail(r.Partition, r.Err)
		}
	}
	if err := outOfTime(ctx, what, len(res.Failed)); err != nil {
		return FlushSendResult{}, err
	}
	if whole == len(in.Partitions) {
		return FlushSendResult{}, fmt.Errorf("%s: %s", what, res.Errors[0])
	}
	return res, nil
}

// FlushReplayInput replays a group of partitions on the destination up to
// exactly what was sent (a target LSN of 0 means everything received: the
// unplanned case of a partition whose source was given up on).
type FlushReplayInput struct {
	Account string
	ToURL   string
	Targets []PartitionLSN
	// ReportFailed: partitions refused with an answer that may go away are
	// returned in Failed, with their errors, for the caller to retry on
	// their own (a stamp's whole call that keeps failing on the way is
	// retried for a few seconds first). Without it, any refusal fails the
	// activity.
	ReportFailed bool
}

// FlushReplayResult gives each partition's replayed LSN and replay time,
// and (ReportFailed) the partitions refused on their own, Errors[i] being
// Failed[i]'s last error.
type FlushReplayResult struct {
	Replayed []PartitionLSN
	Failed   []int
	Errors   []string
	Timing
}

// FlushReplay waits until every partition has replayed up to its target,
// heartbeating each one replayed (the stamp's driver long-polls). A
// partition refused on its own is set aside while the others go on; it is
// returned in Failed once they are done. A retry simply asks again: the
// replica keeps replaying from its durable position. A final refusal
// (stale epoch, conflict) fails it non-retryably, naming the partition.
func (a *Activities) FlushReplay(ctx context.Context, in FlushReplayInput) (FlushReplayResult, error) {
	// A slow answer must not look like a dead worker.
	defer keepAlive(ctx)()
	if len(in.Targets) == 0 {
		return FlushReplayResult{Timing: timing(ctx)}, nil
	}
	what := fmt.Sprintf("flush-replay %s (%d partitions from %d)", in.Account, len(in.Targets), in.Targets[0].Partition)
	ss, err := a.storeFor(ctx, in.Account, in.ToURL)
	if err != nil {
		return FlushReplayResult{}, classify(what, err)
	}
	targets := make(map[int]uint64, len(in.Targets))
	for _, t := range in.Targets {
		targets[t.Partition] = t.LSN
	}
	var replayed atomic.Int64 // progress is told from each partition's goroutine
	progress := func(int) {
		if n := replayed.Add(1); activity.IsActivity(ctx) {
			activity.RecordHeartbeat(ctx, fmt.Sprintf("%d/%d partitions replayed", n, len(in.Targets)))
		}
	}
	rs := ss.st.FlushReplay(ctx, ss.side, targets, progress)
	// A final refusal first: it is why the others were not waited for.
	if i := slices.IndexFunc(rs, func(r driver.Result) bool { return driver.IsFinal(r.Err) }); i >= 0 {
		return FlushReplayResult{}, classify(what, refusal(rs[i].Partition, rs[i].Err))
	}
	var res FlushReplayResult
	for _, r := range rs {
		switch {
		case r.Err == nil:
			res.Replayed = append(res.Replayed, PartitionLSN{Partition: r.Partition, LSN: r.Position, Millis: r.Took.Milliseconds()})
		case !in.ReportFailed:
			return FlushReplayResult{}, classify(what, refusal(r.Partition, r.Err))
		default:
			res.Failed = append(res.Failed, r.Partition)
			res.Errors = append(res.Errors, r.Err.Error())
		}
	}
	if err := outOfTime(ctx, what, len(res.Failed)); err != nil {
		return FlushReplayResult{}, err
	}
	res.Timing = timing(ctx)
	return res, nil
}
