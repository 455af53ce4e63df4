package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// DefaultFlushDeadline bounds the fenced window of a failover that sets no
// FlushDeadline of its own.
const DefaultFlushDeadline = 2 * time.Minute

// QueryProgress is the query type that returns a Progress.
const QueryProgress = "progress"

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
	if o.SourceTimeout <= 0 {
		o.SourceTimeout = 30 * time.Second
	}
	if o.HeartbeatTimeout <= 0 {
		o.HeartbeatTimeout = 10 * time.Second
	}
	if o.FlushDeadline <= 0 {
		o.FlushDeadline = DefaultFlushDeadline
	}
	if o.PrecheckBudget <= 0 {
		o.PrecheckBudget = time.Minute
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

// failover is one run of AccountFailover: the request, the precheck's
// picture, the result being built and its handlers (what operators,
// alerts and queries see and change).
type failover struct {
	req      FailoverRequest
	opts     FailoverOptions
	pre      activities.PrecheckResult
	res      *FailoverResult
	prog     *Progress
	handlers *handlers
	// work is cancelled by an abort; everything before promote runs on it.
	work         workflow.Context
	fenceStarted bool
	// version is the workflow version this run follows (versionBoundedFlush
	// or workflow.DefaultVersion for histories from before it).
	version workflow.Version
	// fast is the fast path's version (versionFastPath and later: steps run
	// as local activities and small accounts flush inline).
	fast   workflow.Version
	groups [][]int
	// deadline ends the fenced window before promote (fence + FlushDeadline).
	deadline time.Time
	// For the report's breakdown of the fenced window.
	fencedDone            time.Time
	flushWait, replayWait int64
	window                []PhaseTiming
}

// AccountFailover fails an account over from its primary stamp to its
// secondary (US 9274906): precheck, approval gate (if the policy asks),
// catch up, fence, then per partition and independently flush-send and
// flush-replay (children, one per group of partitions), then promote and
// repoint the location service. Until promote, an abort or a failure rolls
// back: the source is unfenced and keeps serving.
func AccountFailover(ctx workflow.Context, req FailoverRequest) (FailoverResult, error) {
	res := &FailoverResult{
		Account: req.Account, Reason: req.Reason, RequestedBy: req.RequestedBy,
		StartedAt: workflow.Now(ctx), Alerts: append([]AlertRef(nil), req.Alerts...),
	}
	req = req.WithDefaults()
	badReq := req.Validate()
	res.Mode, res.Trigger = req.Mode, req.Trigger
	prog := &Progress{Phase: PhasePrecheck, Mode: req.Mode, Trigger: req.Trigger, Done: map[string]int{},
		StartedAt: res.StartedAt, PhaseAt: res.StartedAt, Alerts: len(res.Alerts)}
	work, cancelWork := workflow.WithCancel(ctx)
	defer cancelWork()
	f := &failover{req: req, res: res, prog: prog, work: work,
		handlers: &handlers{res: res, prog: prog, cancelWork: cancelWork, alertsSeen: len(res.Alerts)}}
	if pa := req.Approval.PreApproved; pa != nil {
		f.handlers.approve(ctx, *pa)
	}
	if err := f.handlers.register(ctx); err != nil {
		return *res, err
	}
	if badReq != nil {
		return *res, f.end(ctx, OutcomeRefused, PhaseFailed, fmt.Errorf("bad failover request: %w", badReq))
	}
	err := f.run(ctx)
	return *res, err
}

// run is the failover proper, as named phases; every way out goes through
// end.
func (f *failover) run(ctx workflow.Context) error {
	req := f.req
	f.enterPhase(
		ctx,
		PhasePrecheck,
		fmt.Sprintf("account %s to %s (%s, %s)", req.Account, req.ToStamp, req.Mode, req.Trigger),
	)
	_ = workflow.UpsertTypedSearchAttributes(ctx, SearchAccount.ValueSet(req.Account),
		SearchMode.ValueSet(string(req.Mode)), SearchTrigger.ValueSet(string(req.Trigger)))
	f.version = workflow.GetVersion(ctx, changeBoundedFlush, workflow.DefaultVersion, versionBoundedFlush)
	if f.version >= versionBoundedFlush {
		f.fast = workflow.GetVersion(ctx, changeFastPath, workflow.DefaultVersion, versionBoundedLocal)
	}

	// 1. Precheck: touches nothing; a refusal is non-retryable.
	if err := f.precheck(ctx); err != nil {
		return err
	}
	if req.DryRun {
		return f.end(ctx, OutcomeDryRun, PhaseDryRun, nil)
	}
	if f.pre.Resume != activities.ResumeNone {
		return f.resume(ctx)
	}
	// 2. Approval gate.
	if err := f.gate(ctx); err != nil {
		return err
	}
	// 3. Catch up while writes still flow, so the fenced window is short.
	if err := f.catchUp(ctx); err != nil {
		return err
	}
	// 4. Fence. From here until promote, an abort or a failure rolls back.
	fence, err := f.fence(ctx)
	if err != nil {
		return f.rollback(ctx, err)
	}
	// 5. Per partition: flush-send then flush-replay, a child per group.
	if err := f.flush(ctx, fence); err != nil {
		return f.rollback(ctx, err)
	}
	if err := f.lossLedger(ctx); err != nil {
		return f.rollback(ctx, err)
	}
	if f.handlers.abort != nil {
		return f.aborted(ctx)
	}
	// 6. Promote: the point of no return.
	if err := f.promote(ctx); err != nil {
		return err
	}
	// 7. Report.
	return f.completed(ctx)
}

// precheck checks, touching nothing, that the failover can go ahead, and
// records its picture. Answers that may go away are asked again within the
// precheck budget.
func (f *failover) precheck(ctx workflow.Context) error {
	req, res := f.req, f.res
	opts := req.Options.withDefaults(0)
	actx := withActivity(f.work, 30*time.Second, opts.HeartbeatTimeout, 3, "precheck "+req.Account)
	if f.version >= versionBoundedFlush {
		actx = boundedActivity(
			f.work,
			opts.PrecheckBudget,
			opts.PrecheckBudget,
			opts.HeartbeatTimeout,
			"precheck "+req.Account,
		)
	}
	err := execute(
		f.step(actx),
		acts.Precheck,
		activities.PrecheckInput{
			Account:   req.Account,
			From:      req.FromStamp,
			To:        req.ToStamp,
			Unplanned: req.Mode == ModeUnplanned,
			Operation: f.operation(ctx),
		},
	).Get(ctx, &f.pre)
	if err != nil {
		if f.handlers.abort != nil {
			return f.aborted(ctx)
		}
		return f.end(
			ctx,
			OutcomeRefused,
			PhaseFailed,
			because(fmt.Sprintf("precheck refused failover of %s (nothing was touched)", req.Account), err),
		)
	}
	pre := f.pre
	f.opts = req.Options.withDefaults(pre.Partitions)
	res.Precheck = pre
	res.From, res.To, res.OldEpoch, res.NewEpoch = pre.From, pre.To, pre.Epoch, pre.Epoch+1
	res.Partitions = pre.Partitions
	res.PrecheckSendLagOps, res.PrecheckReplayLagOps = pre.SendLagOps, pre.ReplayLagOps
	f.groups = groups(pre.Partitions, f.opts.GroupSize)
	res.Groups, f.prog.Partitions, f.prog.Groups = len(f.groups), pre.Partitions, len(f.groups)
	if f.version >= versionBoundedFlush {
		res.FlushDeadline = f.opts.FlushDeadline
	}
	res.ApprovalRequired, res.ApprovalReason = needsApproval(req, pre)
	return nil
}

// gate waits for an approval when the policy asks for one.
func (f *failover) gate(ctx workflow.Context) error {
	if !f.res.ApprovalRequired && f.handlers.rejection == nil && f.handlers.abort == nil {
		// No approval needed, and nobody said no before the gate.
		f.handlers.gatePassed = true
		f.res.Approval = f.handlers.approval
		return nil
	}
	if f.handlers.approval == nil && f.handlers.rejection == nil && f.handlers.abort == nil {
		f.prog.AwaitingApproval, f.prog.ApprovalReason = true, f.res.ApprovalReason
		f.enterPhase(ctx, PhaseApproval, fmt.Sprintf("%s: approve or reject (update or signal %q / %q), within %s",
			f.res.ApprovalReason, UpdateApprove, UpdateReject, f.req.Approval.Timeout))
		workflow.GetMetricsHandler(ctx).Counter(MetricApprovalsWaited).Inc(1)
		ok, err := workflow.AwaitWithTimeout(ctx, f.req.Approval.Timeout, func() bool {
			return f.handlers.approval != nil || f.handlers.rejection != nil || f.handlers.abort != nil
		})
		f.prog.AwaitingApproval = false
		if err != nil {
			return f.end(ctx, OutcomeFailed, PhaseFailed, fmt.Errorf("approval gate: %w", err))
		}
		if !ok {
			f.handlers.gatePassed = true
			return f.end(
				ctx,
				OutcomeTimedOut,
				PhaseRejected,
				fmt.Errorf(
					"no approval within %s: failover of %s aborted, nothing was touched",
					f.req.Approval.Timeout,
					f.req.Account,
				),
			)
		}
	}
	f.handlers.gatePassed = true
	f.res.Approval, f.res.Rejection = f.handlers.approval, f.handlers.rejection
	switch {
	case f.handlers.abort != nil:
		return f.aborted(ctx)
	case f.handlers.rejection != nil:
		r := f.handlers.rejection
		return f.end(ctx, OutcomeRejected, PhaseRejected,
			fmt.Errorf("failover of %s rejected by %s (%s): nothing was touched", f.req.Account, r.By, r.Reason))
	}
	return nil
}

// catchUp lets replication drain while writes still flow. A planned
// failover whose catch-up fails rolls back (nothing was touched yet).
func (f *failover) catchUp(ctx workflow.Context) error {
	pre, res := f.pre, f.res
	if f.opts.CatchUpTimeout <= 0 || !pre.SourceReachable {
		return nil
	}
	f.enterPhase(ctx, PhaseCatchUp, fmt.Sprintf("%d ops behind", pre.SendLagOps+pre.ReplayLagOps))
	t0 := workflow.Now(ctx)
	var cu activities.CatchUpResult
	actx := withActivity(f.work, f.opts.CatchUpTimeout+time.Minute, 15*time.Second, 5, "catch up replication")
	err := execute(f.step(actx), acts.CatchUp,
		activities.CatchUpInput{
			Account:    pre.Account,
			FromURL:    pre.FromURL,
			ToURL:      pre.ToURL,
			Partitions: pre.Partitions,
			MaxLagOps:  f.opts.CatchUpMaxLagOps,
			Timeout:    f.opts.CatchUpTimeout,
		}).
		Get(ctx, &cu)
	switch {
	case f.handlers.abort != nil:
		return f.aborted(ctx)
	case err != nil && f.req.Mode == ModePlanned:
		return f.end(
			ctx,
			OutcomeRolledBack,
			PhaseRolledBack,
			because(fmt.Sprintf("catch up %s failed before fencing, nothing was touched", f.req.Account), err),
		)
	}
	res.CaughtUp, res.LagAtFenceOps = cu.CaughtUp, cu.SendLagOps+cu.ReplayLagOps
	res.CatchUpMillis = workflow.Now(ctx).Sub(t0).Milliseconds()
	return nil
}

// fence fences the source partitions. Planned: all of them by the flush
// deadline, or the failover rolls back naming the ones that did not fence.
// Unplanned: partitions that do not answer are retried until SourceTimeout
// and then given up on.
func (f *failover) fence(ctx workflow.Context) (activities.FenceResult, error) {
	pre, res := f.pre, f.res
	f.enterPhase(ctx, PhaseFence, fmt.Sprintf("%d partitions on %s", pre.Partitions, pre.From))
	res.FencedAt = workflow.Now(ctx)
	f.deadline = res.FencedAt.Add(f.opts.FlushDeadline)
	f.fenceStarted = true
	actx, in := f.fenceCall()
	var fence activities.FenceResult
	if err := execute(f.step(actx), acts.Fence, in).Get(ctx, &fence); err != nil {
		if f.req.Mode != ModeUnplanned || f.handlers.abort != nil {
			f.heldUpAll(StepFence, err)
			return fence, because("fence "+pre.Account, err)
		}
		// The whole source is unreachable: every partition is retried below.
		fence = activities.FenceResult{FinalLSN: make([]uint64, pre.Partitions), Fenced: make([]bool, pre.Partitions),
			Unreachable: activities.AllPartitions(pre.Partitions), LastError: err.Error()}
	}
	f.noteFenced(ctx, fence)
	if f.req.Mode == ModePlanned && len(fence.Unreachable) > 0 {
		return fence, f.notFenced(fence)
	}
	if err := f.refenceUnreachable(ctx, actx, in, &fence); err != nil {
		return fence, err
	}
	res.GivenUp = fence.Unreachable
	f.prog.GivenUp = len(res.GivenUp)
	f.prog.Done[StepFence] = pre.Partitions - len(res.GivenUp)
	return fence, nil
}

// fenceCall is how the fence is called. Planned, every partition must
// fence by the flush deadline, and the workflow names those that did not;
// unplanned, partitions that do not answer are reported, to retry and give
// up on.
func (f *failover) fenceCall() (workflow.Context, activities.FenceInput) {
	pre := f.pre
	unplanned := f.req.Mode == ModeUnplanned
	in := activities.FenceInput{
		Account:    pre.Account,
		FromURL:    pre.FromURL,
		Partitions: pre.Partitions,
		Epoch:      pre.Epoch,
		BestEffort: unplanned,
	}
	summary := fmt.Sprintf("fence %d partitions", pre.Partitions)
	actx := withActivity(f.work, 2*time.Minute, f.opts.HeartbeatTimeout, 10, summary)
	if unplanned {
		actx = withActivity(f.work, 15*time.Second, f.opts.HeartbeatTimeout, 2, summary+" (best effort)")
	}
	switch {
	case f.version < versionBoundedFlush:
	case unplanned:
		in.Until = f.res.FencedAt.Add(min(f.opts.SourceTimeout, 10*time.Second))
	default:
		in.BestEffort, in.Until = true, f.deadline
		actx = boundedActivity(f.work, 2*time.Minute, f.deadline.Sub(f.res.FencedAt), f.opts.HeartbeatTimeout, summary)
	}
	return actx, in
}

// notFenced names the partitions a planned fence did not reach by the flush
// deadline: the failover rolls back.
func (f *failover) notFenced(fence activities.FenceResult) error {
	for i, p := range fence.Unreachable {
		f.res.HeldUp = append(f.res.HeldUp,
			PartitionIssue{Partition: p, Step: StepFence, Error: errorAt(fence.Errors, i, fence.LastError)})
	}
	first := f.res.HeldUp[0]
	return fmt.Errorf("fence %s: %d partitions not fenced by the flush deadline (%s); partition %d: %s",
		f.pre.Account, len(fence.Unreachable), f.opts.FlushDeadline, first.Partition, first.Error)
}

// refenceUnreachable (unplanned) retries the partitions that did not
// answer, every second until SourceTimeout; those left are given up on.
func (f *failover) refenceUnreachable(
	ctx, actx workflow.Context, in activities.FenceInput, fence *activities.FenceResult,
) error {
	giveUp := workflow.Now(ctx).Add(f.opts.SourceTimeout)
	for len(fence.Unreachable) > 0 && workflow.Now(ctx).Before(giveUp) {
		if err := workflow.Sleep(f.work, time.Second); err != nil {
			return fmt.Errorf("fence %s: %w", f.pre.Account, err)
		}
		var again activities.FenceResult
		in.Only = fence.Unreachable
		if f.version >= versionBoundedFlush {
			in.Until = workflow.Now(ctx).Add(min(giveUp.Sub(workflow.Now(ctx)), 10*time.Second))
		}
		if err := workflow.ExecuteActivity(actx, acts.Fence, in).Get(ctx, &again); err != nil {
			if f.handlers.abort != nil {
				return fmt.Errorf("fence %s: %w", f.pre.Account, err)
			}
			continue
		}
		for _, p := range in.Only {
			if again.Fenced[p] {
				fence.Fenced[p], fence.FinalLSN[p] = true, again.FinalLSN[p]
			}
		}
		fence.Unreachable = again.Unreachable
	}
	return nil
}

// noteFenced records the fence phase's timing for the report.
func (f *failover) noteFenced(ctx workflow.Context, fence activities.FenceResult) {
	f.fencedDone = workflow.Now(ctx)
	f.window = append(
		f.window[:0],
		PhaseTiming{Phase: StepFence, Millis: f.fencedDone.Sub(f.res.FencedAt).Milliseconds(),
			WaitMillis: idle(f.res.FencedAt, fence.Timing, f.fencedDone)},
	)
}

// errorAt is errs[i], or def when the answer carried no per-partition errors.
func errorAt(errs []string, i int, def string) string {
	if i < len(errs) && errs[i] != "" {
		return errs[i]
	}
	return def
}

// heldUpAll names every partition as holding the failover up at step.
func (f *failover) heldUpAll(step string, err error) {
	for p := range f.pre.Partitions {
		f.res.HeldUp = append(f.res.HeldUp, PartitionIssue{Partition: p, Step: step, Error: rootMessage(err)})
	}
}

// flush starts a PartitionGroupFailover child per group and waits for
// them: all done, or the first that fails for good, or the deadline.
func (f *failover) flush(ctx workflow.Context, fence activities.FenceResult) error {
	pre, res := f.pre, f.res
	f.enterPhase(ctx, PhaseFlush, fmt.Sprintf("%d groups of up to %d partitions", len(f.groups), f.opts.GroupSize))
	res.Table = newTable(pre.Partitions)
	copy(res.Table.FinalLSN, fence.FinalLSN)
	futures := f.startGroups(ctx, fence)
	if f.version < versionBoundedFlush {
		return f.awaitGroupsInOrder(ctx, futures)
	}
	if err := f.awaitGroups(ctx, futures); err != nil {
		return err
	}
	return f.checkReplayed()
}

// startGroups starts the groups: one child per group, or, on the fast
// path for a small account, one coroutine per group inside the failover.
func (f *failover) startGroups(ctx workflow.Context, fence activities.FenceResult) []workflow.Future {
	inputs := f.groupInputs(fence)
	if f.inline() {
		f.res.Inline = true
		return f.startInlineGroups(ctx, inputs)
	}
	pre := f.pre
	futures := make([]workflow.Future, len(f.groups))
	parentID := workflow.GetInfo(ctx).WorkflowExecution.ID
	for i, g := range f.groups {
		opts := workflow.ChildWorkflowOptions{
			WorkflowID:    fmt.Sprintf("%s/group-%04d", parentID, i),
			StaticSummary: fmt.Sprintf("flush partitions %d-%d of %s", g[0], g[len(g)-1], pre.Account),
		}
		if f.version < versionBoundedFlush {
			opts.RetryPolicy = &temporal.RetryPolicy{InitialInterval: time.Second, MaximumAttempts: 3}
		}
		futures[i] = workflow.ExecuteChildWorkflow(workflow.WithChildOptions(f.work, opts), PartitionGroupFailover,
			inputs[i])
	}
	return futures
}

// groupInputs is each group's work: its partitions and their final LSNs.
func (f *failover) groupInputs(fence activities.FenceResult) []GroupInput {
	pre := f.pre
	skip := make([]bool, pre.Partitions)
	for _, p := range f.res.GivenUp {
		skip[p] = true
	}
	inputs := make([]GroupInput, len(f.groups))
	for i, g := range f.groups {
		in := GroupInput{Account: pre.Account, FromURL: pre.FromURL, ToURL: pre.ToURL, Group: i, Partitions: g,
			FinalLSN: make([]uint64, len(g)), ReplayTimeout: f.opts.ReplayTimeout,
			FlushSendGiveUp: f.opts.FlushSendGiveUp, Unplanned: f.req.Mode == ModeUnplanned,
			HeartbeatTimeout: f.opts.HeartbeatTimeout, FencedAt: f.res.FencedAt, Deadline: f.deadline}
		if in.Unplanned {
			in.FlushSendGiveUp = f.opts.SourceTimeout
			in.Skip = make([]bool, len(g))
		}
		for j, p := range g {
			in.FinalLSN[j] = fence.FinalLSN[p]
			if in.Unplanned {
				in.Skip[j] = skip[p]
			}
		}
		inputs[i] = in
	}
	return inputs
}

// groupGrace is how long past the flush deadline the parent waits for its
// groups to report (each stops at the deadline itself) before it rolls
// back without them.
const groupGrace = 5 * time.Second

// awaitGroups waits for every group, acting on the first that fails for
// good at once, whatever the order: it cancels the others and returns. A
// group that hit the deadline is not alone: the others report theirs
// within the grace, so the report names every partition held up.
func (f *failover) awaitGroups(ctx workflow.Context, futures []workflow.Future) error {
	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	sel := workflow.NewSelector(ctx)
	answered := make([]bool, len(futures))
	var firstErr error
	lateOnly := true // every failure so far is a group past the deadline
	for i, fu := range futures {
		sel.AddFuture(fu, func(fu workflow.Future) {
			answered[i] = true
			var gr GroupResult
			err := fu.Get(ctx, &gr)
			if err == nil {
				f.groupDone(i, gr)
				return
			}
			f.groupFailed(i, err)
			if firstErr == nil {
				firstErr = f.groupError(i, err)
			}
			lateOnly = lateOnly && isDeadline(err)
		})
	}
	timedOut := false
	sel.AddFuture(
		workflow.NewTimer(timerCtx, f.deadline.Sub(workflow.Now(ctx))+groupGrace),
		func(workflow.Future) { timedOut = true },
	)
	for remaining := len(futures); remaining > 0 && !timedOut && (firstErr == nil || lateOnly); {
		sel.Select(ctx)
		if !timedOut {
			remaining--
		}
	}
	if firstErr == nil && !timedOut {
		return nil
	}
	f.handlers.cancelWork()
	for i, ok := range answered {
		if !ok && (timedOut || lateOnly) {
			f.groupSilent(i)
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf(
			"no answer from %d groups of %s within %s of the flush deadline: is a worker running?",
			countFalse(answered),
			f.pre.Account,
			groupGrace,
		)
	}
	return firstErr
}

// groupDone records a group that finished.
func (f *failover) groupDone(i int, gr GroupResult) {
	g := f.groups[i]
	f.prog.GroupsDone++
	f.res.GroupsDone++
	f.prog.Done[StepFlushReplay] += len(g)
	f.res.Table.fill(g, gr)
	f.handlers.noteSlowest(g, gr)
	f.res.GivenUp = append(f.res.GivenUp, gr.GivenUp...)
	f.flushWait = max(f.flushWait, gr.SendWaitMillis)
	f.replayWait = max(f.replayWait, gr.ReplayWaitMillis)
}

// groupFailed records what a failed group said of its partitions.
func (f *failover) groupFailed(i int, err error) {
	var ae *temporal.ApplicationError
	var gr GroupResult
	if errors.As(err, &ae) && ae.HasDetails() && ae.Details(&gr) == nil {
		f.res.HeldUp = append(f.res.HeldUp, gr.HeldUp...)
	}
}

// groupSilent names the partitions of a group that did not answer.
func (f *failover) groupSilent(i int) {
	for _, p := range f.groups[i] {
		f.res.HeldUp = append(f.res.HeldUp, PartitionIssue{Partition: p, Step: StepFlushSend,
			Error: "its group did not answer by the flush deadline (no worker, or the group was cancelled)"})
	}
}

func (f *failover) groupError(i int, err error) error {
	g := f.groups[i]
	return because(fmt.Sprintf("flush group %d (partitions %d-%d) of %s", i, g[0], g[len(g)-1], f.pre.Account), err)
}

// isDeadline reports whether a group failed because of the flush deadline.
func isDeadline(err error) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.Type() == ErrTypeFlushDeadline
}

func countFalse(bs []bool) (n int) {
	for _, b := range bs {
		if !b {
			n++
		}
	}
	return n
}

// checkReplayed refuses to promote unless every partition not given up on
// replayed up to its final LSN, and records the flush phases' timing.
func (f *failover) checkReplayed() error {
	pre, res := f.pre, f.res
	givenUp := make([]bool, pre.Partitions)
	for _, p := range res.GivenUp {
		givenUp[p] = true
	}
	if err := f.refuseShortReplay(givenUp); err != nil {
		return err
	}
	var lastSent, lastReplayed int64
	for p := range pre.Partitions {
		lastSent = max(lastSent, res.Table.SentAfterMillis[p])
		lastReplayed = max(lastReplayed, res.Table.ReplayedAfterMillis[p])
	}
	fenced := f.fencedDone.Sub(res.FencedAt).Milliseconds()
	lastSent = max(lastSent, fenced)
	f.window = append(f.window,
		PhaseTiming{Phase: StepFlushSend, Millis: lastSent - fenced, WaitMillis: f.flushWait},
		PhaseTiming{Phase: StepFlushReplay, Millis: max(lastReplayed, lastSent) - lastSent, WaitMillis: f.replayWait})
	f.countFlushed(f.work)
	return nil
}

// refuseShortReplay lists the given-up partitions in order, and refuses to
// promote unless every other partition replayed up to its final LSN.
func (f *failover) refuseShortReplay(givenUp []bool) error {
	res := f.res
	res.GivenUp = res.GivenUp[:0]
	for p := range f.pre.Partitions {
		if givenUp[p] {
			res.GivenUp = append(res.GivenUp, p)
			continue
		}
		if res.Table.ReplayedLSN[p] < res.Table.FinalLSN[p] {
			return fmt.Errorf("partition %d of %s replayed to %d, short of its final LSN %d: refusing to promote",
				p, f.pre.Account, res.Table.ReplayedLSN[p], res.Table.FinalLSN[p])
		}
	}
	return nil
}

// lossLedger reads, for an unplanned failover's given-up partitions, what
// is known lost and an estimate of what the source may have acknowledged
// after its last contact.
func (f *failover) lossLedger(ctx workflow.Context) error {
	res := f.res
	if len(res.GivenUp) == 0 {
		return nil
	}
	in := activities.LossLedgerInput{Account: f.pre.Account, ToURL: f.pre.ToURL, Partitions: res.GivenUp}
	if f.version >= versionBoundedFlush {
		in.GivenUpAt = workflow.Now(ctx)
	}
	actx := withActivity(f.work, 30*time.Second, 0, 5, "data-loss ledger")
	if err := workflow.ExecuteActivity(actx, acts.LossLedger, in).Get(ctx, &res.Ledger); err != nil {
		return because("read the data-loss ledger of "+f.req.Account, err)
	}
	for _, e := range res.Ledger {
		res.LostOps += e.Ops
		res.UnseenOpsEstimate += e.UnseenOpsEstimate
	}
	return nil
}

// promote makes the destination the primary and points the account at
// it: the point of no return. From here an abort is refused, and promote
// runs on the workflow's own context so nothing cancels it.
func (f *failover) promote(ctx workflow.Context) error {
	pre, res := f.pre, f.res
	f.handlers.noReturn = true
	f.enterPhase(ctx, PhasePromote, fmt.Sprintf("%s at epoch %d", pre.To, res.NewEpoch))
	summary := fmt.Sprintf("promote %d partitions, repoint location", pre.Partitions)
	actx := withActivity(ctx, 2*time.Minute, f.opts.HeartbeatTimeout, 0, summary)
	if f.version >= versionBoundedFlush {
		actx = workflow.WithActivityOptions(actx, workflow.ActivityOptions{
			StartToCloseTimeout:    2 * time.Minute,
			ScheduleToCloseTimeout: promoteBound,
			HeartbeatTimeout:       f.opts.HeartbeatTimeout,
			Summary:                summary,
			RetryPolicy: &temporal.RetryPolicy{
				InitialInterval:    200 * time.Millisecond,
				BackoffCoefficient: 2,
				MaximumInterval:    5 * time.Second,
			},
		})
	}
	scheduled := workflow.Now(ctx)
	var pr activities.PromoteResult
	err := execute(
		f.step(actx),
		acts.Promote,
		activities.PromoteInput{
			Account:    pre.Account,
			From:       pre.From,
			To:         pre.To,
			ToURL:      pre.ToURL,
			Partitions: pre.Partitions,
			OldEpoch:   pre.Epoch,
			Epoch:      res.NewEpoch,
			Operation:  f.operation(ctx),
			Unplanned:  f.req.Mode == ModeUnplanned,
			GivenUp:    res.GivenUp,
		},
	).Get(ctx, &pr)
	if err != nil {
		return f.end(
			ctx,
			OutcomeFailed,
			PhaseFailed,
			because(
				fmt.Sprintf(
					"promote %s on %s failed after the point of no return; the source stays fenced, run the failover again to finish it",
					f.req.Account,
					pre.To,
				),
				err,
			),
		)
	}
	res.PromotedAt = workflow.Now(ctx)
	if moved := pr.Finished; f.version >= versionBoundedFlush && moved.After(res.FencedAt) &&
		moved.Before(res.PromotedAt) {
		// Traffic moved when the location service did; the workflow may
		// hear of it later (a workflow task on a lost worker's queue).
		res.PromotedAt = moved
	}
	f.prog.Done[StepPromote] = pre.Partitions
	if !res.FencedAt.IsZero() {
		f.window = append(f.window, PhaseTiming{Phase: StepPromote, WaitMillis: waited(scheduled, pr.Started),
			Millis: res.PromotedAt.Sub(res.FencedAt).Milliseconds() - sumMillis(f.window)})
	}
	if len(res.GivenUp) > 0 {
		f.fenceGivenUp(ctx)
	}
	return nil
}

// promoteBound bounds promote's retries: past it the failover fails, saying
// that the source stays fenced and how to finish.
const promoteBound = 10 * time.Minute

func sumMillis(ws []PhaseTiming) (n int64) {
	for _, w := range ws {
		n += w.Millis
	}
	return n
}

// completed fills the report of a failover that promoted and ends it.
func (f *failover) completed(ctx workflow.Context) error {
	pre, res := f.pre, f.res
	for i := range res.Table.Partition {
		res.SlowestSendMillis = max(res.SlowestSendMillis, res.Table.SendMillis[i])
		res.SlowestReplayMillis = max(res.SlowestReplayMillis, res.Table.ReplayMillis[i])
		res.SlowestFlushMillis = max(res.SlowestFlushMillis, res.Table.SendMillis[i]+res.Table.ReplayMillis[i])
	}
	if !res.FencedAt.IsZero() {
		res.UnavailableMillis = res.PromotedAt.Sub(res.FencedAt).Milliseconds()
	}
	if f.version >= versionBoundedFlush {
		res.Window = f.window
	}
	loss := ""
	if f.req.Mode == ModeUnplanned {
		loss = fmt.Sprintf("; %s", lossSummary(*res))
	}
	_ = f.end(ctx, OutcomeCompleted, PhaseDone, nil)
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**done** %s now primary on %s at epoch %d; writes unavailable %d ms%s",
		f.req.Account, pre.To, res.NewEpoch, res.UnavailableMillis, loss))
	return nil
}

