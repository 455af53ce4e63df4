package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// flushSendRetryPause is the pause before a group retries the partitions
// whose flush-send failed while the others went on to replay.
const flushSendRetryPause = time.Second

// PartitionGroupFailover flush-sends a group of fenced partitions on the
// source, then flush-replays on the destination exactly what was sent. The
// partitions are independent: the group is sent in one call, but partitions
// that fail are retried on their own while the others already replay, so
// one slow or failing partition holds back nobody else.
//
// Unplanned, a partition whose source was given up on (Skip, or flush-send
// still failing after FlushSendGiveUp) replays everything the destination
// received and is reported in GivenUp.
func PartitionGroupFailover(ctx workflow.Context, in GroupInput) (GroupResult, error) {
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
			reportProgress(ctx, in.Group, len(sr.Sent))
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

// reportProgress tells the parent how many partitions this group has sent,
// for its progress query. Best effort: a lost report only makes the
// progress bar coarser.
func reportProgress(ctx workflow.Context, group, sent int) {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return
	}
	_ = workflow.SignalExternalWorkflow(ctx, parent.ID, parent.RunID, SignalGroupProgress, GroupProgress{Group: group, Sent: sent}).Get(ctx, nil)
}
