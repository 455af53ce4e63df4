package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/planner"
)

// NameAppFailover is the workflow type of an application failover
// (US 8938639): stable, it is recorded in every history.
const NameAppFailover = "AppFailover"

// AppFailoverWorkflowID is the workflow ID of a plan's failover. Deriving it
// from the plan's name makes Temporal refuse a second concurrent failover of
// the same application.
func AppFailoverWorkflowID(plan string) string { return "app-failover-" + plan }

// AppFailoverRequest starts an AppFailover.
type AppFailoverRequest struct {
	// Plan is the application's plan, variables already expanded.
	Plan        planner.Plan
	Reason      string
	RequestedBy string
}

// Phases of an application failover (AppProgress.Phase and the Web UI's
// current details).
const (
	// AppPhaseOffline: only offline steps have started; abort still works.
	AppPhaseOffline = "offline"
	// AppPhaseOnline: an online step has started, the point of no return.
	AppPhaseOnline = "online"
	// AppPhaseRestoring: aborted (or failed) before any online step; the
	// components taken offline are being brought back on the source.
	AppPhaseRestoring = "restoring"
	// AppPhaseDone: every step is done (AppOutcomeCompleted).
	AppPhaseDone = "done"
	// AppPhaseAborted: an operator aborted; the restores have ended
	// (AppOutcomeAborted).
	AppPhaseAborted = "aborted"
	// AppPhaseRolledBack: a step failed before any online step; the
	// restores have ended (AppOutcomeRolledBack).
	AppPhaseRolledBack = "rolled-back"
	// AppPhaseFailed: a step failed after the point of no return, or the
	// planner could start nothing more (AppOutcomeFailed).
	AppPhaseFailed = "failed"
)

// Outcomes of an application failover.
const (
	AppOutcomeCompleted  = "completed"
	AppOutcomeAborted    = "aborted"     // an operator aborted before any online step; restored
	AppOutcomeRolledBack = "rolled-back" // a step failed before any online step; restored
	AppOutcomeFailed     = "failed"      // a step failed after the point of no return
)

// Error types of an application failover that did not complete; the
// error's details carry the AppFailoverResult.
const (
	ErrTypeAppPlanInvalid = "AppPlanInvalid"
	ErrTypeAppAborted     = "AppFailoverAborted"
	ErrTypeAppRolledBack  = "AppFailoverRolledBack"
	ErrTypeAppFailed      = "AppFailoverFailed"
)

// Step statuses in AppStep.Status.
const (
	AppStepPending = "pending"
	AppStepRunning = "running"
	AppStepDone    = "done"
	AppStepFailed  = "failed"
	// AppStepCancelled: an offline step stopped by an abort (or by another
	// step's failure before any online step); its component is restored.
	AppStepCancelled = "cancelled"
	// AppStepSkipped: a restore the plan gives no action for.
	AppStepSkipped = "skipped"
)

// AppStep is one step's record: in the progress query and in the result.
type AppStep struct {
	Component string
	Phase     planner.Phase
	// Action describes what the step does ("wait 5s", "GET ... expect 200").
	Action    string
	Status    string
	StartedAt time.Time `json:",omitzero"`
	EndedAt   time.Time `json:",omitzero"`
	Millis    int64
	// Output: a command's last output line, an HTTP status, an account's
	// new primary. Error: why it failed.
	Output string `json:",omitempty"`
	Error  string `json:",omitempty"`
}

// Step is the planner step this record is about.
func (s AppStep) Step() planner.Step { return planner.Step{Component: s.Component, Phase: s.Phase} }

// AppProgress is what the progress query of an AppFailover answers.
type AppProgress struct {
	Plan      string
	Phase     string
	StartedAt time.Time
	// Running names the steps running now ("offline web").
	Running []string
	// Done counts offline and online steps done, of Total.
	Done, Total int
	// PredictedMillis is the planner's prediction for the whole failover.
	PredictedMillis int64
	// Steps: every step, started ones first in start order, then the
	// pending ones in priority order.
	Steps []AppStep
}