// lossSummary says what an unplanned failover lost, leading with what is
// not known.
func lossSummary(res FailoverResult) string {
	if len(res.GivenUp) == 0 {
		return "no partition given up, nothing lost"
	}
	if len(res.Ledger) > 0 && res.Ledger[0].Unit != "" {
		return fmt.Sprintf("%d given-up shards lost what their old primaries wrote after their replicas' replay stopped; "+
			"only the old primaries' own logs know how much (their rejoin reports it)", len(res.GivenUp))
	}
	return fmt.Sprintf(
		"%d ops known lost on %d given-up partitions up to their last contact, and an estimated %d more the source may have acknowledged after it",
		res.LostOps,
		len(res.GivenUp),
		res.UnseenOpsEstimate,
	)
}

// awaitGroupsInOrder is how groups were awaited before versionBoundedFlush
// (one after the other, no deadline), kept for histories of that version.
func (f *failover) awaitGroupsInOrder(ctx workflow.Context, futures []workflow.Future) error {
	res := f.res
	var flushErr error
	givenUp := make([]bool, f.pre.Partitions)
	for _, p := range res.GivenUp {
		givenUp[p] = true
	}
	for i, fu := range futures {
		var gr GroupResult
		if err := fu.Get(ctx, &gr); err != nil {
			if flushErr == nil {
				flushErr = f.groupError(i, err)
				f.handlers.cancelWork()
			}
			continue
		}
		f.prog.GroupsDone++
		f.prog.Done[StepFlushReplay] += len(f.groups[i])
		res.Table.fill(f.groups[i], gr)
		f.handlers.noteSlowest(f.groups[i], gr)
		for _, p := range gr.GivenUp {
			givenUp[p] = true
		}
	}
	if flushErr != nil {
		return flushErr
	}
	if err := f.refuseShortReplay(givenUp); err != nil {
		return err
	}
	f.countFlushed(ctx)
	return nil
}

