package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// OperationEvacuation is SearchOperation's value for a stamp evacuation.
const OperationEvacuation = "evacuation"

// Metrics of an evacuation (see metrics.go).
const (
	MetricEvacuatedAccounts  = "baton_evacuated_accounts"   // counter; tags outcome, tier
	MetricEvacuations        = "baton_evacuations"          // counter; tags mode, outcome
	MetricEvacuationDuration = "baton_evacuation_duration"  // timer; tag mode: start to end of an evacuation
	MetricEvacuationInFlight = "baton_evacuation_in_flight" // gauge; tag stamp: accounts failing over now
)

// historyBound is the history length past which a run stops starting
// accounts, lets those in flight end and continues as new: each history of
// an evacuation stays well under Temporal's advice.
const historyBound = 4000

// pageSize is how many accounts one listing brings into the queue.
const pageSize = 500

// maxSweeps bounds the passes over the stamp after the first: a pass
// comes back to the start to catch accounts that arrived on the stamp (or
// changed tier) meanwhile, until one finds nothing new.
const maxSweeps = 3

// evacuation is one run of StampEvacuation: the request, the report being
// built, what is queued, in flight and waiting for a retry, and the
// operators' controls.
type evacuation struct {
	req   EvacuationRequest
	res   *EvacuationResult
	carry EvacuationCarry
	// queue holds the listed accounts not yet taken, in evacuation order;
	// fetchAfter is the key the next listing starts after; listEnd: the
	// current pass has listed everything.
	queue      []activities.EvacuationAccount
	fetchAfter activities.EvacuationKey
	listEnd    bool
	// known: accounts in the table, in flight or waiting for a retry (a
	// listing skips them).
	known   map[string]bool
	running []*evacRun
	perDest map[string]int
	// changed wakes the main loop: an account ended, a control came.
	changed  bool
	gateOpen bool
	phase    Phase
	phaseAt  time.Time
	// now is the workflow's clock, for the progress query.
	now func() time.Time
}

// evacRun is an account in flight.
type evacRun struct {
	acct     activities.EvacuationAccount
	attempts int
	started  time.Time
	attached bool
}

// StampEvacuation fails over every account whose primary is the stamp, each
// to its own secondary as that account's AccountFailover (workflow
// failover-<account>, so it never collides with a failover started
// elsewhere: it attaches to one that runs). Lower tiers first, then smaller
// accounts; at most MaxInFlight at once (and PerDestination per
// destination); refused or rolled-back accounts are retried up to Attempts
// times and never stop the others. One approval covers every account.
// Pause, resume, abort and a change of limits take effect while it runs.
// The run continues as new (carrying the cursor, the retries and the
// report) before its history grows long.
func StampEvacuation(ctx workflow.Context, req EvacuationRequest) (EvacuationResult, error) {
	e := newEvacuation(ctx, req)
	if err := e.register(ctx); err != nil {
		return *e.res, err
	}
	if bad := e.req.Validate(); bad != nil {
		return *e.res, e.end(ctx, OutcomeRefused, PhaseFailed, fmt.Errorf("bad evacuation request: %w", bad))
	}
	err := e.run(ctx)
	return *e.res, err
}

// newEvacuation picks up where the previous run left off, or starts the
// report afresh.
func newEvacuation(ctx workflow.Context, req EvacuationRequest) *evacuation {
	req = req.WithDefaults()
	e := &evacuation{req: req, known: map[string]bool{}, perDest: map[string]int{}}
	if req.Carry != nil {
		e.carry = *req.Carry
		e.req.Carry = nil
	} else {
		e.carry.Result = EvacuationResult{
			Stamp: req.Stamp, Mode: req.Mode, Trigger: req.Trigger, Reason: req.Reason,
			RequestedBy: req.RequestedBy, StartedAt: workflow.Now(ctx),
			MaxInFlight: req.MaxInFlight, PerDestination: req.PerDestination, Attempts: req.Attempts,
		}
		for _, a := range req.Alerts {
			e.carry.Result.noteAlert(a)
		}
		// An approval given with the request is the evacuation's one
		// approval, recorded as a failover records it.
		if pa := req.Approval.PreApproved; pa != nil {
			d := *pa
			d.At = workflow.Now(ctx)
			e.carry.Result.Approval = &d
		}
	}
	e.res = &e.carry.Result
	e.res.Runs++
	e.fetchAfter = e.carry.Cursor
	e.gateOpen = e.carry.GateDone
	for _, name := range e.res.Table.Account {
		e.known[name] = true
	}
	for _, r := range e.carry.Retries {
		e.known[r.Account.Account] = true
	}
	e.phase, e.phaseAt = PhaseListing, workflow.Now(ctx)
	return e
}

