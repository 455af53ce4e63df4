package launch

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/workflows"
)

// ReprotectOptions are the start options of an account's reprotect: its
// account-derived ID (one at a time), search attributes and summary.
func ReprotectOptions(taskQueue string, req workflows.ReprotectRequest) client.StartWorkflowOptions {
	trigger := req.Trigger
	if trigger == "" {
		trigger = workflows.TriggerManual
	}
	return client.StartWorkflowOptions{
		ID:                                       workflows.ReprotectWorkflowID(req.Account),
		TaskQueue:                                taskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("reprotect %s (%s)", req.Account, trigger),
		StaticDetails: fmt.Sprintf("**account** %s  \n**reason** %s  \n**requested by** %s",
			req.Account, req.Reason, req.RequestedBy),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchAccount.ValueSet(req.Account),
			workflows.SearchPhase.ValueSet(string(workflows.PhasePrecheck)),
			workflows.SearchTrigger.ValueSet(string(trigger)),
			workflows.SearchOperation.ValueSet(workflows.OperationReprotect),
		),
	}
}

// Reprotect starts a Reprotect under its account-derived ID; one already
// running is refused with ErrAlreadyRunning, naming it.
func Reprotect(ctx context.Context, c client.Client, taskQueue string, req workflows.ReprotectRequest) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, ReprotectOptions(taskQueue, req), workflows.Reprotect, req)
	var running *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &running) {
		return nil, fmt.Errorf("%w: a reprotect of %s is already running: workflow %s run %s; wait for it (baton result %s --reprotect)",
			ErrAlreadyRunning, req.Account, workflows.ReprotectWorkflowID(req.Account), running.RunId, req.Account)
	}
	if err != nil {
		return nil, fmt.Errorf("start reprotect of %s: %w", req.Account, err)
	}
	return run, nil
}
