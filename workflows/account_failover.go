package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// Phases of an account failover, as reported by the progress query and the
// workflow's current details in the Web UI.
const (
	PhasePrecheck = "precheck"
	PhaseCatchUp  = "catch-up"
	PhaseFence    = "fence"
	PhaseFlush    = "flush" // flush-send + flush-replay, per partition
	PhasePromote  = "promote"
	PhaseRollback = "rollback"
	PhaseDone     = "done"
	PhaseFailed   = "failed"
)

// QueryProgress is the query type that returns a Progress.
const QueryProgress = "progress"

// Progress is what the progress query answers.
type Progress struct {
	Phase       string
	Partitions  int
	Groups      int
	GroupsDone  int
	GroupsRetry int
}

func (o FailoverOptions) withDefaults(partitions int) FailoverOptions {
	if o.GroupSize <= 0 {
		o.GroupSize = 250
	}
	// Keep the fan-out under MaxChildren children per parent.
	if need := (partitions + MaxChildren - 1) / MaxChildren; o.GroupSize < need {
		o.GroupSize = need
	}
	if o.CatchUpMaxLagOps == 0 {
		o.CatchUpMaxLagOps = max(1000, 2*uint64(partitions))
	}
	if o.CatchUpTimeout == 0 {
		o.CatchUpTimeout = 2 * time.Minute
	}
	if o.ReplayTimeout <= 0 {
		o.ReplayTimeout = 30 * time.Minute
	}
	if o.FlushSendGiveUp <= 0 {
		o.FlushSendGiveUp = 10 * time.Minute
	}
	return o
}

// groups splits partitions 0..n-1 into consecutive groups of at most size.
func groups(n, size int) [][]int {
	var out [][]int
	for lo := 0; lo < n; lo += size {
		g := make([]int, 0, min(size, n-lo))
		for p := lo; p < min(lo+size, n); p++ {
			g = append(g, p)
		}
		out = append(out, g)
	}
	return out
}