// AppFailoverResult is the report of an application failover. One that did
// not complete fails with an error whose details carry it.
type AppFailoverResult struct {
	Plan        string
	Strategy    planner.Strategy
	Concurrency planner.Concurrency
	Reason      string
	RequestedBy string
	Outcome     string

	StartedAt   time.Time
	FinishedAt  time.Time
	TotalMillis int64

	// The planner's prediction from expected durations, and the same plan
	// under the baselines.
	PredictedMillis    int64
	CriticalPathMillis int64
	CriticalPath       []string
	SequentialMillis   int64
	BarrierMillis      int64

	// Steps in start order (restores after an abort last).
	Steps []AppStep
	Abort *Decision `json:",omitempty"`
	// Refusals lists requests the workflow refused (an abort signal after
	// the point of no return), for the record.
	Refusals []string `json:",omitempty"`
}

// Slots turns the recorded steps into a planner schedule (offsets from the
// failover's start), for charts and for checking the rules.
func (r AppFailoverResult) Slots() []planner.Slot {
	var out []planner.Slot
	for _, s := range r.Steps {
		if s.StartedAt.IsZero() || s.EndedAt.IsZero() {
			continue
		}
		out = append(out, planner.Slot{
			Step:  s.Step(),
			Start: s.StartedAt.Sub(r.StartedAt),
			End:   s.EndedAt.Sub(r.StartedAt),
		})
	}
	planner.SortSlots(out)
	return out
}

var errAppPointOfNoReturn = errors.New("an online step has started: that is the point of no return, " +
	"the application failover can no longer be aborted (fail back with a new plan once it completes)")

// maxStepOutput bounds what a step record keeps of its output.
const maxStepOutput = 300

// appFailover is one run of AppFailover.
type appFailover struct {
	req  AppFailoverRequest
	g    *planner.Graph
	st   *planner.State
	pred planner.Prediction
	res  *AppFailoverResult

	// rec[step] is the step's record; records holds them in the order they
	// were created (the offline and online steps first, in priority order).
	rec     map[planner.Step]*AppStep
	records []*AppStep
	started []planner.Step // in start order

	sel     workflow.Selector
	running int
	// cancel[step] stops a running step.
	cancel map[planner.Step]workflow.CancelFunc
	// stopping: the running offline steps were told to stop.
	stopping bool
	// wake is signalled by an abort so that the event loop re-plans.
	wake workflow.Channel

	// currentPhase is the phase the progress query and the Web UI show
	// (AppPhase...).
	currentPhase  string
	abort         *Decision
	failure       error // the first step that failed
	onlineStarted bool
}

// AppFailover fails an application over from its source site to its target
// by the dependency graph of its components (US 8938639). Every step starts
// the moment the planner's rules allow it: a component goes offline on the
// source once everything that depends on it is offline there, and comes
// online on the target once it is offline on the source and everything it
// depends on is online on the target. Independent components overlap, so
// the failover takes the graph's critical path.
//
// Steps run as activities (command, http), as a child AccountFailover (a
// storage account, under the account's own failover ID) or as a durable
// timer (wait). Until the first online step starts, an abort (update or
// signal "abort") or a failed step stops the running offline steps and
// brings every component taken offline back online on the source,
// dependencies first; after it, a failed step
// stops the failover where it is and reports every step's state.
func AppFailover(ctx workflow.Context, req AppFailoverRequest) (AppFailoverResult, error) {
	res := &AppFailoverResult{
		Plan:        req.Plan.Name,
		Reason:      req.Reason,
		RequestedBy: req.RequestedBy,
		StartedAt:   workflow.Now(ctx),
	}
	g, err := planner.Compile(req.Plan)
	if err != nil {
		return *res, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeAppPlanInvalid, err)
	}
	pred, err := g.Predict()
	if err != nil {
		return *res, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeAppPlanInvalid, err)
	}
	res.Strategy, res.Concurrency = g.Strategy(), g.Concurrency()
	res.PredictedMillis = pred.Schedule.Makespan.Milliseconds()
	res.CriticalPathMillis = pred.CriticalPathTime.Milliseconds()
	res.SequentialMillis, res.BarrierMillis = pred.Sequential.Milliseconds(), pred.Barrier.Milliseconds()
	for _, s := range pred.CriticalPath {
		res.CriticalPath = append(res.CriticalPath, s.String())
	}
	f := &appFailover{
		req:          req,
		g:            g,
		st:           g.NewState(),
		pred:         pred,
		res:          res,
		rec:          map[planner.Step]*AppStep{},
		cancel:       map[planner.Step]workflow.CancelFunc{},
		sel:          workflow.NewSelector(ctx),
		wake:         workflow.NewBufferedChannel(ctx, 1),
		currentPhase: AppPhaseOffline,
	}
	for _, s := range g.Steps() {
		f.record(s)
	}
	if err := f.register(ctx); err != nil {
		return *res, err
	}
	f.sel.AddReceive(f.wake, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil) })
	return f.run(ctx)
}

