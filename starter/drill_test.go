package main

import (
	"bytes"
	"context"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/workflows"
)

// TestDrillCommandsRefuseBadInput: the drill commands say what is wrong
// with their arguments, on one line, before dialling anything.
func TestDrillCommandsRefuseBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"drill"}, "baton: no account: name it, baton drill ACCOUNT. Next: see `baton drill --help`"},
		{[]string{"drill", "a", "b"}, `2 arguments "a b" where one account was expected`},
		{[]string{"drill", "a", "--canaries", "0"}, "baton: --canaries 0: write 1 to 1000 canaries"},
		{[]string{"drill", "a", "--canaries", "1001"}, "baton: --canaries 1001: write 1 to 1000 canaries"},
		{[]string{"drill", "a", "--blocked", "Sat 6-8"}, `baton: --blocked: blocked window "Sat 6-8": time "6" is not HH:MM`},
		{[]string{"drill", "a", "--flush-deadline", "0s"}, "baton: --flush-deadline 0s: must be positive"},
		{[]string{"drill", "schedule"}, "baton: no account: name it, baton drill schedule ACCOUNT"},
		{[]string{"drill", "schedule", "a", "--pause", "--delete"},
			"baton: --pause and --delete: give one of them. Next: see `baton drill schedule --help`"},
		{[]string{"drill", "schedule", "a", "--every", "0s"}, "baton: --every 0s: must be positive, e.g. 168h"},
		{[]string{"drill", "schedule", "a", "--canaries", "5"}, "baton: --canaries shapes the drills: give it with --every"},
		{[]string{"drill", "schedule", "a", "--unpause", "--blocked", "Sat 00:00-06:00"},
			"baton: --blocked shapes the drills: give it with --every"},
		{[]string{"drill", "schedule", "a", "--every", "168h", "--blocked", "Sun 25:00-26:00"},
			`baton: --blocked: blocked window "Sun 25:00-26:00": time "25:00" is not a time of day`},
	} {
		var out, errOut bytes.Buffer
		require.Equal(t, 1, execute(c.args, &out, &errOut), "%v", c.args)
		require.Contains(t, errOut.String(), c.want, "%v", c.args)
		require.Equal(t, 1, bytes.Count(errOut.Bytes(), []byte("\n")), "one line: %s", errOut.String())
		require.Empty(t, out.String())
	}
}

// TestFailedDrillSaysWhatToDoNext: a drill whose reprotect leg fails, as
// the real workflow reports it, is one line whose next step is the
// drill's own: where the account was left and what to do.
func TestFailedDrillSaysWhatToDoNext(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.Drill, workflow.RegisterOptions{Name: workflows.NameDrill})
	env.RegisterWorkflowWithOptions(workflows.AccountFailover, workflow.RegisterOptions{Name: workflows.NameAccountFailover})
	env.RegisterWorkflowWithOptions(workflows.Reprotect, workflow.RegisterOptions{Name: workflows.NameReprotect})
	var acts *activities.Activities
	env.RegisterActivity(acts)
	env.OnActivity(acts.DrillReadiness, mock.Anything, mock.Anything).Return(activities.DrillReadinessResult{
		Ready: true, Account: "acct-1", Primary: "stamp-a", Secondary: "stamp-b", Partitions: 8}, nil)
	env.OnActivity(acts.WriteCanaries, mock.Anything, mock.Anything).Return(activities.CanaryResult{}, nil)
	env.OnActivity(acts.CheckCanaries, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CanaryInput) (activities.CanaryResult, error) {
			return activities.CanaryResult{Checked: len(in.Keys)}, nil
		})
	env.OnWorkflow(workflows.NameAccountFailover, mock.Anything, mock.Anything).Return(
		workflows.FailoverResult{Outcome: workflows.OutcomeCompleted}, nil)
	env.OnWorkflow(workflows.NameReprotect, mock.Anything, mock.Anything).Return(workflows.ReprotectResult{},
		temporal.NewNonRetryableApplicationError("stamp-a did not catch up with stamp-b within 10m0s: 5000 ops still behind",
			workflows.ErrTypeReprotectFailed, nil, workflows.ReprotectResult{Outcome: workflows.OutcomeFailed}))
	env.ExecuteWorkflow(workflows.NameDrill, workflows.DrillRequest{Account: "acct-1"})
	err := env.GetWorkflowError()
	require.Error(t, err)
	f := describeError(err)
	requireClean(t, f.Error)
	require.Equal(t, "drill of acct-1 failed at its reprotect leg: the reprotect: "+
		"stamp-a did not catch up with stamp-b within 10m0s: 5000 ops still behind", f.Error)
	require.Equal(t, "acct-1 is primary on stamp-b, not protected: reprotect it (baton reprotect acct-1), "+
		"then fail it back (baton failover acct-1 --to stamp-a)", f.Next)
}
