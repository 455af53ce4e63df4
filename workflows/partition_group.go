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
func PartitionGroupFailover(ctx workflow.Context, in GroupInput) (GroupResult, error) {
	n := len(in.Partitions)
	res := GroupResult{SentLSN: make([]uint64, n), ReplayedLSN: make([]uint64, n), SendMillis: make([]int64, n), ReplayMillis: make([]int64, n)}
	index := make(map[int]int, n)
	for i, p := range in.Partitions {
		index[p] = i
	}
	sendCtx := withActivity(ctx, 2*time.Minute, 0, 5, fmt.Sprintf("flush-send partitions %d-%d", in.Partitions[0], in.Partitions[n-1]))
	replayCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: in.ReplayTimeout,
		HeartbeatTimeout:    15 * time.Second,
		Summary:             fmt.Sprintf("flush-replay partitions %d-%d", in.Partitions[0], in.Partitions[n-1]),
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
		},
	})

	giveUp := workflow.Now(ctx).Add(in.FlushSendGiveUp)
	pending := in.Partitions
	var replays []workflow.Future
	for len(pending) > 0 {
		var sr activities.FlushSendResult
		err := workflow.ExecuteActivity(sendCtx, acts.FlushSend,
			activities.FlushSendInput{Account: in.Account, FromURL: in.FromURL, Partitions: pending}).Get(ctx, &sr)
		if err != nil {
			return res, fmt.Errorf("flush-send %d partitions from %d: %w", len(pending), pending[0], err)
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
		replays = append(replays, workflow.ExecuteActivity(replayCtx, acts.FlushReplay,
			activities.FlushReplayInput{Account: in.Account, ToURL: in.ToURL, Targets: sr.Sent}))
		pending = sr.Failed
		if len(pending) == 0 {
			break
		}
		if !workflow.Now(ctx).Before(giveUp) {
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