// record creates the record of step s.
func (f *appFailover) record(s planner.Step) *AppStep {
	r := &AppStep{
		Component: s.Component,
		Phase:     s.Phase,
		Status:    AppStepPending,
		Action:    "none",
	}
	if a := f.g.Action(s); a != nil {
		r.Action = a.Describe()
	}
	f.rec[s] = r
	f.records = append(f.records, r)
	return r
}

// run is the event loop: start what the rules allow, wait for the next
// step to end (or an abort), repeat.
func (f *appFailover) run(ctx workflow.Context) (AppFailoverResult, error) {
	for {
		restoring := f.abort != nil || (f.failure != nil && !f.onlineStarted)
		switch {
		case restoring:
			f.stopOffline()
			f.startRestores(ctx)
		case f.failure == nil:
			for _, s := range f.g.Ready(f.st) {
				f.launch(ctx, s)
			}
		}
		f.details(ctx)
		if f.running == 0 {
			break
		}
		f.sel.Select(ctx)
		// Steps that end at the same instant are taken together before
		// re-planning, as the planner's simulation does: whatever has
		// ended, and any timer due by now whose event is still on its way.
		for f.sel.HasPending() || f.waitDue(ctx) {
			f.sel.Select(ctx)
		}
	}
	return f.end(ctx)
}

// launch starts step s on its own goroutine.
func (f *appFailover) launch(ctx workflow.Context, s planner.Step) {
	if err := f.st.Start(s); err != nil {
		panic(err) // Ready returned a step that is not pending: a planner bug
	}
	r := f.rec[s]
	if r == nil {
		r = f.record(s)
	}
	r.Status, r.StartedAt = AppStepRunning, workflow.Now(ctx)
	f.started = append(f.started, s)
	if s.Phase == planner.PhaseOnline && !f.onlineStarted {
		f.onlineStarted = true
		f.currentPhase = AppPhaseOnline
	}
	f.running++
	sctx, cancel := workflow.WithCancel(ctx)
	f.cancel[s] = cancel
	fut, settable := workflow.NewFuture(ctx)
	workflow.Go(sctx, func(sctx workflow.Context) {
		out, err := f.runStep(sctx, s, f.g.Action(s))
		settable.Set(out, err)
	})
	f.sel.AddFuture(fut, func(fut workflow.Future) {
		var out string
		err := fut.Get(ctx, &out)
		f.finish(ctx, s, out, err)
	})
}

// finish records the end of step s.
func (f *appFailover) finish(ctx workflow.Context, s planner.Step, out string, err error) {
	f.running--
	f.cancel[s]()
	delete(f.cancel, s)
	r := f.rec[s]
	r.EndedAt = workflow.Now(ctx)
	r.Millis = r.EndedAt.Sub(r.StartedAt).Milliseconds()
	r.Output = clip(out)
	r.Status = AppStepDone
	switch {
	case err != nil && f.stopping && temporal.IsCanceledError(err):
		r.Status, r.Error = AppStepCancelled, "stopped: the failover is being rolled back"
	case err != nil:
		r.Status, r.Error = AppStepFailed, clip(err.Error())
		if f.failure == nil && s.Phase != planner.PhaseRestore {
			f.failure = fmt.Errorf("%s failed: %w", s, err)
		}
	}
	if ferr := f.st.Finish(s, err == nil); ferr != nil {
		panic(ferr)
	}
}

