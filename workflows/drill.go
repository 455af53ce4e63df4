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
)

// NameDrill is the workflow type of a drill: stable, it is recorded in
// every history.
const NameDrill = "Drill"

// DrillWorkflowID is the workflow ID of a drill started by hand: one at a
// time per account. A schedule's drills get the schedule's timestamp
// appended to it (drill-ACCOUNT-2025-01-04T00:00:00Z).
func DrillWorkflowID(account string) string { return "drill-" + account }

// DrillScheduleID is the ID of an account's drill schedule.
func DrillScheduleID(account string) string { return "drill-schedule-" + account }

// Legs of a drill, in order: the BatonPhase values of a running drill
// (besides PhasePrecheck, the readiness check, and PhaseDone, PhaseSkipped,
// PhaseFailed at the end).
const (
	// PhaseDrillFailover: planned failover from the primary (home) to the
	// secondary (away), canaries written before and read back after.
	PhaseDrillFailover Phase = "failover"
	// PhaseDrillReprotect: home becomes away's replica.
	PhaseDrillReprotect Phase = "reprotect"
	// PhaseDrillFailback: planned failover back home, canaries checked.
	PhaseDrillFailback Phase = "failback"
	// PhaseDrillFinalReprotect: away becomes home's replica again.
	PhaseDrillFinalReprotect Phase = "final-reprotect"
	// PhaseSkipped: the drill did not start a leg (not ready, busy, or a
	// blocked window) and says why.
	PhaseSkipped Phase = "skipped"
)

// OutcomeSkipped: a drill that did not run, and says why (the account was
// not ready, something else moved it, or a blocked window). Not a failure.
const OutcomeSkipped Outcome = "skipped"

// ErrTypeDrillFailed is the error type of a drill that failed; its details
// carry the DrillResult, whose FailedLeg and Next say where it stopped and
// what to do.
const ErrTypeDrillFailed = "DrillFailed"

// Defaults and limits of a drill request.
const (
	DefaultDrillCanaries = 32
	MaxDrillCanaries     = 1000
)

// DrillRequest starts a Drill: one practice cycle of an account (planned
// failover, reprotect, failback, reprotect), ending where it started.
type DrillRequest struct {
	Account     string
	Reason      string
	RequestedBy string
	// Schedule is the ID of the schedule that started the drill ("" by
	// hand).
	Schedule string
	// Canaries is how many keys are written before each failover leg and
	// read back from the new primary after it (default
	// DefaultDrillCanaries, at most MaxDrillCanaries).
	Canaries int
	// LagBudgetOps: the drill is skipped while replication lags more than
	// this, summed over partitions (default max(1000, 2 x partitions)).
	LagBudgetOps uint64
	// Blocked are weekly windows, in UTC, in which the drill does not
	// start: "DAY HH:MM-HH:MM" (see BlockedWindow).
	Blocked []string
	// Failover are the options of both failover legs.
	Failover FailoverOptions
	// ReprotectCatchUpTimeout bounds each reprotect leg's catch-up
	// (default the reprotect's own, 10m).
	ReprotectCatchUpTimeout time.Duration
}

// WithDefaults fills in the defaults.
func (r DrillRequest) WithDefaults() DrillRequest {
	if r.Canaries == 0 {
		r.Canaries = DefaultDrillCanaries
	}
	if r.RequestedBy == "" {
		r.RequestedBy = "baton drill"
	}
	if r.Reason == "" {
		r.Reason = "drill"
	}
	return r
}

