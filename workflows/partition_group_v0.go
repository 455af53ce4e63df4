package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// groupV0 is PartitionGroupFailover as it ran before versionBoundedFlush:
// no deadline of its own, replay failures retried by Temporal. It is kept,
// with the same commands in the same order, so that groups started by an
// older worker and the committed histories replay; delete it once no such
// group can be in flight (the namespace's retention after every worker
// runs version 1).
type groupV0 struct {
	in        GroupInput
	res       GroupResult
	index     map[int]int
	send      workflow.Context
	replayCtx workflow.Context
	replays   []workflow.Future
}

func partitionGroupV0(ctx workflow.Context, in GroupInput) (GroupResult, error) {
	g := newGroupV0(ctx, in)
	var pending, skipped []int
	for i, p := range in.Partitions {
		if in.Unplanned && in.Skip[i] {
			skipped = append(skipped, p)
		} else {
			pending = append(pending, p)
		}
	}
	g.giveUp(skipped)
	if err := g.sendAll(ctx, pending); err != nil {
		return g.res, err
	}
	return g.res, g.awaitReplays(ctx)
}

func newGroupV0(ctx workflow.Context, in GroupInput) *groupV0 {
	n := len(in.Partitions)
	g := &groupV0{in: in, index: make(map[int]int, n), res: GroupResult{
		SentLSN: make(
			[]uint64,
			n,
		), ReplayedLSN: make([]uint64, n), SendMillis: make([]int64, n), ReplayMillis: make([]int64, n),
	}}
	for i, p := range in.Partitions {
		g.index[p] = i
	}
	span := fmt.Sprintf("partitions %d-%d", in.Partitions[0], in.Partitions[n-1])
	hb := in.HeartbeatTimeout
	if hb <= 0 {
		hb = 10 * time.Second
	}
	g.send = withActivity(ctx, 2*time.Minute, hb, 5, "flush-send "+span)
	if in.Unplanned {
		g.send = withActivity(ctx, 15*time.Second, hb, 2, "flush-send "+span+" (source may be down)")
	}
	g.replayCtx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: in.ReplayTimeout,
		HeartbeatTimeout:    hb,
		Summary:             "flush-replay " + span,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
		},
	})
	return g
}

func (g *groupV0) replay(targets []activities.PartitionLSN) {
	g.replays = append(g.replays, workflow.ExecuteActivity(g.replayCtx, acts.FlushReplay,
		activities.FlushReplayInput{Account: g.in.Account, ToURL: g.in.ToURL, Targets: targets}))
}

// giveUp replays what the destination received of ps (LSN 0 = all).
func (g *groupV0) giveUp(ps []int) {
	if len(ps) == 0 {
		return
	}
	targets := make([]activities.PartitionLSN, len(ps))
	for i, p := range ps {
		targets[i] = activities.PartitionLSN{Partition: p}
	}
	g.res.GivenUp = append(g.res.GivenUp, ps...)
	g.replay(targets)
}

// sendAll flush-sends pending, replaying what was sent at once and
// retrying what failed until FlushSendGiveUp.
func (g *groupV0) sendAll(ctx workflow.Context, pending []int) error {
	in := g.in
	deadline := workflow.Now(ctx).Add(in.FlushSendGiveUp)
	for len(pending) > 0 {
		var sr activities.FlushSendResult
		err := workflow.ExecuteActivity(g.send, acts.FlushSend,
			activities.FlushSendInput{Account: in.Account, FromURL: in.FromURL, Partitions: pending}).Get(ctx, &sr)
		if err != nil && !in.Unplanned {
			return fmt.Errorf("flush-send %d partitions from %d: %w", len(pending), pending[0], err)
		}
		if err != nil {
			sr = activities.FlushSendResult{Failed: pending, LastError: err.Error()}
		}
		if err := g.sent(ctx, sr); err != nil {
			return err
		}
		pending = sr.Failed
		if len(pending) == 0 {
			break
		}
		if !workflow.Now(ctx).Before(deadline) {
			if in.Unplanned {
				g.giveUp(pending)
				break
			}
			return temporal.NewNonRetryableApplicationError(
				fmt.Sprintf(
					"flush-send of partitions %v still failing after %s: %s",
					pending,
					in.FlushSendGiveUp,
					sr.LastError,
				),
				ErrTypeFlushSendGaveUp,
				nil,
			)
		}
		if err := workflow.Sleep(ctx, flushSendRetryPause); err != nil {
			return err
		}
	}
	return nil
}

// sent records a flush-send's sent partitions and replays them now.
func (g *groupV0) sent(ctx workflow.Context, sr activities.FlushSendResult) error {
	for _, s := range sr.Sent {
		i := g.index[s.Partition]
		if err := sentShort(s, g.in.FinalLSN[i]); err != nil {
			return err
		}
		g.res.SentLSN[i], g.res.SendMillis[i] = s.LSN, s.Millis
	}
	if len(sr.Sent) > 0 {
		g.replay(sr.Sent)
		if f := signalProgress(ctx, g.in.Group, len(sr.Sent)); f != nil {
			_ = f.Get(ctx, nil)
		}
	}
	return nil
}

// awaitReplays waits for every replay, in the order they started.
func (g *groupV0) awaitReplays(ctx workflow.Context) error {
	for _, f := range g.replays {
		var rr activities.FlushReplayResult
		if err := f.Get(ctx, &rr); err != nil {
			return fmt.Errorf("flush-replay: %w", err)
		}
		for _, r := range rr.Replayed {
			i := g.index[r.Partition]
			g.res.ReplayedLSN[i], g.res.ReplayMillis[i] = r.LSN, r.Millis
		}
	}
	return nil
}