// waitDue reports whether a running wait step's timer is due by now: its
// end is this instant, so the loop waits for it before re-planning.
func (f *appFailover) waitDue(ctx workflow.Context) bool {
	now := workflow.Now(ctx)
	for _, s := range f.started {
		r := f.rec[s]
		a := f.g.Action(s)
		if r.Status != AppStepRunning || a == nil || a.Kind() != planner.KindWait {
			continue
		}
		if !r.StartedAt.Add(a.Wait.D()).After(now) {
			return true
		}
	}
	return false
}

// stopOffline tells the running offline steps to stop, once: an abort
// should not wait for a long drain to finish before restoring. A stopped
// step's component is restored like the others (restore actions must cope
// with a half-done offline step).
func (f *appFailover) stopOffline() {
	if f.stopping {
		return
	}
	f.stopping = true
	for _, s := range f.started {
		if cancel, ok := f.cancel[s]; ok && s.Phase == planner.PhaseOffline {
			cancel()
		}
	}
}

// startRestores starts the restores the planner allows, and records as
// skipped those the plan gives no action for.
func (f *appFailover) startRestores(ctx workflow.Context) {
	f.currentPhase = AppPhaseRestoring
	for {
		ready := f.g.ReadyRestore(f.st)
		skipped := false
		for _, s := range ready {
			if f.g.Action(s) != nil {
				f.launch(ctx, s)
				continue
			}
			// Nothing to run: recorded at once so that its dependents'
			// restores are not held back.
			if err := f.st.Start(s); err != nil {
				panic(err)
			}
			if err := f.st.Finish(s, true); err != nil {
				panic(err)
			}
			r := f.record(s)
			r.Status, r.StartedAt, r.EndedAt = AppStepSkipped, workflow.Now(ctx), workflow.Now(ctx)
			r.Output = "the plan gives no restore action: left offline on the source"
			skipped = true
		}
		if !skipped {
			return
		}
	}
}

// runStep runs one step's action to its end, with its retries and timeout.
func (f *appFailover) runStep(ctx workflow.Context, s planner.Step, a *planner.Action) (string, error) {
	summary := fmt.Sprintf("%s: %s", s, a.Describe())
	switch a.Kind() {
	case planner.KindWait:
		timer := workflow.NewTimerWithOptions(ctx, a.Wait.D(), workflow.TimerOptions{Summary: summary})
		return "", timer.Get(ctx, nil)
	case planner.KindCommand:
		return runCommand(ctx, s, a, summary)
	case planner.KindHTTP:
		return callHTTP(ctx, s, a, summary)
	case planner.KindAccount:
		return f.accountFailover(ctx, s, a, summary)
	}
	return "", fmt.Errorf("%s: unknown action kind %q", s, a.Kind())
}

// stepRetry is the retry policy of a step's activity: the action's retries
// after the first attempt, 1s apart, doubling, at most 30s.
func stepRetry(a *planner.Action) *temporal.RetryPolicy {
	return &temporal.RetryPolicy{
		InitialInterval:    time.Second,
		BackoffCoefficient: 2,
		MaximumInterval:    30 * time.Second,
		MaximumAttempts:    int32(a.Retries) + 1,
	}
}

