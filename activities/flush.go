package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/batonhq/baton/internal/clock"
	"github.com/batonhq/baton/stamp"
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
// partition the stamp refuses on its own is reported in Failed while the
// others are sent; if the whole group call fails on the way, it retries
// partition by partition, so one bad partition cannot stall the rest. It
// returns an error only if nothing was sent, or for a final refusal.
func (a *Activities) FlushSend(ctx context.Context, in FlushSendInput) (res FlushSendResult, err error) {
	defer keepAlive(ctx)()
	defer res.Timing.record(ctx)
	if ss, ok, err := a.storeFor(ctx, in.Account, in.FromURL); ok || err != nil {
		if err != nil {
			return res, classify("flush-send "+in.Account, err)
		}
		return a.flushSendStore(ctx, ss, in)
	}
	src := a.stamp(in.FromURL)
	what := fmt.Sprintf("flush-send %s (%d partitions from %d)", in.Account, len(in.Partitions), in.Partitions[0])
	r, err := src.FlushSend(ctx, in.Account, stamp.ControlRequest{Partitions: in.Partitions})
	var pe *stamp.PartitionErrors
	switch {
	case err == nil || errors.As(err, &pe):
		for _, pr := range r.Results {
			switch perr := pr.Err(); {
			case perr == nil:
				res.Sent = append(res.Sent, sendResult(pr))
			case !retryable(perr):
				return FlushSendResult{}, classify(what, &Refusal{Partition: pr.Partition, Err: perr})
			default:
				res.fail(pr.Partition, perr)
			}
		}
		return res, nil
	case len(in.Partitions) == 1 || !retryable(err):
		return res, classify(what, err)
	}
	var mu sync.Mutex
	perPartition(ctx, in.Partitions, func(ctx context.Context, p int) {
		r, perr := src.FlushSend(ctx, in.Account, stamp.ControlRequest{Partitions: []int{p}})
		mu.Lock()
		defer mu.Unlock()
		if perr != nil {
			res.fail(p, perr)
			return
		}
		res.Sent = append(res.Sent, sendResult(r.Results[0]))
	})
	if len(res.Sent) == 0 {
		return FlushSendResult{}, classify(what, err)
	}
	slices.SortFunc(res.Sent, func(x, y PartitionLSN) int { return x.Partition - y.Partition })
	return res, nil
}

