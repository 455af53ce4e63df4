package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/workflow"
)

// register installs the progress query, the alert update and the
// operators' controls: approve, reject, abort, pause, resume (updates and
// same-named signals, for the Web UI) and the limits update.
func (e *evacuation) register(ctx workflow.Context) error {
	e.now = func() time.Time { return workflow.Now(ctx) }
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (EvacuationProgress, error) {
		return e.progress(), nil
	}); err != nil {
		return fmt.Errorf("register progress query: %w", err)
	}
	alert := func(ctx workflow.Context, a AlertRef) (AlertAck, error) {
		ack := AlertAck{WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Phase: e.phase}
		ack.Attached = e.res.noteAlert(a)
		ack.Alerts = e.res.AlertsSeen
		return ack, nil
	}
	if err := workflow.SetUpdateHandler(ctx, UpdateAlert, alert); err != nil {
		return fmt.Errorf("register update %s: %w", UpdateAlert, err)
	}
	limits := workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, l EvacuationLimits) error {
		return l.Validate()
	}}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateLimits, e.setLimits, limits); err != nil {
		return fmt.Errorf("register update %s: %w", UpdateLimits, err)
	}
	return registerDecisions(ctx, &e.res.Refusals,
		decision{name: UpdateApprove, validate: e.validateGate, apply: func(ctx workflow.Context, d Decision) {
			d.At = workflow.Now(ctx)
			e.res.Approval = &d
		}},
		decision{name: UpdateReject, validate: e.validateGate, apply: func(ctx workflow.Context, d Decision) {
			d.At = workflow.Now(ctx)
			e.res.Rejection = &d
		}},
		decision{name: UpdateAbort, validate: e.validateRunning, apply: e.abort},
		decision{name: UpdatePause, validate: e.validatePause, apply: e.pause},
		decision{name: UpdateResume, validate: e.validateResume, apply: e.resume},
	)
}

var errEnded = errors.New("the evacuation has already stopped starting accounts")

// validateGate says why an approve or reject does not apply now.
func (e *evacuation) validateGate(ctx workflow.Context, d Decision) error {
	switch {
	case e.gateOpen || e.res.Abort != nil:
		return errors.New("the evacuation is past its approval gate: approve and reject no longer apply")
	case e.res.Approval != nil || e.res.Rejection != nil:
		return errors.New("a decision was already recorded for this evacuation")
	}
	return nil
}

// validateRunning refuses a control once the evacuation stops starting
// accounts.
func (e *evacuation) validateRunning(ctx workflow.Context, d Decision) error {
	if e.res.Abort != nil || e.res.Outcome != "" {
		return errEnded
	}
	return nil
}

func (e *evacuation) validatePause(ctx workflow.Context, d Decision) error {
	if err := e.validateRunning(ctx, d); err != nil {
		return err
	}
	if p := e.carry.Paused; p != nil {
		return fmt.Errorf("already paused by %s (%s)", p.By, p.Reason)
	}
	return nil
}

func (e *evacuation) validateResume(ctx workflow.Context, d Decision) error {
	if err := e.validateRunning(ctx, d); err != nil {
		return err
	}
	if e.carry.Paused == nil {
		return errors.New("not paused")
	}
	return nil
}

// abort stops the evacuation starting accounts; those in flight end by
// their own rules (finish, or roll back).
func (e *evacuation) abort(ctx workflow.Context, d Decision) {
	d.At = workflow.Now(ctx)
	e.res.Abort, e.carry.Paused, e.changed = &d, nil, true
	if e.gateOpen {
		e.enterPhase(ctx, PhaseDraining, fmt.Sprintf("aborted by %s (%s): waiting for %d accounts in flight",
			d.By, d.Reason, len(e.running)))
	}
}

func (e *evacuation) pause(ctx workflow.Context, d Decision) {
	d.At = workflow.Now(ctx)
	e.carry.Paused, e.changed = &d, true
	e.res.Pauses = append(e.res.Pauses, d)
	if e.gateOpen {
		e.enterPhase(ctx, PhasePaused, e.summary())
	}
}

func (e *evacuation) resume(ctx workflow.Context, d Decision) {
	d.At = workflow.Now(ctx)
	e.carry.Paused, e.changed = nil, true
	e.res.Pauses = append(e.res.Pauses, d)
	if e.gateOpen {
		e.enterPhase(ctx, PhaseEvacuating, e.summary())
	}
}

// setLimits changes K (and the cap per destination) while the evacuation
// runs; the next admission follows them.
func (e *evacuation) setLimits(ctx workflow.Context, l EvacuationLimits) (EvacuationProgress, error) {
	if err := l.Validate(); err != nil {
		return EvacuationProgress{}, err
	}
	if l.MaxInFlight > 0 {
		e.res.MaxInFlight = l.MaxInFlight
	}
	if l.PerDestination != nil {
		e.res.PerDestination = *l.PerDestination
	}
	e.changed = true
	e.res.Changes = append(e.res.Changes, fmt.Sprintf("limits set by %s at %s: at most %d in flight, %d per destination",
		l.By, workflow.Now(ctx).Format("15:04:05"), e.res.MaxInFlight, e.res.PerDestination))
	return e.progress(), nil
}

// noteAlert records an alert, once per fingerprint (at most maxAlerts
// kept, all counted); it reports whether the alert was new.
func (r *EvacuationResult) noteAlert(a AlertRef) bool {
	for _, seen := range r.Alerts {
		if seen.Fingerprint != "" && seen.Fingerprint == a.Fingerprint {
			return false
		}
	}
	r.AlertsSeen++
	if len(r.Alerts) < maxAlerts {
		r.Alerts = append(r.Alerts, a)
	}
	return true
}

// progress is what the progress query answers.
func (e *evacuation) progress() EvacuationProgress {
	res := e.res
	p := EvacuationProgress{
		Stamp: e.req.Stamp, Phase: e.phase, Mode: e.req.Mode, Trigger: e.req.Trigger,
		Paused: e.carry.Paused, Abort: res.Abort, MaxInFlight: res.MaxInFlight, PerDestination: res.PerDestination,
		OnStamp: res.OnStamp, Running: len(e.running), Retrying: len(e.carry.Retries), Runs: res.Runs,
		StartedAt: res.StartedAt, PhaseAt: e.phaseAt, Slowest: res.Slowest,
		Tiers: append([]TierCount(nil), res.Tiers...),
	}
	p.Done = e.moved()
	p.Failed = res.Table.Len() - p.Done
	p.Waiting = max(0, res.OnStamp-res.Table.Len()-p.Running-p.Retrying)
	if e.listEnd && e.carry.Sweep > 0 {
		p.Waiting = len(e.queue)
	}
	tiers := &EvacuationResult{Tiers: p.Tiers}
	for _, r := range e.running {
		tiers.tier(r.acct.Tier).Running++
		p.SlowestRunning = slowest(p.SlowestRunning, AccountTiming{Account: r.acct.Account, Tier: r.acct.Tier,
			Millis: e.now().Sub(r.started).Milliseconds()})
	}
	for _, r := range e.carry.Retries {
		tiers.tier(r.Account.Tier).Waiting++
	}
	p.Tiers = tiers.Tiers
	return p
}