// runCommand runs a command step as the RunCommand activity; its output is
// the command's last line.
func runCommand(ctx workflow.Context, s planner.Step, a *planner.Action, summary string) (string, error) {
	timeout := a.TimeoutOrDefault()
	var heartbeat time.Duration
	if timeout > 15*time.Second {
		// The activity heartbeats every 5s, and learns of a cancellation
		// through its heartbeats.
		heartbeat = 15 * time.Second
	}
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: timeout,
		HeartbeatTimeout:    heartbeat,
		Summary:             summary,
		RetryPolicy:         stepRetry(a),
		// A stopped command is waited for, so that its restore does not
		// run beside it.
		WaitForCancellation: true,
	})
	in := activities.CommandInput{Step: s.String(), Argv: a.Command}
	var r activities.CommandResult
	err := workflow.ExecuteActivity(actx, acts.RunCommand, in).Get(ctx, &r)
	return lastLine(r.Output), err
}

// callHTTP runs an HTTP step as the CallHTTP activity; its output is the
// answer's status and the last line of its body.
func callHTTP(ctx workflow.Context, s planner.Step, a *planner.Action, summary string) (string, error) {
	h := a.HTTP
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: a.TimeoutOrDefault(),
		Summary:             summary,
		RetryPolicy:         stepRetry(a),
	})
	in := activities.HTTPInput{
		Step:         s.String(),
		Method:       h.MethodOrDefault(),
		URL:          h.URL,
		Body:         h.Body,
		Headers:      h.Headers,
		ExpectStatus: h.ExpectStatusOrDefault(),
	}
	var r activities.HTTPResult
	if err := workflow.ExecuteActivity(actx, acts.CallHTTP, in).Get(ctx, &r); err != nil {
		return "", err
	}
	return strings.TrimSpace(fmt.Sprintf("%d %s", r.Status, lastLine(r.Body))), nil
}

// accountFailover runs AccountFailover as a child under the account's own
// failover ID (so it cannot run beside another failover of the account),
// bounded by the action's timeout: at the timeout the child is cancelled,
// which rolls it back if it has not promoted yet, and waited for.
func (f *appFailover) accountFailover(
	ctx workflow.Context, s planner.Step, a *planner.Action, summary string,
) (string, error) {
	acc := a.Account
	req := FailoverRequest{
		Account:   acc.Account,
		FromStamp: acc.From,
		ToStamp:   acc.To,
		Reason: fmt.Sprintf("application failover %s, component %s: %s",
			f.req.Plan.Name, s.Component, f.req.Reason),
		RequestedBy: f.req.RequestedBy,
	}
	var err error
	for attempt := 1; ; attempt++ {
		var res FailoverResult
		res, err = f.accountAttempt(ctx, a.TimeoutOrDefault(), req, summary)
		if err == nil {
			return fmt.Sprintf("%s primary on %s at epoch %d; writes unavailable %d ms",
				res.Account, res.To, res.NewEpoch, res.UnavailableMillis), nil
		}
		if attempt > a.Retries || !accountRetryable(err) {
			return "", fmt.Errorf("fail storage account %s over to %s: %w", acc.Account, acc.To, err)
		}
		// The same backoff as the activities': 1s, doubling, at most 30s.
		if err := workflow.Sleep(ctx, min(time.Second<<(attempt-1), 30*time.Second)); err != nil {
			return "", err
		}
	}
}

// accountAttempt runs the child AccountFailover once, cancelling it (and
// waiting for it) if it is still running at the timeout.
func (f *appFailover) accountAttempt(
	ctx workflow.Context, timeout time.Duration, req FailoverRequest, summary string,
) (FailoverResult, error) {
	cctx, cancelChild := workflow.WithCancel(ctx)
	defer cancelChild()
	cctx = workflow.WithChildOptions(cctx, workflow.ChildWorkflowOptions{
		WorkflowID:            FailoverWorkflowID(req.Account),
		StaticSummary:         summary,
		StaticDetails:         req.Reason,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WaitForCancellation:   true,
	})
	child := workflow.ExecuteChildWorkflow(cctx, AccountFailover, req)
	tctx, cancelTimer := workflow.WithCancel(ctx)
	defer cancelTimer()
	timer := workflow.NewTimerWithOptions(tctx, timeout, workflow.TimerOptions{Summary: "timeout: " + summary})
	var (
		res      FailoverResult
		err      error
		timedOut bool
	)
	sel := workflow.NewSelector(ctx)
	sel.AddFuture(child, func(fut workflow.Future) { err = fut.Get(ctx, &res) })
	sel.AddFuture(timer, func(workflow.Future) { timedOut = true })
	sel.Select(ctx)
	if timedOut {
		cancelChild()
		cerr := child.Get(ctx, &res)
		return res, fmt.Errorf("timed out after %s (the failover was cancelled: %v)", timeout, cerr)
	}
	return res, err
}

