package webhook

import (
	"fmt"

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

// workflowID is the account's workflow the action starts or attaches to:
// failover-<account> or reprotect-<account>.
func (a Action) workflowID(account string) string {
	if a == ActionReprotect {
		return workflows.ReprotectWorkflowID(account)
	}
	return workflows.FailoverWorkflowID(account)
}

// validateReprotect refuses, in a reprotect rule, the keys that only mean
// something to a failover: they would be silently dropped otherwise.
func (r *Rule) validateReprotect() error {
	for _, k := range []struct {
		key string
		set bool
	}{
		{"target", r.Target != ""}, {"target_label", r.TargetLabel != ""}, {"from_label", r.FromLabel != ""},
		{"mode", r.Mode != ""}, {"approval_required", r.ApprovalRequired != nil},
		{"approval_timeout", r.ApprovalTimeout != 0}, {"cancel_on_resolve", r.CancelOnResolve},
		{"flush_deadline", r.FlushDeadline != nil},
	} {
		if k.set {
			return fmt.Errorf("%s does not apply to action %s: a reprotect moves no primary "+
				"(no destination, mode, approval gate or flush deadline); leave it out", k.key, ActionReprotect)
		}
	}
	return nil
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
