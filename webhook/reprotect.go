package webhook

import (
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/workflows"
)

// Action is what a rule's alerts start or attach to.
type Action string

// Actions of a rule.
const (
	ActionFailover  Action = "failover"  // the account's AccountFailover (default)
	ActionReprotect Action = "reprotect" // the account's Reprotect
)

// workflowID is the workflow the action starts or attaches to:
// failover-<account>, reprotect-<account> or evacuate-<stamp>.
func (a Action) workflowID(subject string) string {
	switch a {
	case ActionReprotect:
		return workflows.ReprotectWorkflowID(subject)
	case actionEvacuation:
		return workflows.EvacuationWorkflowID(subject)
	}
	return workflows.FailoverWorkflowID(subject)
}

// command is the baton command that does the action by hand.
func (a Action) command() string {
	if a == actionEvacuation {
		return "evacuate"
	}
	return string(a)
}

// validateReprotect refuses, in a reprotect rule, the keys that only mean
// something to a failover: they would be silently dropped otherwise.
func (r *Rule) validateReprotect() error {
	return refuseKeys("action "+string(ActionReprotect),
		"a reprotect moves no primary (no destination, mode, approval gate or flush deadline)",
		ruleKey{"target", r.Target != ""}, ruleKey{"target_label", r.TargetLabel != ""},
		ruleKey{"from_label", r.FromLabel != ""}, ruleKey{"mode", r.Mode != ""},
		ruleKey{"approval_required", r.ApprovalRequired != nil}, ruleKey{"approval_timeout", r.ApprovalTimeout != 0},
		ruleKey{"cancel_on_resolve", r.CancelOnResolve}, ruleKey{"flush_deadline", r.FlushDeadline != nil})
}

// reprotectStart is the start of the account's Reprotect that an alert's
// update-with-start carries: launch.ReprotectOptions, but attaching to a
// running reprotect instead of refusing (USE_EXISTING), as a failover's.
func (h *Handler) reprotectStart(it *item) client.WithStartWorkflowOperation {
	req := workflows.ReprotectRequest{Account: it.route.Account, Reason: it.reason, RequestedBy: it.requestedBy,
		Trigger: it.trigger}
	opts := launch.ReprotectOptions(h.o.TaskQueue, req)
	opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	opts.WorkflowExecutionErrorWhenAlreadyStarted = false
	return h.o.Client.NewWithStartWorkflowOperation(opts, workflows.NameReprotect, req)
}