// accountRetryable: retry an account failover unless it was refused by its
// precheck or its approval gate, or aborted by an operator; those would only
// say no again.
func accountRetryable(err error) bool {
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		return true
	}
	switch ae.Type() {
	case ErrTypeRefused, ErrTypeRejected, ErrTypeTimedOut, ErrTypeAborted:
		return false
	}
	return true
}

// register installs the progress query, and the abort decision as an
// update and a same-named signal (for the Web UI).
func (f *appFailover) register(ctx workflow.Context) error {
	progress := func() (AppProgress, error) { return f.progress(), nil }
	if err := workflow.SetQueryHandler(ctx, QueryProgress, progress); err != nil {
		return fmt.Errorf("register progress query: %w", err)
	}
	return registerDecisions(ctx, &f.res.Refusals,
		decision{name: UpdateAbort, validate: f.validateAbort, apply: f.doAbort})
}

// validateAbort says why an abort does not apply now: an online step has
// started.
func (f *appFailover) validateAbort(_ workflow.Context, _ Decision) error {
	if f.onlineStarted {
		return errAppPointOfNoReturn
	}
	return nil
}

// doAbort records the first abort and wakes the event loop, which stops
// the running offline steps and restores.
func (f *appFailover) doAbort(ctx workflow.Context, d Decision) {
	if f.abort != nil {
		return
	}
	d.At = workflow.Now(ctx)
	f.abort = &d
	f.wake.SendAsync(struct{}{})
}

// end settles the outcome and returns the result (or the error carrying it).
func (f *appFailover) end(ctx workflow.Context) (AppFailoverResult, error) {
	res := f.res
	res.FinishedAt = workflow.Now(ctx)
	res.TotalMillis = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	res.Abort = f.abort
	res.Steps = f.ordered()
	restored := f.restoredSummary()
	var (
		err     error
		errType string
	)
	switch {
	case f.abort != nil:
		res.Outcome, f.currentPhase, errType = AppOutcomeAborted, AppPhaseAborted, ErrTypeAppAborted
		err = fmt.Errorf("application failover %s aborted by %s (%s); %s",
			res.Plan, f.abort.By, f.abort.Reason, restored)
		if f.failure != nil {
			err = fmt.Errorf("%w; meanwhile %w", err, f.failure)
		}
	case f.failure != nil && !f.onlineStarted:
		res.Outcome, f.currentPhase, errType = AppOutcomeRolledBack, AppPhaseRolledBack, ErrTypeAppRolledBack
		err = fmt.Errorf("application failover %s: %w; no online step had started: %s", res.Plan, f.failure, restored)
	case f.failure != nil:
		res.Outcome, f.currentPhase, errType = AppOutcomeFailed, AppPhaseFailed, ErrTypeAppFailed
		err = fmt.Errorf("application failover %s: %w, after the point of no return: %s",
			res.Plan, f.failure, f.whereThingsAre())
	case !f.g.Complete(f.st):
		res.Outcome, f.currentPhase, errType = AppOutcomeFailed, AppPhaseFailed, ErrTypeAppFailed
		err = fmt.Errorf("application failover %s: no step can start and %s (a planner bug)",
			res.Plan, f.whereThingsAre())
	default:
		res.Outcome, f.currentPhase = AppOutcomeCompleted, AppPhaseDone
	}
	f.details(ctx)
	if err != nil {
		return *res, temporal.NewNonRetryableApplicationError(err.Error(), errType, err, *res)
	}
	return *res, nil
}

