package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// partitionGroupV0 is PartitionGroupFailover as it ran before version
// versionBoundedFlush: no deadline of its own, replay failures retried by
// Temporal. It is kept, unchanged, so that groups started by an older worker
// and the committed histories replay; delete it once no such group can be
// in flight (the namespace's retention after every worker runs version 1).
func partitionGroupV0(ctx workflow.Context, in GroupInput) (GroupResult, error) {
	n := len(in.Partitions)
	res := GroupResult{SentLSN: make([]uint64, n), ReplayedLSN: make([]uint64, n), SendMillis: make([]int64, n), ReplayMillis: make([]int64, n)}
	index := make(map[int]int, n)
	for i, p := range in.Partitions {
		index[p] = i
	}
	span := fmt.Sprintf("partitions %d-%d", in.Partitions[0], in.Partitions[n-1])
	hb := in.HeartbeatTimeout
	if hb <= 0 {
		hb = 10 * time.Second
	}
	sendCtx := withActivity(ctx, 2*time.Minute, hb, 5, "flush-send "+span)
	if in.Unplanned {
		sendCtx = withActivity(ctx, 15*time.Second, hb, 2, "flush-send "+span+" (source may be down)")
	}
	replayCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: in.ReplayTimeout,
		HeartbeatTimeout:    hb,
		Summary:             "flush-replay " + span,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
		},
	})
	var replays []workflow.Future
	replay := func(targets []activities.PartitionLSN) {
		replays = append(replays, workflow.ExecuteActivity(replayCtx, acts.FlushReplay,
			activities.FlushReplayInput{Account: in.Account, ToURL: in.ToURL, Targets: targets}))
	}
	// giveUp replays what the destination received of ps (LSN 0 = all).
	giveUp := func(ps []int) {
		if len(ps) == 0 {
			return
		}
		targets := make([]activities.PartitionLSN, len(ps))
		for i, p := range ps {
			targets[i] = activities.PartitionLSN{Partition: p}
		}
		res.GivenUp = append(res.GivenUp, ps...)
		replay(targets)
	}

	var pending, skipped []int
	for i, p := range in.Partitions {
		if in.Unplanned && in.Skip[i] {
			skipped = append(skipped, p)
		} else {
			pending = append(pending, p)
		}
	}
	giveUp(skipped)
	deadline := workflow.Now(ctx).Add(in.FlushSendGiveUp)
	sent := 0
	for len(pending) > 0 {
		var sr activities.FlushSendResult
		err := workflow.ExecuteActivity(sendCtx, acts.FlushSend,
			activities.FlushSendInput{Account: in.Account, FromURL: in.FromURL, Partitions: pending}).Get(ctx, &sr)
		if err != nil && !in.Unplanned {
			return res, fmt.Errorf("flush-send %d partitions from %d: %w", len(pending), pending[0], err)
		}
		if err != nil {
			sr = activities.FlushSendResult{Failed: pending, LastError: err.Error()}
		}
		for _, s := range sr.Sent {
			i := index[s.Partition]
			// After the fence, flush-send must have shipped up to the final
			// LSN; anything less would be a silent loss.
			if s.LSN < in.FinalLSN[i] {
				return res, temporal.NewNonRetryableApplicationError(
					fmt.Sprintf("partition %d: flush-send reached LSN %d, short of its final LSN %d", s.Partition, s.LSN, in.FinalLSN[i]),
					"FlushSendShort", nil)
			}
			res.SentLSN[i], res.SendMillis[i] = s.LSN, s.Millis
		}
		// Replay what was sent now, while failed partitions are retried.
		if len(sr.Sent) > 0 {
			replay(sr.Sent)
			sent += len(sr.Sent)
			if f := signalProgress(ctx, in.Group, len(sr.Sent)); f != nil {
				_ = f.Get(ctx, nil)
			}
		}
		pending = sr.Failed
		if len(pending) == 0 {
			break
		}
		if !workflow.Now(ctx).Before(deadline) {
			if in.Unplanned {
				giveUp(pending)
				break
			}
			return res, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf("flush-send of partitions %v still failing after %s: %s", pending, in.FlushSendGiveUp, sr.LastError),
				"FlushSendGaveUp", nil)
		}
		if err := workflow.Sleep(ctx, flushSendRetryPause); err != nil {
			return res, err
		}
	}
	for _, f := range replays {
		var rr activities.FlushReplayResult
		if err := f.Get(ctx, &rr); err != nil {
			return res, fmt.Errorf("flush-replay: %w", err)
		}
		for _, r := range rr.Replayed {
			i := index[r.Partition]
			res.ReplayedLSN[i], res.ReplayMillis[i] = r.LSN, r.Millis
		}
	}
	return res, nil
}