// countFlushed records the flushed partitions in the progress and the
// metrics.
func (f *failover) countFlushed(ctx workflow.Context) {
	f.prog.GivenUp = len(f.res.GivenUp)
	m := workflow.GetMetricsHandler(ctx)
	m.Counter(MetricPartitionsFlushed).Inc(int64(f.pre.Partitions - len(f.res.GivenUp)))
	m.Counter(MetricPartitionsReplayed).Inc(int64(f.pre.Partitions))
}

// fenceGivenUp tries once more, after promote, to fence the partitions the
// unplanned failover gave up on, so a source that was only cut off cannot
// keep taking writes from clients that still route to it. Best effort.
func (f *failover) fenceGivenUp(ctx workflow.Context) {
	pre := f.pre
	actx := withActivity(ctx, 10*time.Second, 0, 2, "fence the old primary's given-up partitions (best effort)")
	err := workflow.ExecuteActivity(actx, acts.Fence,
		activities.FenceInput{Account: pre.Account, FromURL: pre.FromURL, Partitions: pre.Partitions, Epoch: pre.Epoch,
			Only: f.res.GivenUp, BestEffort: true}).
		Get(ctx, nil)
	if err != nil {
		f.res.Refusals = append(
			f.res.Refusals,
			fmt.Sprintf("old primary %s not fenced after promote (still unreachable): %v", pre.From, err),
		)
	}
}