// run is the evacuation proper: the approval gate once, then the
// admission loop until every account is through, the evacuation is
// aborted, or the run hands over to the next.
func (e *evacuation) run(ctx workflow.Context) error {
	if e.res.Runs == 1 {
		_ = workflow.UpsertTypedSearchAttributes(ctx, SearchOperation.ValueSet(OperationEvacuation),
			SearchStamp.ValueSet(e.req.Stamp), SearchMode.ValueSet(string(e.req.Mode)),
			SearchTrigger.ValueSet(string(e.req.Trigger)))
	}
	if !e.carry.GateDone {
		if err := e.gate(ctx); err != nil {
			return err
		}
	}
	e.enterPhase(ctx, PhaseEvacuating, e.summary())
	for {
		if err := e.admit(ctx); err != nil {
			return err
		}
		if len(e.running) == 0 {
			switch {
			case e.stopping():
				return e.stop(ctx)
			case e.wantsNewRun(ctx):
				return e.continueAsNew(ctx)
			case e.allThrough():
				if !e.sweep() {
					return e.finish(ctx)
				}
				continue // a new pass over the stamp
			}
		}
		if err := e.wait(ctx); err != nil {
			return err
		}
	}
}

// gate waits, when the policy asks, for the one approval that covers every
// account of the evacuation.
func (e *evacuation) gate(ctx workflow.Context) error {
	res := e.res
	res.ApprovalRequired, res.ApprovalReason = evacuationNeedsApproval(e.req)
	if res.ApprovalRequired && res.Approval == nil && res.Rejection == nil && res.Abort == nil {
		e.enterPhase(ctx, PhaseApproval, fmt.Sprintf("%s: approve or reject (update or signal %q / %q), within %s",
			res.ApprovalReason, UpdateApprove, UpdateReject, e.req.Approval.Timeout))
		workflow.GetMetricsHandler(ctx).Counter(MetricApprovalsWaited).Inc(1)
		ok, err := workflow.AwaitWithTimeout(ctx, e.req.Approval.Timeout, func() bool {
			return res.Approval != nil || res.Rejection != nil || res.Abort != nil
		})
		if err != nil {
			return e.end(ctx, OutcomeFailed, PhaseFailed, fmt.Errorf("approval gate: %w", err))
		}
		if !ok {
			e.gateOpen = true
			return e.end(ctx, OutcomeTimedOut, PhaseRejected, fmt.Errorf(
				"no approval within %s: evacuation of %s ended, nothing was touched", e.req.Approval.Timeout, e.req.Stamp))
		}
	}
	e.gateOpen, e.carry.GateDone = true, true
	switch {
	case res.Abort != nil:
		return e.end(ctx, OutcomeAborted, PhaseAborted, fmt.Errorf("evacuation of %s aborted by %s (%s): nothing was touched",
			e.req.Stamp, res.Abort.By, res.Abort.Reason))
	case res.Rejection != nil:
		return e.end(ctx, OutcomeRejected, PhaseRejected, fmt.Errorf("evacuation of %s rejected by %s (%s): nothing was touched",
			e.req.Stamp, res.Rejection.By, res.Rejection.Reason))
	}
	return nil
}

