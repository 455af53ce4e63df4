package launch

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/workflows"
)

// AppFailoverOptions are the start options of a plan's failover: the
// workflow ID derives from the plan's name, so a second failover of the same
// application while one runs is refused.
func AppFailoverOptions(taskQueue string, req workflows.AppFailoverRequest) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       workflows.AppFailoverWorkflowID(req.Plan.Name),
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary: fmt.Sprintf("application failover %s (%d components)",
			req.Plan.Name, len(req.Plan.Components)),
		StaticDetails: fmt.Sprintf("reason: %s\n\nrequested by: %s", req.Reason, req.RequestedBy),
	}
}

// AppFailover starts an AppFailover of req.Plan.
func AppFailover(ctx context.Context, c client.Client, taskQueue string,
	req workflows.AppFailoverRequest) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, AppFailoverOptions(taskQueue, req), workflows.AppFailover, req)
	if err != nil {
		return nil, fmt.Errorf("start application failover of %s (is another failover of it running?): %w",
			req.Plan.Name, err)
	}
	return run, nil
}