// aborted ends a failover an operator aborted before promote.
func (f *failover) aborted(ctx workflow.Context) error {
	a := f.handlers.abort
	f.res.Abort = a
	cause := fmt.Errorf("failover of %s aborted by %s (%s)", f.req.Account, a.By, a.Reason)
	if !f.fenceStarted {
		return f.end(ctx, OutcomeAborted, PhaseRolledBack, fmt.Errorf("%w: nothing was touched", cause))
	}
	return f.rollback(ctx, cause)
}

// rollback unfences the source after a failure or an abort before promote,
// on a disconnected context so that it runs whatever was cancelled. Its
// activity is idempotent, so a worker killed mid-rollback simply redoes it.
func (f *failover) rollback(ctx workflow.Context, cause error) error {
	if f.handlers.abort != nil && f.res.Abort == nil {
		return f.aborted(ctx)
	}
	outcome := OutcomeRolledBack
	if f.handlers.abort != nil {
		outcome = OutcomeAborted
	}
	pre := f.pre
	f.enterPhase(ctx, PhaseRollback, "unfencing the source")
	dctx, cancel := workflow.NewDisconnectedContext(ctx)
	defer cancel()
	actx := withActivity(dctx, time.Minute, f.opts.HeartbeatTimeout, 0, "rollback: unfence source")
	if f.version >= versionBoundedFlush {
		actx = workflow.WithScheduleToCloseTimeout(actx, rollbackBound)
	}
	err := workflow.ExecuteActivity(
		actx,
		acts.Unfence,
		activities.UnfenceInput{
			Account:    pre.Account,
			FromURL:    pre.FromURL,
			Partitions: pre.Partitions,
			Epoch:      pre.Epoch,
		},
	).Get(dctx, nil)
	if err != nil {
		return f.end(ctx, OutcomeFailed, PhaseFailed, errors.Join(cause,
			because(fmt.Sprintf("rollback (unfence %s on %s) failed, unfence it by hand", pre.Account, pre.From), err)))
	}
	if f.version >= versionBoundedFlush {
		f.res.UnavailableMillis = workflow.Now(ctx).Sub(f.res.FencedAt).Milliseconds()
		slices.SortFunc(f.res.HeldUp, func(a, b PartitionIssue) int { return a.Partition - b.Partition })
	}
	return f.end(
		ctx,
		outcome,
		PhaseRolledBack,
		fmt.Errorf("%w (rolled back: %s is still primary on %s)", cause, pre.Account, pre.From),
	)
}