// AccountFailover fails an account over from its primary stamp to its
// secondary (US 9274906): precheck, catch up, fence, then per partition and
// independently flush-send and flush-replay (children, one per group of
// partitions), then promote and repoint the location service. Until promote
// it rolls back on failure: the source is unfenced and keeps serving.
func AccountFailover(ctx workflow.Context, req FailoverRequest) (FailoverResult, error) {
	res := FailoverResult{
		Account: req.Account, Reason: req.Reason, RequestedBy: req.RequestedBy,
		StartedAt: workflow.Now(ctx),
	}
	prog := &Progress{Phase: PhasePrecheck}
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Progress, error) { return *prog, nil }); err != nil {
		return res, fmt.Errorf("register progress query: %w", err)
	}
	phase := func(p, details string) {
		prog.Phase = p
		workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** %s", p, details))
	}
	phase(PhasePrecheck, fmt.Sprintf("account %s to %s", req.Account, req.ToStamp))

	// 1. Precheck: touches nothing; a refusal is non-retryable.
	var pre activities.PrecheckResult
	err := workflow.ExecuteActivity(withActivity(ctx, 30*time.Second, 0, 3, "precheck "+req.Account), acts.Precheck,
		activities.PrecheckInput{Account: req.Account, From: req.FromStamp, To: req.ToStamp}).Get(ctx, &pre)
	if err != nil {
		phase(PhaseFailed, "precheck refused: nothing was touched")
		return res, fmt.Errorf("precheck refused failover of %s: %w", req.Account, err)
	}
	opts := req.Options.withDefaults(pre.Partitions)
	res.From, res.To, res.OldEpoch, res.NewEpoch = pre.From, pre.To, pre.Epoch, pre.Epoch+1
	res.Partitions = pre.Partitions
	res.PrecheckSendLagOps, res.PrecheckReplayLagOps = pre.SendLagOps, pre.ReplayLagOps
	gs := groups(pre.Partitions, opts.GroupSize)
	res.Groups = len(gs)
	prog.Partitions, prog.Groups = pre.Partitions, len(gs)

	// 2. Catch up while writes still flow, so the fenced window is short.
	if opts.CatchUpTimeout > 0 {
		phase(PhaseCatchUp, fmt.Sprintf("%d ops behind", pre.SendLagOps+pre.ReplayLagOps))
		t0 := workflow.Now(ctx)
		var cu activities.CatchUpResult
		err := workflow.ExecuteActivity(withActivity(ctx, opts.CatchUpTimeout+time.Minute, 15*time.Second, 5, "catch up replication"), acts.CatchUp,
			activities.CatchUpInput{Account: pre.Account, FromURL: pre.FromURL, ToURL: pre.ToURL, Partitions: pre.Partitions,
				MaxLagOps: opts.CatchUpMaxLagOps, Timeout: opts.CatchUpTimeout}).Get(ctx, &cu)
		if err != nil {
			phase(PhaseFailed, "catch-up failed before fencing: nothing was touched")
			return res, fmt.Errorf("catch up %s: %w", req.Account, err)
		}
		res.CaughtUp, res.LagAtFenceOps = cu.CaughtUp, cu.SendLagOps+cu.ReplayLagOps
		res.CatchUpMillis = workflow.Now(ctx).Sub(t0).Milliseconds()
	}

	// 3. Fence. From here until promote, any failure rolls back.
	phase(PhaseFence, fmt.Sprintf("%d partitions on %s", pre.Partitions, pre.From))
	res.FencedAt = workflow.Now(ctx)
	var fence activities.FenceResult
	err = workflow.ExecuteActivity(withActivity(ctx, 2*time.Minute, 0, 10, fmt.Sprintf("fence %d partitions", pre.Partitions)), acts.Fence,
		activities.FenceInput{Account: pre.Account, FromURL: pre.FromURL, Partitions: pre.Partitions, Epoch: pre.Epoch}).Get(ctx, &fence)
	if err != nil {
		return res, rollback(ctx, pre, phase, fmt.Errorf("fence %s: %w", req.Account, err))
	}

	// 4. Per partition: flush-send then flush-replay, a child per group.
	phase(PhaseFlush, fmt.Sprintf("%d groups of up to %d partitions", len(gs), opts.GroupSize))
	res.Table = newTable(pre.Partitions)
	copy(res.Table.FinalLSN, fence.FinalLSN)
	childCtx, cancelChildren := workflow.WithCancel(ctx)
	defer cancelChildren()
	futures := make([]workflow.ChildWorkflowFuture, len(gs))
	parentID := workflow.GetInfo(ctx).WorkflowExecution.ID
	for i, g := range gs {
		in := GroupInput{Account: pre.Account, FromURL: pre.FromURL, ToURL: pre.ToURL, Partitions: g,
			FinalLSN: make([]uint64, len(g)), ReplayTimeout: opts.ReplayTimeout, FlushSendGiveUp: opts.FlushSendGiveUp}
		for j, p := range g {
			in.FinalLSN[j] = fence.FinalLSN[p]
		}
		cctx := workflow.WithChildOptions(childCtx, workflow.ChildWorkflowOptions{
			WorkflowID:    fmt.Sprintf("%s/group-%04d", parentID, i),
			StaticSummary: fmt.Sprintf("flush partitions %d-%d of %s", g[0], g[len(g)-1], pre.Account),
			RetryPolicy:   &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3},
		})
		futures[i] = workflow.ExecuteChildWorkflow(cctx, PartitionGroupFailover, in)
	}
	var flushErr error
	for i, f := range futures {
		var gr GroupResult
		if err := f.Get(ctx, &gr); err != nil {
			if flushErr == nil {
				flushErr = fmt.Errorf("flush group %d (partitions %d-%d) of %s: %w", i, gs[i][0], gs[i][len(gs[i])-1], req.Account, err)
				cancelChildren()
			}
			continue
		}
		prog.GroupsDone++
		res.Table.fill(gs[i], gr)
	}
	if flushErr != nil {
		return res, rollback(ctx, pre, phase, flushErr)
	}
	for i := range res.Table.Partition {
		if res.Table.ReplayedLSN[i] < res.Table.FinalLSN[i] {
			return res, rollback(ctx, pre, phase, fmt.Errorf("partition %d of %s replayed to %d, short of its final LSN %d: refusing to promote",
				i, req.Account, res.Table.ReplayedLSN[i], res.Table.FinalLSN[i]))
		}
	}

	// 5. Promote: the point of no return. Retried until it succeeds; a
	// refusal here (a stale epoch) means someone else moved the account.
	phase(PhasePromote, fmt.Sprintf("%s at epoch %d", pre.To, res.NewEpoch))
	err = workflow.ExecuteActivity(withActivity(ctx, 2*time.Minute, 0, 0, fmt.Sprintf("promote %d partitions, repoint location", pre.Partitions)), acts.Promote,
		activities.PromoteInput{Account: pre.Account, From: pre.From, To: pre.To, ToURL: pre.ToURL, Partitions: pre.Partitions,
			OldEpoch: pre.Epoch, Epoch: res.NewEpoch}).Get(ctx, nil)
	if err != nil {
		phase(PhaseFailed, "promote failed")
		return res, fmt.Errorf("promote %s on %s: %w", req.Account, pre.To, err)
	}
	res.PromotedAt = workflow.Now(ctx)

	// 6. Report.
	res.FinishedAt = workflow.Now(ctx)
	res.TotalMillis = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	res.UnavailableMillis = res.PromotedAt.Sub(res.FencedAt).Milliseconds()
	for i := range res.Table.Partition {
		res.SlowestSendMillis = max(res.SlowestSendMillis, res.Table.SendMillis[i])
		res.SlowestReplayMillis = max(res.SlowestReplayMillis, res.Table.ReplayMillis[i])
		res.SlowestFlushMillis = max(res.SlowestFlushMillis, res.Table.SendMillis[i]+res.Table.ReplayMillis[i])
	}
	phase(PhaseDone, fmt.Sprintf("%s now primary on %s at epoch %d; writes unavailable %d ms", req.Account, pre.To, res.NewEpoch, res.UnavailableMillis))
	return res, nil
}