// perPartition calls fn for each partition, 8 at a time.
func perPartition(ctx context.Context, ps []int, fn func(ctx context.Context, p int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, p := range ps {
		wg.Add(1)
		sem <- struct{}{}
		go func(p int) {
			defer wg.Done()
			defer func() { <-sem }()
			fn(ctx, p)
		}(p)
	}
	wg.Wait()
}

func sendResult(r stamp.ControlResult) PartitionLSN {
	return PartitionLSN{Partition: r.Partition, LSN: r.LSN, Millis: millis(r.Status.SendStartedAt, r.Status.SendDoneAt)}
}

func millis(from, to time.Time) int64 {
	if from.IsZero() || to.IsZero() || to.Before(from) {
		return 0
	}
	return to.Sub(from).Milliseconds()
}

// FlushReplayInput replays a group of partitions on the destination up to
// exactly what was sent (a target LSN of 0 means everything received: the
// unplanned case of a partition whose source was given up on).
type FlushReplayInput struct {
	Account string
	ToURL   string
	Targets []PartitionLSN
	// Wait is the long-poll per call; 0 means 1s. Each answer is a heartbeat.
	Wait time.Duration
	// ReportFailed: partitions refused with an answer that may go away are
	// returned in Failed, with their errors, for the caller to retry on
	// their own (a whole call that keeps failing on the way is retried here
	// for RetryFor first). Without it, any refusal fails the activity.
	ReportFailed bool
	// RetryFor bounds the retries of a whole call that fails on the way
	// before every partition still to replay is reported failed; 0 = 5s.
	RetryFor time.Duration
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

// FlushReplay waits, long-polling the destination, until every partition has
// replayed up to its target, heartbeating its progress. A partition the
// stamp refuses on its own is set aside while the others go on; it is
// returned in Failed once they are done. A retry simply asks again: the
// stamp keeps replaying from its durable LSN. A final refusal (stale epoch,
// conflict) fails it non-retryably, naming the partition.
func (a *Activities) FlushReplay(ctx context.Context, in FlushReplayInput) (FlushReplayResult, error) {
	// A slow answer must not look like a dead worker.
	defer keepAlive(ctx)()
	if ss, ok, err := a.storeFor(ctx, in.Account, in.ToURL); ok || err != nil {
		if err != nil {
			return FlushReplayResult{}, classify("flush-replay "+in.Account, err)
		}
		return a.flushReplayStore(ctx, ss, in)
	}
	rp := replayPoll{dst: a.stamp(in.ToURL), in: in}
	rp.wait, rp.retryFor = in.Wait, in.RetryFor
	if rp.wait <= 0 {
		rp.wait = time.Second
	}
	if rp.retryFor <= 0 {
		rp.retryFor = 5 * time.Second
	}
	rp.targets = make(map[int]uint64, len(in.Targets))
	for _, t := range in.Targets {
		if t.LSN > 0 {
			rp.targets[t.Partition] = t.LSN
		}
		rp.todo = append(rp.todo, t.Partition)
	}
	if err := rp.run(ctx); err != nil {
		return FlushReplayResult{}, err
	}
	if len(rp.res.Failed) > 0 && !in.ReportFailed {
		return FlushReplayResult{}, fmt.Errorf(
			"flush-replay %s: partition %d: %s",
			in.Account,
			rp.res.Failed[0],
			rp.res.Errors[0],
		)
	}
	rp.res.Timing = timing(ctx)
	return rp.res, nil
}

// replayPoll is one FlushReplay's state: the partitions still to replay
// and what is known of the others.
type replayPoll struct {
	dst            *stamp.Client
	in             FlushReplayInput
	wait, retryFor time.Duration
	targets        map[int]uint64
	todo           []int // still replaying, ascending
	res            FlushReplayResult
}

// run long-polls until every partition is replayed or set aside.
func (rp *replayPoll) run(ctx context.Context) error {
	var failingSince time.Time
	backoff := firstBackoff
	for len(rp.todo) > 0 {
		r, err := rp.dst.FlushReplay(
			ctx,
			rp.in.Account,
			stamp.ControlRequest{
				Partitions: rp.todo,
				Targets:    rp.targetsOf(rp.todo),
				WaitMillis: int(rp.wait.Milliseconds()),
			},
		)
		var pe *stamp.PartitionErrors
		if err != nil && !errors.As(err, &pe) {
			if !retryable(err) || ctx.Err() != nil {
				return classify(rp.what(), err)
			}
			if failingSince.IsZero() {
				failingSince = time.Now()
			}
			if time.Since(failingSince) >= rp.retryFor {
				rp.setAside(rp.todo, err)
				return nil
			}
			activity.RecordHeartbeat(ctx, fmt.Sprintf("%d partitions to replay; retrying: %v", len(rp.todo), err))
			if !clock.Sleep(ctx, backoff) {
				return classify(rp.what(), ctx.Err())
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		failingSince, backoff = time.Time{}, firstBackoff
		if err := rp.take(ctx, r.Results); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	slices.Sort(rp.res.Failed)
	return nil
}

// take records one answer: done partitions leave todo, refused ones are
// set aside (or fail it, if final).
func (rp *replayPoll) take(ctx context.Context, results []stamp.ControlResult) error {
	var todo []int
	var behind uint64
	for _, pr := range results {
		perr := pr.Err()
		switch {
		case perr != nil && !retryable(perr):
			return classify(rp.what(), &Refusal{Partition: pr.Partition, Err: perr})
		case perr != nil:
			rp.setAside([]int{pr.Partition}, perr)
		case pr.Done:
			rp.res.Replayed = append(
				rp.res.Replayed,
				PartitionLSN{
					Partition: pr.Partition,
					LSN:       pr.LSN,
					Millis:    millis(pr.Status.ReplayStartedAt, pr.Status.ReplayDoneAt),
				},
			)
		default:
			todo = append(todo, pr.Partition)
			behind += pr.Status.ReplayTarget - min(pr.LSN, pr.Status.ReplayTarget)
		}
	}
	rp.todo = todo
	if activity.IsActivity(ctx) {
		activity.RecordHeartbeat(ctx, fmt.Sprintf("%d/%d partitions replayed, %d set aside, %d ops to go",
			len(rp.res.Replayed), len(rp.in.Targets), len(rp.res.Failed), behind))
	}
	return nil
}

func (rp *replayPoll) setAside(ps []int, err error) {
	for _, p := range ps {
		rp.res.Failed = append(rp.res.Failed, p)
		rp.res.Errors = append(rp.res.Errors, err.Error())
	}
	rp.todo = slices.DeleteFunc(rp.todo, func(p int) bool { return slices.Contains(ps, p) })
}

func (rp *replayPoll) targetsOf(ps []int) map[int]uint64 {
	out := make(map[int]uint64, len(ps))
	for _, p := range ps {
		if t, ok := rp.targets[p]; ok {
			out[p] = t
		}
	}
	return out
}

func (rp *replayPoll) what() string {
	return fmt.Sprintf(
		"flush-replay %s (%d partitions from %d)",
		rp.in.Account,
		len(rp.in.Targets),
		rp.in.Targets[0].Partition,
	)
}
