// Package launch starts Baton's workflows: the start options of an
// account's failover and of an application's (workflow ID, conflict
// policy, search attributes, the Web UI's summary and details), and the
// calls that start them. The CLI, the alert webhook, the harness and the
// commands under cmd/ start failovers through it, so every failover of an
// account runs under the same account-derived workflow ID.
package launch

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/workflows"
)

// ErrAlreadyRunning: the account already has a failover in flight.
var ErrAlreadyRunning = errors.New("failover already running")

// FailoverOptions are the start options of an account's failover: its
// account-derived ID (so only one runs at a time), the search attributes,
// and the Web UI's static summary and details.
func FailoverOptions(taskQueue string, req workflows.FailoverRequest) client.StartWorkflowOptions {
	req = req.WithDefaults()
	mode, trigger := req.Mode, req.Trigger
	return client.StartWorkflowOptions{
		ID:                       workflows.FailoverWorkflowID(req.Account),
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Without this the SDK hands back the running failover's handle as if
		// it had started a new one.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            workflows.FailoverSummary(req),
		StaticDetails: fmt.Sprintf(
			"**account** %s  \n**to** %s  \n**mode** %s  \n**trigger** %s  \n**reason** %s  \n**requested by** %s",
			req.Account, req.ToStamp, mode, trigger, req.Reason, req.RequestedBy),
		TypedSearchAttributes: workflows.FailoverSearchAttributes(req),
	}
}

// Failover starts an AccountFailover under its account-derived ID. A
// second failover of the same account while one runs is refused with
// ErrAlreadyRunning, naming the running one.
func Failover(ctx context.Context, c client.Client, taskQueue string,
	req workflows.FailoverRequest) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, FailoverOptions(taskQueue, req), workflows.AccountFailover, req)
	var running *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &running) {
		return nil, fmt.Errorf("%w: a failover of %s is already running: workflow %s run %s; "+
			"watch it (baton watch %s) or abort it (baton abort %s)",
			ErrAlreadyRunning, req.Account, workflows.FailoverWorkflowID(req.Account), running.RunId,
			req.Account, req.Account)
	}
	if err != nil {
		return nil, fmt.Errorf("start failover of %s: %w", req.Account, err)
	}
	return run, nil
}