// rollback unfences the source after a failure before promote, on a
// disconnected context so that it also runs when the workflow is cancelled,
// and returns cause (joined with the rollback's own error, if any).
func rollback(ctx workflow.Context, pre activities.PrecheckResult, phase func(string, string), cause error) error {
	phase(PhaseRollback, "unfencing the source")
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	err := workflow.ExecuteActivity(withActivity(dctx, time.Minute, 0, 0, "rollback: unfence source"), acts.Unfence,
		activities.UnfenceInput{Account: pre.Account, FromURL: pre.FromURL, Partitions: pre.Partitions, Epoch: pre.Epoch}).Get(dctx, nil)
	if err != nil {
		phase(PhaseFailed, "rollback failed: the source may still be fenced")
		return errors.Join(cause, fmt.Errorf("rollback (unfence %s on %s) failed, unfence it by hand: %w", pre.Account, pre.From, err))
	}
	phase(PhaseFailed, fmt.Sprintf("rolled back: %s still primary on %s", pre.Account, pre.From))
	return fmt.Errorf("%w (rolled back: %s is still primary on %s)", cause, pre.Account, pre.From)
}

// withActivity sets activity options: startToClose per attempt, heartbeat
// (0 = none) and attempts (0 = until it succeeds or hits a non-retryable
// error).
func withActivity(ctx workflow.Context, startToClose, heartbeat time.Duration, attempts int32, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: startToClose,
		HeartbeatTimeout:    heartbeat,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:    200 * time.Millisecond,
			BackoffCoefficient: 2,
			MaximumInterval:    5 * time.Second,
			MaximumAttempts:    attempts,
		},
	})
}

func newTable(n int) PartitionTable {
	return PartitionTable{
		Partition: activities.AllPartitions(n), FinalLSN: make([]uint64, n), SentLSN: make([]uint64, n),
		ReplayedLSN: make([]uint64, n), SendMillis: make([]int64, n), ReplayMillis: make([]int64, n),
	}
}

func (t *PartitionTable) fill(g []int, gr GroupResult) {
	for j, p := range g {
		t.SentLSN[p], t.ReplayedLSN[p] = gr.SentLSN[j], gr.ReplayedLSN[j]
		t.SendMillis[p], t.ReplayMillis[p] = gr.SendMillis[j], gr.ReplayMillis[j]
	}
}