// Validate says what is wrong with the request (call it on
// r.WithDefaults()), or nil.
func (r DrillRequest) Validate() error {
	switch {
	case r.Account == "":
		return &FieldError{FieldAccount, "", "name the account to drill"}
	case strings.ContainsAny(r.Account, `'"\`):
		return &FieldError{FieldAccount, fmt.Sprintf("%q", r.Account), "an account name has no quotes or backslashes"}
	case r.Canaries < 1 || r.Canaries > MaxDrillCanaries:
		return &FieldError{FieldCanaries, fmt.Sprint(r.Canaries), fmt.Sprintf("write 1 to %d canaries", MaxDrillCanaries)}
	case r.ReprotectCatchUpTimeout < 0:
		return &FieldError{FieldCatchUpTimeout, r.ReprotectCatchUpTimeout.String(),
			"must be positive (or none, for the default)"}
	}
	if _, err := ParseBlockedWindows(r.Blocked); err != nil {
		return err
	}
	return r.Failover.validate()
}

// Drill request fields, as FieldError names them.
const (
	FieldCanaries       = "canaries"
	FieldCatchUpTimeout = "catch-up timeout"
)

// DrillLeg is one leg of a drill: a failover (failover, failback) or a
// reprotect, each a child workflow under the account's own ID.
type DrillLeg struct {
	Leg Phase
	// From and To: the failover's source and destination; for a reprotect,
	// To is the primary that ships and From the stamp made its replica.
	From, To   string
	WorkflowID string
	RunID      string
	// Outcome is how the leg's child workflow ended ("" if it did not
	// start); Error the leg's error (a failover that completed but lost
	// canaries has both).
	Outcome   Outcome
	Error     string
	StartedAt time.Time
	// Millis is the leg's time, start to end: for a failover leg its RTO
	// (the account served by the other stamp).
	Millis int64
	// FencedMillis (failover legs) is the write-unavailability window, fence
	// to promote (FailoverResult.UnavailableMillis).
	FencedMillis int64
	// LagOps (reprotect legs) is what the replica still had to replay when
	// it was declared caught up; RecoveredOps what the old primary held past
	// the new one (0 after a planned failover).
	LagOps       uint64
	RecoveredOps uint64
	// Canaries (failover legs) is how many canary writes were read back
	// from the new primary; LostCanaries those not there.
	Canaries     int
	LostCanaries []string
}

// DrillResult is the report of a drill. A drill that failed returns an
// error whose details carry it.
type DrillResult struct {
	Account     string
	Reason      string
	RequestedBy string
	Schedule    string
	Outcome     Outcome
	// Why the drill was skipped, or failed.
	Why string
	// FailedLeg is the leg that failed; Next says where that left the
	// account and what to do.
	FailedLeg Phase
	Next      string
	// Home is the account's primary at the start (and, completed, at the
	// end); Away its secondary, the other end of both failovers.
	Home, Away string
	Partitions int
	// LagOpsAtStart is the replication lag the readiness check saw
	// (unacknowledged + unreplayed), LagBudgetOps its budget.
	LagOpsAtStart uint64
	LagBudgetOps  uint64
	Legs          []DrillLeg
	// Canaries written before each failover leg; CanariesLost over both.
	Canaries     int
	CanariesLost int
	// CanaryCleanup says why the canaries were not deleted ("" = deleted).
	CanaryCleanup string
	// RTOMillis is the slower failover leg's time; FencedMillis the longer
	// fenced window of the two.
	RTOMillis    int64
	FencedMillis int64
	StartedAt    time.Time
	FinishedAt   time.Time
	TotalMillis  int64
}

// Drill runs one practice cycle of an account's disaster recovery: a
// planned failover to its secondary, a reprotect, the failback, and
// another reprotect, each as a child workflow under the account's own ID
// (so a drill never runs beside a real failover or reprotect of it). Before
// each failover leg it writes canary keys through the location service and
// reads them back from the new primary after it. A drill starts only when
// the account is ready (protected, both stamps answering, lag within
// budget, nothing else moving it), outside its blocked windows and, if its
// schedule started it, while no maintenance switch holds it; otherwise it
// completes as skipped, saying why.
func Drill(ctx workflow.Context, req DrillRequest) (DrillResult, error) {
	req = req.WithDefaults()
	d := &drill{req: req, res: &DrillResult{Account: req.Account, Reason: req.Reason, RequestedBy: req.RequestedBy,
		Schedule: req.Schedule, Canaries: req.Canaries, StartedAt: workflow.Now(ctx)}}
	err := workflow.SetQueryHandler(ctx, QueryProgress, func() (DrillResult, error) { return *d.res, nil })
	if err != nil {
		return *d.res, err
	}
	return *d.res, d.run(ctx)
}

// drill is one run of Drill.
type drill struct {
	req   DrillRequest
	res   *DrillResult
	phase Phase
	// keys are the canaries written so far.
	keys []string
}

// errBusy: a leg's child could not start, another workflow under its ID
// runs.
type errBusy struct{ id string }

func (e errBusy) Error() string {
	return fmt.Sprintf("workflow %s is running: a drill waits until nothing else moves the account", e.id)
}

// run is the drill as named steps; every way out goes through end.
func (d *drill) run(ctx workflow.Context) error {
	req, res := d.req, d.res
	_ = workflow.UpsertTypedSearchAttributes(ctx, SearchAccount.ValueSet(req.Account),
		SearchOperation.ValueSet(OperationDrill))
	if err := req.Validate(); err != nil {
		return d.end(ctx, OutcomeFailed, fmt.Errorf("bad drill request: %w", err))
	}
	d.enterPhase(ctx, PhasePrecheck, "is "+req.Account+" ready for a drill?")
	if why := d.blocked(ctx); why != "" {
		return d.end(ctx, OutcomeSkipped, errors.New(why))
	}
	ready, err := d.readiness(ctx)
	switch {
	case err != nil:
		return d.end(ctx, OutcomeFailed, because("readiness check of "+req.Account, err))
	case !ready.Ready:
		return d.end(ctx, OutcomeSkipped, errors.New(ready.NotReady))
	}
	res.Home, res.Away, res.Partitions = ready.Primary, ready.Secondary, ready.Partitions
	res.LagOpsAtStart, res.LagBudgetOps = ready.SendLagOps+ready.ReplayLagOps, ready.LagBudgetOps
	home, away := res.Home, res.Away
	legs := []struct {
		phase    Phase
		from, to string
		failover bool
	}{
		{PhaseDrillFailover, home, away, true},
		{PhaseDrillReprotect, home, away, false},
		{PhaseDrillFailback, away, home, true},
		{PhaseDrillFinalReprotect, away, home, false},
	}
	for i, l := range legs {
		leg := DrillLeg{Leg: l.phase, From: l.from, To: l.to, StartedAt: workflow.Now(ctx)}
		var err error
		if l.failover {
			err = d.failoverLeg(ctx, &leg)
		} else {
			err = d.reprotectLeg(ctx, &leg)
		}
		leg.Millis = workflow.Now(ctx).Sub(leg.StartedAt).Milliseconds()
		if err != nil {
			leg.Error = err.Error()
		}
		res.Legs = append(res.Legs, leg)
		var busy errBusy
		if i == 0 && errors.As(err, &busy) && leg.WorkflowID == "" {
			res.Legs = nil // nothing ran: only the canaries were written
			d.deleteCanaries(ctx)
			return d.end(ctx, OutcomeSkipped, err)
		}
		if err != nil {
			res.FailedLeg, res.Next = l.phase, d.next(leg)
			return d.end(ctx, OutcomeFailed, fmt.Errorf("drill of %s failed at its %s leg: %w", req.Account, l.phase, err))
		}
	}
	d.deleteCanaries(ctx)
	return d.end(ctx, OutcomeCompleted, nil)
}

// blocked says why now is inside one of the request's blocked windows
// ("" if it is not).
func (d *drill) blocked(ctx workflow.Context) string {
	now := workflow.Now(ctx).UTC()
	windows, _ := ParseBlockedWindows(d.req.Blocked) // validated
	for _, w := range windows {
		if w.Contains(now) {
			return fmt.Sprintf("now (%s UTC) is inside the blocked window %q", now.Format("Mon 15:04"), w.String())
		}
	}
	return ""
}

// activity runs a drill's activity with bounded attempts.
func (d *drill) activity(ctx workflow.Context, attempt time.Duration, summary string) workflow.Context {
	hb := d.req.Failover.HeartbeatTimeout
	if hb <= 0 {
		hb = 10 * time.Second
	}
	return workflow.WithScheduleToCloseTimeout(withActivity(ctx, attempt, hb, 3, summary), 3*attempt)
}

// readiness asks whether the account can be drilled now.
func (d *drill) readiness(ctx workflow.Context) (activities.DrillReadinessResult, error) {
	acct := d.req.Account
	info := workflow.GetInfo(ctx)
	in := activities.DrillReadinessInput{
		Account: acct, LagBudgetOps: d.req.LagBudgetOps,
		Busy: []string{FailoverWorkflowID(acct), ReprotectWorkflowID(acct)},
		OtherDrills: fmt.Sprintf("%s = '%s' AND %s = '%s' AND ExecutionStatus = 'Running'",
			SearchOperation.GetName(), OperationDrill, SearchAccount.GetName(), acct),
		DrillID: info.WorkflowExecution.ID, DrillRunID: info.WorkflowExecution.RunID,
		DrillStarted: info.WorkflowStartTime,
		// A field of the activity's input, not a command: histories replay.
		Scheduled: d.req.Schedule != "",
	}
	var r activities.DrillReadinessResult
	err := workflow.ExecuteActivity(d.activity(ctx, time.Minute, "is "+acct+" ready for a drill?"),
		acts.DrillReadiness, in).Get(ctx, &r)
	return r, err
}

// failoverLeg writes canaries on the primary, fails the account over as a
// child AccountFailover, and reads every canary written so far back from
// the new primary.
func (d *drill) failoverLeg(ctx workflow.Context, leg *DrillLeg) error {
	acct := d.req.Account
	runID := workflow.GetInfo(ctx).WorkflowExecution.RunID
	keys := activities.CanaryKeys(runID, len(d.keys), d.req.Canaries)
	d.enterPhase(ctx, leg.Leg, fmt.Sprintf("writing %d canaries to %s on %s", len(keys), acct, leg.From))
	summary := fmt.Sprintf("write %d canaries on %s", len(keys), leg.From)
	err := workflow.ExecuteActivity(d.activity(ctx, time.Minute, summary), acts.WriteCanaries,
		activities.CanaryInput{Account: acct, Keys: keys, Primary: leg.From}).Get(ctx, nil)
	if err != nil {
		return because("write the canaries on "+leg.From, err)
	}
	d.keys = append(d.keys, keys...)

	d.enterPhase(ctx, leg.Leg, fmt.Sprintf("planned failover of %s from %s to %s (workflow %s)",
		acct, leg.From, leg.To, FailoverWorkflowID(acct)))
	req := FailoverRequest{Account: acct, FromStamp: leg.From, ToStamp: leg.To, Mode: ModePlanned, Trigger: TriggerManual,
		Reason: d.legReason(ctx, leg), RequestedBy: d.req.RequestedBy, Options: d.req.Failover}.WithDefaults()
	if err := req.Validate(); err != nil {
		return fmt.Errorf("bad failover request: %w", err)
	}
	cctx := d.child(ctx, FailoverWorkflowID(acct), fmt.Sprintf("drill %s: %s", leg.Leg, FailoverSummary(req)),
		FailoverSearchAttributes(req))
	fut := workflow.ExecuteChildWorkflow(cctx, AccountFailover, req)
	if err := d.started(ctx, fut, leg); err != nil {
		return err
	}
	var fr FailoverResult
	err = fut.Get(ctx, &fr)
	if outcome, r, ok := OutcomeOf(err); ok {
		fr = r
		leg.Outcome = outcome
	}
	leg.FencedMillis = fr.UnavailableMillis
	if err != nil {
		return because("the failover", err)
	}
	leg.Outcome = fr.Outcome

	d.enterPhase(ctx, leg.Leg, fmt.Sprintf("reading %d canaries back from %s", len(d.keys), leg.To))
	var cr activities.CanaryResult
	summary = fmt.Sprintf("read %d canaries on %s", len(d.keys), leg.To)
	err = workflow.ExecuteActivity(d.activity(ctx, time.Minute, summary), acts.CheckCanaries,
		activities.CanaryInput{Account: acct, Keys: d.keys, Primary: leg.To}).Get(ctx, &cr)
	if err != nil {
		return because("read the canaries back from "+leg.To, err)
	}
	leg.Canaries, leg.LostCanaries = cr.Checked, cr.Lost
	d.res.CanariesLost += len(cr.Lost)
	if len(cr.Lost) > 0 {
		return fmt.Errorf("%d of %d canary writes acknowledged before the failover are not on %s (first: %s)",
			len(cr.Lost), cr.Checked, leg.To, cr.Lost[0])
	}
	return nil
}

// reprotectLeg makes leg.From the replica of leg.To as a child Reprotect.
func (d *drill) reprotectLeg(ctx workflow.Context, leg *DrillLeg) error {
	acct := d.req.Account
	d.enterPhase(ctx, leg.Leg, fmt.Sprintf("reprotect of %s: %s becomes the replica of %s (workflow %s)",
		acct, leg.From, leg.To, ReprotectWorkflowID(acct)))
	req := ReprotectRequest{Account: acct, Trigger: TriggerManual, RequestedBy: d.req.RequestedBy,
		Reason:         d.legReason(ctx, leg),
		CatchUpTimeout: d.req.ReprotectCatchUpTimeout, HeartbeatTimeout: d.req.Failover.HeartbeatTimeout}
	cctx := d.child(ctx, ReprotectWorkflowID(acct), fmt.Sprintf("drill %s: reprotect %s", leg.Leg, acct),
		temporal.NewSearchAttributes(SearchAccount.ValueSet(acct), SearchPhase.ValueSet(string(PhasePrecheck)),
			SearchOperation.ValueSet(OperationReprotect)))
	fut := workflow.ExecuteChildWorkflow(cctx, Reprotect, req)
	if err := d.started(ctx, fut, leg); err != nil {
		return err
	}
	var rr ReprotectResult
	err := fut.Get(ctx, &rr)
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.HasDetails() {
		_ = ae.Details(&rr)
	}
	leg.Outcome, leg.LagOps, leg.RecoveredOps = rr.Outcome, rr.LagOps, rr.RecoveredOps
	return because("the reprotect", err)
}

// legReason is the reason a leg's child records: the drill, the leg and
// the drill's reason.
func (d *drill) legReason(ctx workflow.Context, leg *DrillLeg) string {
	return fmt.Sprintf("drill %s: %s leg (%s)", workflow.GetInfo(ctx).WorkflowExecution.ID, leg.Leg, d.req.Reason)
}

// child sets the options of a leg's child workflow: the account's own ID
// (so it cannot run beside another failover or reprotect of the account),
// the search attributes it would start with from the CLI, and a cancelled
// drill cancelling it (a failover before promote rolls back).
func (d *drill) child(ctx workflow.Context, id, summary string, attrs temporal.SearchAttributes) workflow.Context {
	return workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            id,
		StaticSummary:         summary,
		StaticDetails:         fmt.Sprintf("part of drill %s", workflow.GetInfo(ctx).WorkflowExecution.ID),
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_REQUEST_CANCEL,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WaitForCancellation:   true,
		TypedSearchAttributes: attrs,
	})
}

// started waits for a leg's child to start and records its IDs; errBusy if
// another workflow runs under its ID.
func (d *drill) started(ctx workflow.Context, fut workflow.ChildWorkflowFuture, leg *DrillLeg) error {
	var ex workflow.Execution
	err := fut.GetChildWorkflowExecution().Get(ctx, &ex)
	if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
		id := FailoverWorkflowID(d.req.Account)
		if leg.Leg == PhaseDrillReprotect || leg.Leg == PhaseDrillFinalReprotect {
			id = ReprotectWorkflowID(d.req.Account)
		}
		return errBusy{id: id}
	}
	if err != nil {
		return because("start the "+string(leg.Leg), err)
	}
	leg.WorkflowID, leg.RunID = ex.ID, ex.RunID
	return nil
}

// deleteCanaries removes the canary keys once the drill checked them (best
// effort: the report says if it could not).
func (d *drill) deleteCanaries(ctx workflow.Context) {
	if len(d.keys) == 0 {
		return
	}
	err := workflow.ExecuteActivity(d.activity(ctx, time.Minute, fmt.Sprintf("delete %d canaries", len(d.keys))),
		acts.DeleteCanaries, activities.CanaryInput{Account: d.req.Account, Keys: d.keys, Primary: d.res.Home}).Get(ctx, nil)
	if err != nil {
		d.res.CanaryCleanup = fmt.Sprintf("canary keys drill-%s-* left on %s: %s",
			workflow.GetInfo(ctx).WorkflowExecution.RunID, d.req.Account, rootMessage(err))
	}
}

// next says where a failed leg left the account and what the operator does.
func (d *drill) next(leg DrillLeg) string {
	acct, home, away := d.req.Account, d.res.Home, d.res.Away
	switch leg.Leg {
	case PhaseDrillReprotect:
		return fmt.Sprintf("%s is primary on %s, not protected: reprotect it (baton reprotect %s), then fail it back "+
			"(baton failover %s --to %s)", acct, away, acct, acct, home)
	case PhaseDrillFinalReprotect:
		return fmt.Sprintf("%s is back home on %s but not protected: reprotect it (baton reprotect %s)", acct, home, acct)
	}
	switch leg.Outcome {
	case OutcomeCompleted:
		// The failover completed; the canaries are what failed.
		next := fmt.Sprintf("%s is primary on %s, not protected: find out why the canary writes are not there "+
			"(the failover's report: baton result %s), then reprotect it (baton reprotect %s)", acct, leg.To, acct, acct)
		if leg.Leg == PhaseDrillFailover {
			next += fmt.Sprintf(" and fail it back (baton failover %s --to %s)", acct, home)
		}
		return next
	case OutcomeFailed:
		return fmt.Sprintf("the failover of %s failed at or past its point of no return: see where %s is (baton status %s) "+
			"and the failover's report (baton result %s), which says what to do by hand", acct, acct, acct, acct)
	}
	// Not started, refused, or rolled back: the account did not move.
	next := fmt.Sprintf("%s is still primary on %s, protected: fix the cause", acct, leg.From)
	if leg.WorkflowID != "" {
		next += fmt.Sprintf(" (the failover's report: baton result %s)", acct)
	}
	if leg.Leg == PhaseDrillFailback {
		return next + fmt.Sprintf(", then fail it back (baton failover %s --to %s)", acct, home)
	}
	return next + fmt.Sprintf(", then drill again (baton drill %s)", acct)
}

// end records the outcome, emits the drill's metrics and returns the error
// a failed drill fails with (nil when it completed or was skipped).
func (d *drill) end(ctx workflow.Context, outcome Outcome, err error) error {
	res := d.res
	res.Outcome, res.FinishedAt = outcome, workflow.Now(ctx)
	res.TotalMillis = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	for _, l := range res.Legs {
		if l.Leg == PhaseDrillFailover || l.Leg == PhaseDrillFailback {
			res.RTOMillis, res.FencedMillis = max(res.RTOMillis, l.Millis), max(res.FencedMillis, l.FencedMillis)
		}
	}
	if err != nil {
		res.Why = err.Error()
	}
	m := workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"account": res.Account})
	mo := m.WithTags(map[string]string{"outcome": string(outcome)})
	mo.Counter(MetricDrills).Inc(1)
	mo.Gauge(MetricDrillLastTime).Update(float64(res.FinishedAt.Unix()))
	if outcome == OutcomeCompleted {
		for _, l := range res.Legs {
			if l.Leg == PhaseDrillFailover || l.Leg == PhaseDrillFailback {
				m.WithTags(map[string]string{"leg": string(l.Leg)}).Timer(MetricDrillRTO).Record(ms(l.Millis))
			}
		}
	}
	switch outcome {
	case OutcomeCompleted:
		d.enterPhase(ctx, PhaseDone, fmt.Sprintf("%s failed over to %s and back to %s, protected; RTO %s, fenced %s, "+
			"%d canaries, 0 lost", res.Account, res.Away, res.Home, ms(res.RTOMillis), ms(res.FencedMillis), res.Canaries))
		return nil
	case OutcomeSkipped:
		d.enterPhase(ctx, PhaseSkipped, res.Why)
		return nil
	}
	detail := res.Why
	if res.Next != "" {
		detail += "\n\n**next** " + res.Next
	}
	d.enterPhase(ctx, PhaseFailed, detail)
	return temporal.NewNonRetryableApplicationError(res.Why, ErrTypeDrillFailed, err, *res)
}

func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// enterPhase moves the drill to phase p: the progress query, the BatonPhase
// search attribute and the Web UI's current details follow.
func (d *drill) enterPhase(ctx workflow.Context, p Phase, details string) {
	if d.phase != p {
		d.phase = p
		_ = workflow.UpsertTypedSearchAttributes(ctx, SearchPhase.ValueSet(string(p)))
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** %s", p, details))
}