// rollbackBound bounds the rollback's retries of unfence: past it the
// failover fails, saying the source must be unfenced by hand.
const rollbackBound = 10 * time.Minute

// readable is an error whose message is written for operators (the root
// cause, without the SDK's wrapping) and which still wraps the chain it
// came from, for errors.As.
type readable struct {
	msg string
	err error
}

func (r readable) Error() string { return r.msg }
func (r readable) Unwrap() error { return r.err }

// because says what failed and its root cause, keeping err in the chain
// (nil when err is nil).
func because(what string, err error) error {
	if err == nil {
		return nil
	}
	return readable{msg: what + ": " + rootMessage(err), err: err}
}

// end records the outcome, emits the metrics and returns err (nil when the
// failover completed or was a dry run).
func (f *failover) end(ctx workflow.Context, outcome Outcome, phase Phase, err error) error {
	res := f.res
	res.Outcome = outcome
	res.FinishedAt = workflow.Now(ctx)
	res.TotalMillis = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	detail := string(outcome)
	if err != nil {
		detail = err.Error()
	}
	f.enterPhase(ctx, phase, detail)
	m := workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"mode": string(f.req.Mode)})
	m.WithTags(map[string]string{"outcome": string(outcome)}).Counter(MetricFailovers).Inc(1)
	if outcome == OutcomeCompleted {
		m.Timer(MetricFailoverDuration).Record(res.FinishedAt.Sub(res.StartedAt))
		if res.LostOps > 0 {
			m.Counter(MetricOpsLost).Inc(int64(res.LostOps))
		}
	}
	if err == nil {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), errTypeOf(outcome), err, *res)
}

