package webhook

import (
	"context"
	"fmt"
	"sync"

	"github.com/batonhq/baton/location"
)

// Fleet is what the receiver asks the location service before it starts
// or attaches anything: the maintenance switches, and where an account
// lives. *location.Client is one.
type Fleet interface {
	// Maintenance returns every maintenance switch.
	Maintenance(ctx context.Context) (location.Maintenance, error)
	// Lookup returns where the account lives (location.IsNotFound: it does
	// not exist).
	Lookup(ctx context.Context, account string) (location.Account, error)
}

// switches reads the maintenance switches once per request, when the first
// firing alert that would start or attach something needs them.
type switches struct {
	fleet Fleet
	once  sync.Once
	m     location.Maintenance
	err   error
}

// switches returns the request's reader of the switches (nil without a
// Fleet: nothing is held).
func (h *Handler) switches() *switches {
	if h.o.Fleet == nil {
		return nil
	}
	return &switches{fleet: h.o.Fleet}
}

func (s *switches) get(ctx context.Context) (location.Maintenance, error) {
	s.once.Do(func() { s.m, s.err = s.fleet.Maintenance(ctx) })
	return s.m, s.err
}

// held holds back the firing alerts of one workflow while a maintenance
// switch covers it: the global switch; for an evacuation the stamp's; for
// an account's failover or reprotect (and the plain trigger) the switch of
// either stamp the account lives on, its primary or its secondary, so an
// automatic failover neither leaves nor lands on a stamp under
// maintenance. Held alerts start and attach to nothing; they are answered
// "held", naming the switch, who set it and why. held reports whether it
// gave the alerts an outcome (held, or an error: the switches could not
// be read, and Alertmanager retries).
func (h *Handler) held(ctx context.Context, sw *switches, subject string, action Action, firing []*item) bool {
	if sw == nil {
		return false
	}
	m, err := sw.get(ctx)
	if err != nil {
		h.fail(firing, "maintenance", fmt.Errorf("read the maintenance switches: %w", err))
		return true
	}
	hold, ok, err := h.hold(ctx, m, subject, action)
	switch {
	case err != nil:
		h.fail(firing, "maintenance", err)
		return true
	case !ok:
		return false
	}
	for _, it := range firing {
		it.res.Outcome, it.res.WorkflowID = OutcomeHeld, ""
		it.res.Message = fmt.Sprintf("held by %s: no automatic %s of %s starts or attaches while it is on; "+
			"`baton %s` by hand still works", hold, action, subject, action.command())
		h.metrics.Held.WithLabelValues(it.rule, hold.Scope()).Inc()
	}
	return true
}

// hold finds the switch, if any, that holds the action on subject.
func (h *Handler) hold(ctx context.Context, m location.Maintenance, subject string,
	action Action) (location.Hold, bool, error) {
	if action == actionEvacuation {
		hold, ok := m.Hold(subject)
		return hold, ok, nil
	}
	if hold, ok := m.Hold(); ok || !m.AnyStampOn() {
		return hold, ok, nil // no stamp's switch is on: no need to ask where the account lives
	}
	acct, err := h.o.Fleet.Lookup(ctx, subject)
	switch {
	case location.IsNotFound(err):
		// No stamp of its own to hold it (its failover's precheck refuses
		// an unknown account anyway).
		return location.Hold{}, false, nil
	case err != nil:
		return location.Hold{}, false, fmt.Errorf("look up the stamps of %s for their maintenance switches: %w",
			subject, err)
	}
	hold, ok := m.Hold(acct.Primary, acct.Secondary)
	return hold, ok, nil
}