// evacuationNeedsApproval applies the approval policy to the whole
// evacuation, as needsApproval does to one account (the loss budget is an
// account's: in an evacuation the one approval covers it).
func evacuationNeedsApproval(req EvacuationRequest) (bool, string) {
	switch {
	case req.Approval.PreApproved != nil:
		return false, ""
	case req.Approval.Required:
		return true, "the request asks for an approval"
	case req.Mode == ModeUnplanned:
		return true, "an unplanned evacuation may lose data"
	case req.Trigger != TriggerManual:
		return true, fmt.Sprintf("started automatically (trigger %s)", req.Trigger)
	}
	return false, ""
}

// wait sleeps until an account ends or a control arrives, or until the next
// retry is due or a pause runs out.
func (e *evacuation) wait(ctx workflow.Context) error {
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** %s", e.phase, e.summary()))
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"stamp": e.req.Stamp}).
		Gauge(MetricEvacuationInFlight).Update(float64(len(e.running)))
	e.changed = false
	wake := e.nextWake(ctx)
	if wake <= 0 {
		return workflow.Await(ctx, func() bool { return e.changed })
	}
	_, err := workflow.AwaitWithTimeout(ctx, wake, func() bool { return e.changed })
	return err
}

// nextWake is how long the loop may sleep with nothing happening (0: until
// something happens): until the pause runs out, or the next retry is due
// and there is room for it.
func (e *evacuation) nextWake(ctx workflow.Context) time.Duration {
	now := workflow.Now(ctx)
	switch {
	case e.carry.Paused != nil:
		return max(time.Millisecond, e.carry.Paused.At.Add(e.req.MaxPause).Sub(now))
	case e.stopping() || !e.room():
		return 0
	}
	var next time.Time
	for _, r := range e.carry.Retries {
		if next.IsZero() || r.NotBefore.Before(next) {
			next = r.NotBefore
		}
	}
	if next.IsZero() {
		return 0
	}
	return max(time.Millisecond, next.Sub(now))
}

// stopping: aborted (by an operator, or paused past MaxPause): no account
// starts again.
func (e *evacuation) stopping() bool { return e.res.Abort != nil }

// allThrough: the current pass listed every account and none is in flight
// or waiting for a retry.
func (e *evacuation) allThrough() bool {
	return e.listEnd && len(e.queue) == 0 && len(e.running) == 0 && len(e.carry.Retries) == 0
}

// sweep starts another pass over the stamp, if the last one started
// anything (or was the first) and the passes are not used up.
func (e *evacuation) sweep() bool {
	if e.carry.Sweep > 0 && !e.carry.Found || e.carry.Sweep >= maxSweeps {
		return false
	}
	e.carry.Sweep++
	e.carry.Found = false
	e.carry.Cursor, e.fetchAfter, e.listEnd = activities.EvacuationKey{}, activities.EvacuationKey{}, false
	return true
}

// wantsNewRun: the history is long enough to hand over to a new run (once
// the accounts in flight have ended).
func (e *evacuation) wantsNewRun(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetCurrentHistoryLength() >= historyBound || info.GetContinueAsNewSuggested()
}

// continueAsNew hands the cursor, the retries, the controls and the report
// to a new run.
func (e *evacuation) continueAsNew(ctx workflow.Context) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	next := e.req
	next.Alerts = nil // recorded in the report
	carry := e.carry
	next.Carry = &carry
	return workflow.NewContinueAsNewError(ctx, StampEvacuation, next)
}

// stop ends an aborted evacuation once the accounts in flight have ended:
// accounts waiting for a retry are reported with their last error.
func (e *evacuation) stop(ctx workflow.Context) error {
	for _, r := range e.carry.Retries {
		e.record(ctx, r.Account, r.Attempts, FailoverResult{Outcome: r.Outcome}, r.Outcome,
			r.LastError+" (not tried again: the evacuation was aborted)", false, time.Time{})
	}
	e.carry.Retries = nil
	e.res.NotStarted = max(0, e.res.OnStamp-e.res.Table.Len())
	a := e.res.Abort
	return e.end(ctx, OutcomeAborted, PhaseAborted, fmt.Errorf(
		"evacuation of %s aborted by %s (%s): %d accounts moved, %d never started; the ones in flight ended by their own rules",
		e.req.Stamp, a.By, a.Reason, e.moved(), e.res.NotStarted))
}

