package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
)

// TestEvacuationRecordsAnApprovalGivenWithTheRequest: an unplanned
// evacuation approved at start (baton evacuate --approve) does not wait at
// its gate, records the approval as its one approval, and every account's
// failover runs with it.
func TestEvacuationRecordsAnApprovalGivenWithTheRequest(t *testing.T) {
	f := newFakeStamp(3)
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(StampEvacuation)
	var approvals []*Decision
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, req FailoverRequest) (FailoverResult, error) {
		approvals = append(approvals, req.Approval.PreApproved)
		return f.failover(ctx, req)
	}, workflow.RegisterOptions{Name: NameAccountFailover})
	env.RegisterActivity(acts)
	env.OnActivity(acts.EvacuationPage, mock.Anything, mock.Anything).Return(f.page).Maybe()
	env.OnActivity(acts.LookUpAccounts, mock.Anything, mock.Anything).Return(f.lookUp).Maybe()
	pa := &Decision{By: "alice", Reason: "approved at start: stamp-a is down"}
	env.ExecuteWorkflow(StampEvacuation, EvacuationRequest{Stamp: "stamp-a", Mode: ModeUnplanned,
		RequestedBy: "alice", Approval: ApprovalPolicy{PreApproved: pa}})
	require.NoError(t, env.GetWorkflowError())
	var res EvacuationResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, OutcomeCompleted, res.Outcome)
	require.False(t, res.ApprovalRequired)
	require.NotNil(t, res.Approval)
	require.Equal(t, "alice", res.Approval.By)
	require.Equal(t, pa.Reason, res.Approval.Reason)
	require.False(t, res.Approval.At.IsZero())
	require.Len(t, approvals, 3)
	for _, a := range approvals {
		require.Equal(t, "alice", a.By)
	}
}