// restoredSummary says what an abort or early failure left where.
func (f *appFailover) restoredSummary() string {
	var restored, failed, skipped []string
	for _, r := range f.records {
		if r.Phase != planner.PhaseRestore {
			continue
		}
		switch r.Status {
		case AppStepDone:
			restored = append(restored, r.Component)
		case AppStepFailed:
			failed = append(failed, r.Component)
		case AppStepSkipped:
			skipped = append(skipped, r.Component)
		}
	}
	if len(restored)+len(failed)+len(skipped) == 0 {
		return "nothing had gone offline"
	}
	parts := []string{fmt.Sprintf("back online on the source: [%s]", strings.Join(restored, " "))}
	if len(failed) > 0 {
		parts = append(parts, fmt.Sprintf("restore FAILED, bring them back by hand: [%s]", strings.Join(failed, " ")))
	}
	if len(skipped) > 0 {
		parts = append(parts, fmt.Sprintf("no restore action, left offline: [%s]", strings.Join(skipped, " ")))
	}
	return strings.Join(parts, "; ")
}

// whereThingsAre lists the components by how far they got.
func (f *appFailover) whereThingsAre() string {
	var onTarget, offline, untouched []string
	for _, n := range f.g.Names() {
		switch {
		case f.st.Status(planner.Step{Component: n, Phase: planner.PhaseOnline}) == planner.Done:
			onTarget = append(onTarget, n)
		case f.st.Status(planner.Step{Component: n, Phase: planner.PhaseOffline}) != planner.Pending:
			offline = append(offline, n)
		default:
			untouched = append(untouched, n)
		}
	}
	return fmt.Sprintf("online on the target: [%s]; offline or partly moved: [%s]; untouched on the source: [%s]",
		strings.Join(onTarget, " "), strings.Join(offline, " "), strings.Join(untouched, " "))
}

// ordered is every record, started ones in start order, then the rest.
func (f *appFailover) ordered() []AppStep {
	out := make([]AppStep, 0, len(f.records))
	seen := map[*AppStep]bool{}
	for _, s := range f.started {
		r := f.rec[s]
		seen[r] = true
		out = append(out, *r)
	}
	for _, r := range f.records {
		if !seen[r] {
			out = append(out, *r)
		}
	}
	return out
}

func (f *appFailover) progress() AppProgress {
	p := AppProgress{
		Plan:            f.res.Plan,
		Phase:           f.currentPhase,
		StartedAt:       f.res.StartedAt,
		PredictedMillis: f.res.PredictedMillis,
		Total:           len(f.g.Steps()),
		Steps:           f.ordered(),
	}
	for _, r := range p.Steps {
		switch {
		case r.Status == AppStepRunning:
			p.Running = append(p.Running, r.Step().String())
		case r.Status == AppStepDone && r.Phase != planner.PhaseRestore:
			p.Done++
		}
	}
	return p
}

// details shows the running steps in the Web UI.
func (f *appFailover) details(ctx workflow.Context) {
	p := f.progress()
	var b strings.Builder
	predicted := time.Duration(p.PredictedMillis) * time.Millisecond
	if predicted >= time.Minute {
		// Rounded as report.FormatDuration rounds (the report package
		// imports this one, so this one cannot call it).
		predicted = predicted.Round(time.Second)
	}
	b.WriteString(fmt.Sprintf("**%s** %s: %d of %d steps done, predicted %s\n\n",
		p.Phase, p.Plan, p.Done, p.Total, predicted))
	if len(p.Running) > 0 {
		b.WriteString("running:\n")
		for _, r := range p.Steps {
			if r.Status == AppStepRunning {
				b.WriteString(fmt.Sprintf("- %s: %s\n", r.Step(), r.Action))
			}
		}
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

func clip(s string) string {
	if len(s) <= maxStepOutput {
		return s
	}
	return s[:maxStepOutput-3] + "..."
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