// finish ends an evacuation that went through every account.
func (e *evacuation) finish(ctx workflow.Context) error {
	left := e.res.Table.Len() - e.moved()
	if left == 0 {
		return e.end(ctx, OutcomeCompleted, PhaseDone, nil)
	}
	first := ""
	if len(e.res.Table.Errors) > 0 {
		ie := e.res.Table.Errors[0]
		first = fmt.Sprintf("; %s: %s", e.res.Table.Account[ie.Row], ie.Error)
	}
	return e.end(ctx, OutcomeIncomplete, PhaseIncomplete, fmt.Errorf(
		"evacuation of %s left %d of %d accounts on it%s", e.req.Stamp, left, e.res.Table.Len(), first))
}

// moved counts the accounts no longer on the stamp (failed over, or moved
// by someone else).
func (e *evacuation) moved() (n int) {
	for _, o := range e.res.Table.Outcome {
		if o == OutcomeCompleted || o == OutcomeMoved {
			n++
		}
	}
	return n
}

// end records the outcome, the counts and the metrics, and returns err as
// the evacuation's error (nil when it completed).
func (e *evacuation) end(ctx workflow.Context, outcome Outcome, phase Phase, err error) error {
	res := e.res
	res.Outcome, res.FinishedAt = outcome, workflow.Now(ctx)
	res.TotalMillis = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	res.ByOutcome = countOutcomes(res.Table.Outcome)
	detail := fmt.Sprintf("%s: %s", outcome, e.summary())
	if err != nil {
		detail = err.Error()
	}
	e.enterPhase(ctx, phase, detail)
	m := workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"mode": string(e.req.Mode)})
	m.WithTags(map[string]string{"outcome": string(outcome)}).Counter(MetricEvacuations).Inc(1)
	m.Timer(MetricEvacuationDuration).Record(res.FinishedAt.Sub(res.StartedAt))
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"stamp": e.req.Stamp}).
		Gauge(MetricEvacuationInFlight).Update(0)
	if err == nil {
		return nil
	}
	typ := ErrTypeEvacuationIncomplete
	switch outcome {
	case OutcomeAborted:
		typ = ErrTypeEvacuationAborted
	case OutcomeRefused, OutcomeRejected, OutcomeTimedOut, OutcomeFailed:
		typ = errTypeOf(outcome)
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), typ, err, *res)
}

// countOutcomes counts the rows by outcome, in a fixed order.
func countOutcomes(os []Outcome) []OutcomeCount {
	order := []Outcome{OutcomeCompleted, OutcomeMoved, OutcomeRefused, OutcomeRolledBack, OutcomeAborted,
		OutcomeRejected, OutcomeTimedOut, OutcomeFailed}
	var out []OutcomeCount
	for _, want := range order {
		n := 0
		for _, o := range os {
			if o == want {
				n++
			}
		}
		if n > 0 {
			out = append(out, OutcomeCount{Outcome: want, Accounts: n})
		}
	}
	return out
}

// enterPhase moves the evacuation to phase p (BatonPhase, current details).
func (e *evacuation) enterPhase(ctx workflow.Context, p Phase, details string) {
	if e.phase != p {
		e.phase, e.phaseAt = p, workflow.Now(ctx)
		_ = workflow.UpsertTypedSearchAttributes(ctx, SearchPhase.ValueSet(string(p)))
	}
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** %s", p, details))
}

// summary is the evacuation's one line: how far it is.
func (e *evacuation) summary() string {
	p := e.progress()
	s := fmt.Sprintf("%s: %d done, %d running, %d waiting, %d retrying, %d failed (at most %d at once",
		e.req.Stamp, p.Done, p.Running, p.Waiting, p.Retrying, p.Failed, p.MaxInFlight)
	if p.PerDestination > 0 {
		s += fmt.Sprintf(", %d per destination", p.PerDestination)
	}
	s += ")"
	if p.Paused != nil {
		s += fmt.Sprintf("; paused by %s (%s)", p.Paused.By, p.Paused.Reason)
	}
	return s
}