// enterPhase moves the failover to phase p: the progress query, the BatonPhase
// search attribute and the Web UI's current details follow.
func (f *failover) enterPhase(ctx workflow.Context, p Phase, details string) {
	if f.prog.Phase != p {
		f.prog.Phase, f.prog.PhaseAt = p, workflow.Now(ctx)
	}
	_ = workflow.UpsertTypedSearchAttributes(ctx, SearchPhase.ValueSet(string(p)))
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** %s", p, details))
}

// withActivity sets activity options: startToClose per attempt, heartbeat
// (0 = none) and attempts (0 = until it succeeds or hits a non-retryable
// error).
func withActivity(
	ctx workflow.Context,
	startToClose, heartbeat time.Duration,
	attempts int32,
	summary string,
) workflow.Context {
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
		SentAfterMillis: make([]int64, n), ReplayedAfterMillis: make([]int64, n),
	}
}

func (t *PartitionTable) fill(g []int, gr GroupResult) {
	for j, p := range g {
		t.SentLSN[p], t.ReplayedLSN[p] = gr.SentLSN[j], gr.ReplayedLSN[j]
		t.SendMillis[p], t.ReplayMillis[p] = gr.SendMillis[j], gr.ReplayMillis[j]
		if j < len(gr.SentAfterMillis) { // groups from before versionBoundedFlush lack these
			t.SentAfterMillis[p], t.ReplayedAfterMillis[p] = gr.SentAfterMillis[j], gr.ReplayedAfterMillis[j]
		}
	}
}
