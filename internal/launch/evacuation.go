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

// EvacuationOptions are the start options of a stamp's evacuation: its
// stamp-derived ID (one at a time per stamp), search attributes and
// summary.
func EvacuationOptions(taskQueue string, req workflows.EvacuationRequest) client.StartWorkflowOptions {
	req = req.WithDefaults()
	return client.StartWorkflowOptions{
		ID:                                       workflows.EvacuationWorkflowID(req.Stamp),
		TaskQueue:                                taskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("%s evacuation of stamp %s (%s)", req.Mode, req.Stamp, req.Trigger),
		StaticDetails: fmt.Sprintf(
			"**stamp** %s  \n**mode** %s  \n**trigger** %s  \n**at most in flight** %d  \n**reason** %s  \n**requested by** %s",
			req.Stamp, req.Mode, req.Trigger, req.MaxInFlight, req.Reason, req.RequestedBy),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchStamp.ValueSet(req.Stamp),
			workflows.SearchMode.ValueSet(string(req.Mode)),
			workflows.SearchTrigger.ValueSet(string(req.Trigger)),
			workflows.SearchPhase.ValueSet(string(workflows.PhaseListing)),
			workflows.SearchOperation.ValueSet(workflows.OperationEvacuation),
		),
	}
}

// Evacuation starts a StampEvacuation under its stamp-derived ID; one
// already running is refused with ErrAlreadyRunning, naming it.
func Evacuation(ctx context.Context, c client.Client, taskQueue string,
	req workflows.EvacuationRequest) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, EvacuationOptions(taskQueue, req), workflows.StampEvacuation, req)
	var running *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &running) {
		id := workflows.EvacuationWorkflowID(req.Stamp)
		return nil, fmt.Errorf("%w: an evacuation of %s is already running: workflow %s run %s; "+
			"watch it (baton watch --evacuation %s) or abort it (baton abort --evacuation %s)",
			ErrAlreadyRunning, req.Stamp, id, running.RunId, req.Stamp, req.Stamp)
	}
	if err != nil {
		return nil, fmt.Errorf("start evacuation of %s: %w", req.Stamp, err)
	}
	return run, nil
}
