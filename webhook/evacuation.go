package webhook

import (
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/workflows"
)

// Scope is what a rule's alerts are about.
type Scope string

// Scopes of a rule.
const (
	ScopeAccount Scope = "account" // one account: its failover or reprotect (default)
	ScopeStamp   Scope = "stamp"   // a stamp: its evacuation
)

// actionEvacuation is what a rule with scope: stamp starts or attaches to:
// the stamp's StampEvacuation (workflow evacuate-<stamp>). It is not a
// value of the config's action key (such a rule's action is failover).
const actionEvacuation Action = "evacuation"

// action is what the rule's alerts start or attach to: its Action, or the
// stamp's evacuation for scope: stamp.
func (r *Rule) action() Action {
	if r.Scope == ScopeStamp {
		return actionEvacuation
	}
	return r.Action
}

// validateStamp checks a rule with scope: stamp: the stamp from a label or
// fixed; what applies to the evacuation (mode, approval, cancel on
// resolve, cooldown, flush deadline, admission); nothing that names one
// account.
func (r *Rule) validateStamp() error {
	switch r.Action {
	case "":
		r.Action = ActionFailover
	case ActionFailover:
	default:
		return fmt.Errorf("action %s does not apply to scope %s: a stamp's alerts start its evacuation "+
			"(action %s, the default)", r.Action, ScopeStamp, ActionFailover)
	}
	err := refuseKeys("scope "+string(ScopeStamp),
		"an evacuation moves every account whose primary is the stamp, each to its own secondary",
		ruleKey{"account", r.Account != ""}, ruleKey{"account_label", r.AccountLabel != ""},
		ruleKey{"target", r.Target != ""}, ruleKey{"target_label", r.TargetLabel != ""},
		ruleKey{"from_label", r.FromLabel != ""})
	switch {
	case err != nil:
		return err
	case (r.StampLabel == "") == (r.Stamp == ""):
		return errors.New("set exactly one of stamp_label and stamp: the stamp to evacuate")
	case r.Stamp != "" && !validName(r.Stamp):
		return fmt.Errorf("stamp %q is not a valid name (%s)", r.Stamp, validNames)
	}
	if err := r.validateMove(); err != nil {
		return err
	}
	return r.validateAdmission()
}

// refuseStampKeys refuses, in a rule about one account, the keys that only
// mean something to an evacuation.
func (r *Rule) refuseStampKeys() error {
	return refuseKeys("scope "+string(ScopeAccount), "it names a stamp to evacuate (use scope: stamp for that)",
		ruleKey{"stamp", r.Stamp != ""}, ruleKey{"stamp_label", r.StampLabel != ""},
		ruleKey{"max_in_flight", r.MaxInFlight != nil}, ruleKey{"per_destination", r.PerDestination != nil},
		ruleKey{"attempts", r.Attempts != nil})
}

// validateAdmission checks max_in_flight, per_destination and attempts
// with the evacuation's own Validate, naming the config's keys; a key set
// to 0 is refused rather than read as "the default".
func (r *Rule) validateAdmission() error {
	for _, k := range []struct {
		key, unset string
		v          *int
	}{
		{"max_in_flight", fmt.Sprintf("the default, %d", workflows.DefaultMaxInFlight), r.MaxInFlight},
		{"per_destination", "no cap", r.PerDestination},
		{"attempts", fmt.Sprintf("the default, %d", workflows.DefaultAttempts), r.Attempts},
	} {
		if k.v != nil && *k.v < 1 {
			return fmt.Errorf("%s %d: must be at least 1 (leave it out for %s)", k.key, *k.v, k.unset)
		}
	}
	req := workflows.EvacuationRequest{Stamp: "-", Mode: r.Mode, Trigger: workflows.TriggerAlert,
		MaxInFlight: deref(r.MaxInFlight), PerDestination: deref(r.PerDestination), Attempts: deref(r.Attempts)}
	err := req.WithDefaults().Validate()
	var fe *workflows.FieldError
	if errors.As(err, &fe) {
		keys := map[string]string{workflows.FieldMaxInFlight: "max_in_flight",
			workflows.FieldPerDestination: "per_destination", workflows.FieldAttempts: "attempts"}
		if k, ok := keys[fe.Field]; ok {
			return errors.New(fe.In(k))
		}
	}
	return err
}

// deref is *p, or 0 for nil.
func deref(p *int) int {
	if p == nil {
		return 0
	}
	return *p
}

// evacuationStart is the start of the stamp's evacuation that an alert's
// update-with-start carries: launch.EvacuationOptions, but attaching to a
// running evacuation instead of refusing (USE_EXISTING), as a failover's.
// Started by an alert, it waits for one approval for every account unless
// the rule pre-approves it.
func (h *Handler) evacuationStart(it *item) (client.WithStartWorkflowOperation, error) {
	rule := it.route.Rule
	req := workflows.EvacuationRequest{
		Stamp:          it.route.Stamp,
		Mode:           it.mode,
		Trigger:        it.trigger,
		Reason:         it.reason,
		RequestedBy:    it.requestedBy,
		Approval:       it.approvalPolicy(),
		MaxInFlight:    deref(rule.MaxInFlight),
		PerDestination: deref(rule.PerDestination),
		Attempts:       deref(rule.Attempts),
		Options:        workflows.FailoverOptions{FlushDeadline: it.flushDeadline},
	}.WithDefaults()
	if err := req.Validate(); err != nil {
		return nil, payloadErr("evacuation request refused: %v", err)
	}
	opts := launch.EvacuationOptions(h.o.TaskQueue, req)
	opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	opts.WorkflowExecutionErrorWhenAlreadyStarted = false
	return h.o.Client.NewWithStartWorkflowOperation(opts, workflows.NameStampEvacuation, req), nil
}
