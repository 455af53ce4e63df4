package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/workflows"
)

// The chains below are made by the SDK itself: a workflow run in the SDK's
// test environment fails, and GetWorkflowError returns what a client's
// run.Get returns (the failure converted to a Failure and back, wrapped in
// a WorkflowExecutionError), so the tests see exactly what baton sees.

// sdkNoise is what the operator's line must never contain.
var sdkNoise = []string{"workflow execution error", "activity error", "child workflow execution error",
	"workflowID", "runID", "scheduledEventID", "retryable", "(type:", "wrapError"}

func requireClean(t *testing.T, line string) {
	t.Helper()
	for _, n := range sdkNoise {
		require.NotContains(t, line, n, "SDK noise in the operator's line: %s", line)
	}
	require.NotContains(t, line, "\n", "more than one line")
}

// failoverEnv runs the real AccountFailover with its activities mocked.
func failoverEnv(
	t *testing.T,
	mocks func(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities),
) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(workflows.AccountFailover)
	env.RegisterWorkflow(workflows.PartitionGroupFailover)
	var acts *activities.Activities
	env.RegisterActivity(acts)
	mocks(env, acts)
	return env
}

// TestRefusedFailoverIsOneLine: the real workflow refused by its precheck.
// The SDK's chain says the cause three times (the workflow's message, the
// message of the error it wraps, the activity's) between type names and
// event IDs; baton says it once, with what to do next.
func TestRefusedFailoverIsOneLine(t *testing.T) {
	const cause = "account acct-x: its primary is stamp-b, not the expected stamp-a"
	env := failoverEnv(t, func(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities) {
		env.OnActivity(acts.Precheck, mock.Anything, mock.Anything).Return(activities.PrecheckResult{},
			temporal.NewNonRetryableApplicationError(cause, activities.ErrTypePrecheck, nil))
	})
	env.ExecuteWorkflow(
		workflows.AccountFailover,
		workflows.FailoverRequest{Account: "acct-x", FromStamp: "stamp-a", ToStamp: "stamp-b"},
	)
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	var wee *temporal.WorkflowExecutionError
	require.ErrorAs(t, err, &wee, "the chain a client sees")
	require.GreaterOrEqual(t, strings.Count(err.Error(), cause), 2, "the SDK's text repeats the cause: %s", err)

	f := describeError(err)
	t.Logf("SDK: %s", err)
	t.Logf("%s", f.line())
	requireClean(t, f.line())
	require.Equal(t, 1, strings.Count(f.Error, cause), f.Error)
	require.True(t, strings.HasSuffix(f.Error, cause), "the root cause ends the line: %s", f.Error)
	require.Contains(t, f.Error, "refused")
	require.Contains(t, f.Next, "fix what the precheck found")
	require.Contains(
		t,
		f.Next,
		"`baton failover acct-x --to ",
		"the next step names the account (from the result in the error's details)",
	)
	require.Contains(t, f.Next, "--dry-run`")
	require.GreaterOrEqual(t, len(f.Chain), 4, "the whole chain is kept for -v and --output json")
	require.Contains(t, f.Chain[0], "WorkflowExecutionError")
	require.Contains(t, strings.Join(f.Chain, "\n"), "ActivityError")

	// baton failover knows the destination even when the refused result
	// does not name it.
	g := describeError(requestError{account: "acct-x", to: "stamp-b", err: err})
	require.Equal(
		t,
		"fix what the precheck found, check with `baton failover acct-x --to stamp-b --dry-run`, then start the failover again",
		g.Next,
	)
	require.Equal(t, f.Error, g.Error)
	require.Equal(t, f.Chain, g.Chain)
}

// TestRolledBackFailoverIsOneLine: a failover that rolls back, with the
// shape of AccountFailover's errors (its code is under way elsewhere, so
// the shape is rebuilt here): a flush-replay the stamp refuses for good (a
// stale epoch: non-retryable, as activities' classify makes it, carrying
// the stamp's error as its cause, so its text holds the stamp's answer
// twice) fails the group child, whose error the parent wraps, then rolls
// back and fails with that text as its message and the wrapped error as
// its cause. The SDK's text says the stamp's answer a dozen times.
func TestRolledBackFailoverIsOneLine(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	stampErr := errors.New("stamp answered 409 stale_epoch: epoch 1 is older than 2")
	replay := func(context.Context) error {
		return temporal.NewNonRetryableApplicationError(
			"flush-replay of acct-x on stamp-b: "+stampErr.Error(),
			activities.ErrTypeStaleEpoch,
			stampErr,
		)
	}
	group := func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
		if err := workflow.ExecuteActivity(ctx, replay).Get(ctx, nil); err != nil {
			return fmt.Errorf("flush-replay: %w", err)
		}
		return nil
	}
	parent := func(ctx workflow.Context) error {
		err := workflow.ExecuteChildWorkflow(ctx, group).Get(ctx, nil)
		cause := fmt.Errorf("flush group 0 (partitions 0-1) of acct-x: %w", err)
		err = fmt.Errorf("%w (rolled back: acct-x is still primary on stamp-a)", cause)
		return temporal.NewNonRetryableApplicationError(
			err.Error(),
			"FailoverRolledBack",
			err,
			workflows.FailoverResult{
				Account: "acct-x",
				From:    "stamp-a",
				To:      "stamp-b",
				Outcome: workflows.OutcomeRolledBack,
			},
		)
	}
	env.RegisterActivityWithOptions(replay, activityOptions("FlushReplay"))
	env.RegisterWorkflowWithOptions(group, workflowOptions("PartitionGroupFailover"))
	env.RegisterWorkflowWithOptions(parent, workflowOptions("AccountFailover"))
	env.ExecuteWorkflow("AccountFailover")
	err := env.GetWorkflowError()
	require.Error(t, err)
	require.Greater(t, strings.Count(err.Error(), "stale_epoch"), 4, "the SDK's text repeats the cause: %s", err)

	f := describeError(err)
	t.Logf("SDK: %s", err)
	t.Logf("%s", f.line())
	requireClean(t, f.line())
	require.Equal(
		t,
		"flush group 0 (partitions 0-1) of acct-x: flush-replay of acct-x on stamp-b: stamp answered 409 stale_epoch: epoch 1 is older than 2 (rolled back: acct-x is still primary on stamp-a)",
		f.Error,
	)
	require.Equal(
		t,
		"acct-x is still primary on its source and takes writes (`baton status acct-x`); fix the cause, then start the failover again",
		f.Next,
	)
}

// Smaller chains, each built from the SDK's own types the way a client
// gets them.
func TestDescribeErrorChains(t *testing.T) {
	// An application error as the failure converter hands it over after a
	// round trip (as the SDK does between worker and client).
	roundTrip := func(err error) error {
		fc := temporal.GetDefaultFailureConverter()
		return fc.FailureToError(fc.ErrorToFailure(err))
	}
	tests := []struct {
		name     string
		err      error
		want     string // the operator's line, without "baton: "
		wantNext string // contained in Next ("" = no next step)
	}{
		{"plain error",
			errors.New("account acct-1 is not known to the location service at http://127.0.0.1:7100: check the name"),
			"account acct-1 is not known to the location service at http://127.0.0.1:7100: check the name", ""},
		{"application error whose message repeats its cause",
			roundTrip(
				temporal.NewNonRetryableApplicationError(
					"fence acct-1: stamp answered 409 conflict",
					activities.ErrTypeRefused,
					errors.New("stamp answered 409 conflict"),
				),
			),
			"fence acct-1: stamp answered 409 conflict", ""},
		{"update refused by the workflow",
			fmt.Errorf(
				"abort failover-acct-1 refused: %w",
				roundTrip(
					temporal.NewApplicationError("the failover is past promote: too late to abort", "AbortRefused"),
				),
			),
			"abort failover-acct-1 refused: the failover is past promote: too late to abort", ""},
		{"rejected, result in the details",
			roundTrip(
				temporal.NewNonRetryableApplicationError(
					"failover of acct-1 rejected by alice (not now): nothing was touched",
					"FailoverRejected",
					nil,
					workflows.FailoverResult{Account: "acct-1", To: "stamp-b", Outcome: workflows.OutcomeRejected},
				),
			),
			"failover of acct-1 rejected by alice (not now): nothing was touched", "`baton failover acct-1 --to stamp-b`"},
		{"no such workflow",
			fmt.Errorf(
				"describe failover-acct-9: %w",
				serviceerror.NewNotFound("workflow not found for ID: failover-acct-9"),
			),
			"describe failover-acct-9: workflow not found for ID: failover-acct-9", "baton list"},
		{"already running: the message says what to do",
			fmt.Errorf(
				"%w: a failover of acct-1 is already running: workflow failover-acct-1 run r1; watch it (baton watch acct-1) or abort it (baton abort acct-1)",
				launch.ErrAlreadyRunning,
			),
			"failover already running: a failover of acct-1 is already running: workflow failover-acct-1 run r1; watch it (baton watch acct-1) or abort it (baton abort acct-1)", ""},
		{"update of a failover that ended",
			fmt.Errorf(
				"abort failover-acct-1 refused: %w",
				serviceerror.NewNotFound("workflow execution already completed"),
			),
			"abort failover-acct-1 refused: workflow execution already completed", "already ended"},
		{"Temporal unreachable",
			fmt.Errorf("list failovers: %w", serviceerror.NewUnavailable("connection refused")),
			"list failovers: connection refused", "TEMPORAL_ADDRESS"},
		{"deadline",
			fmt.Errorf("look up acct-1: %w", context.DeadlineExceeded),
			"look up acct-1: context deadline exceeded", "--timeout"},
		{
			"the same words twice in a row",
			errors.New("precheck: stamp-b unhealthy: stamp-b unhealthy"),
			"precheck: stamp-b unhealthy",
			"",
		},
		{"application plan invalid",
			roundTrip(
				temporal.NewNonRetryableApplicationError(
					"plan shop: dependency cycle: a -> b -> a",
					workflows.ErrTypeAppPlanInvalid,
					nil,
				),
			),
			"plan shop: dependency cycle: a -> b -> a", "baton plan validate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := describeError(tt.err)
			requireClean(t, f.line())
			require.Equal(t, tt.want, f.Error)
			if tt.wantNext == "" {
				require.Empty(t, f.Next)
			} else {
				require.Contains(t, f.Next, tt.wantNext)
			}
			require.NotEmpty(t, f.Chain)
		})
	}
}

// A child workflow's failure, as AppFailover's account steps and
// AccountFailover's groups see it, reaching the client: the child's
// message once, no child or activity wrapper text.
func TestDescribeErrorThroughAChildWorkflow(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	activity := func(context.Context) error {
		return temporal.NewNonRetryableApplicationError(
			"flush-send of partitions [3] still failing after 10m0s: stamp answered 503 injected_fault",
			"FlushSendGaveUp",
			nil,
		)
	}
	child := func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
		return workflow.ExecuteActivity(ctx, activity).Get(ctx, nil)
	}
	parent := func(ctx workflow.Context) error {
		err := workflow.ExecuteChildWorkflow(ctx, child).Get(ctx, nil)
		cause := fmt.Errorf("flush of acct-x: %w", err)
		return temporal.NewNonRetryableApplicationError(cause.Error(), "FailoverRolledBack", cause,
			workflows.FailoverResult{Account: "acct-x", From: "stamp-a", To: "stamp-b"})
	}
	env.RegisterActivityWithOptions(activity, activityOptions("FlushSend"))
	env.RegisterWorkflowWithOptions(child, workflowOptions("PartitionGroupFailover"))
	env.RegisterWorkflowWithOptions(parent, workflowOptions("AccountFailover"))
	env.ExecuteWorkflow("AccountFailover")
	err := env.GetWorkflowError()
	require.Error(t, err)
	var cwe *temporal.ChildWorkflowExecutionError
	require.ErrorAs(t, err, &cwe)

	f := describeError(err)
	t.Logf("SDK: %s", err)
	t.Logf("%s", f.line())
	requireClean(t, f.line())
	require.Equal(
		t,
		"flush of acct-x: flush-send of partitions [3] still failing after 10m0s: stamp answered 503 injected_fault",
		f.Error,
	)
	require.Contains(t, f.Next, "baton status acct-x")
}

// TestPrintFailure: one line by default; -v adds the chain; --output json
// is an object with the chain as a field.
func TestPrintFailure(t *testing.T) {
	fc := temporal.GetDefaultFailureConverter()
	err := fmt.Errorf(
		"abort failover-acct-1 refused: %w",
		fc.FailureToError(
			fc.ErrorToFailure(temporal.NewApplicationError("promote has started: too late to abort", "AbortRefused")),
		),
	)

	var out bytes.Buffer
	printFailure(&out, err, &globals{output: "text"})
	require.Equal(t, "baton: abort failover-acct-1 refused: promote has started: too late to abort\n", out.String())

	out.Reset()
	printFailure(&out, err, &globals{output: "text", verbose: true})
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	require.Equal(t, "baton: abort failover-acct-1 refused: promote has started: too late to abort", lines[0])
	require.Contains(t, out.String(), "error chain")
	require.Contains(
		t,
		out.String(),
		"ApplicationError(AbortRefused): promote has started: too late to abort (type: AbortRefused, retryable: true)",
	)

	out.Reset()
	printFailure(&out, err, &globals{output: "json"})
	var f failure
	require.NoError(t, json.Unmarshal(out.Bytes(), &f), out.String())
	require.Equal(t, "abort failover-acct-1 refused: promote has started: too late to abort", f.Error)
	require.Len(t, f.Chain, 2)
	require.Equal(t, "wrapError: abort failover-acct-1 refused", f.Chain[0])
}

// TestExecutePrintsOneLine: what main prints for a command line it cannot
// take, with the hint to the command's help.
func TestExecutePrintsOneLine(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "baton: no account: name it, baton status ACCOUNT. Next: see `baton status --help`\n"},
		{[]string{"result", "--acount", "a"}, "baton: unknown flag: --acount. Next: see `baton result --help`\n"},
		{[]string{"fail-over"}, "baton: unknown command \"fail-over\" for \"baton\" (did you mean failover?). Next: see `baton --help`\n"},
		{[]string{"approve", "acct-1", "--account", "acct-2", "--reason", "x"},
			"baton: the account is given twice, as \"acct-1\" and as --account \"acct-2\": give it once. Next: see `baton approve --help`\n"},
	} {
		var stdout, stderr bytes.Buffer
		require.Equal(t, 1, execute(tt.args, &stdout, &stderr), "%v", tt.args)
		require.Equal(t, tt.want, stderr.String(), "%v", tt.args)
	}
}

func activityOptions(name string) activity.RegisterOptions {
	return activity.RegisterOptions{Name: name}
}
func workflowOptions(name string) workflow.RegisterOptions {
	return workflow.RegisterOptions{Name: name}
}

// TestDescribeActivityTimeout: an activity that outlives its
// start-to-close timeout, as the workflow's error reaches the client.
func TestDescribeActivityTimeout(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	activity := func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}
	wf := func(ctx workflow.Context) error {
		ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 50 * time.Millisecond,
			RetryPolicy: &temporal.RetryPolicy{MaximumAttempts: 1}})
		if err := workflow.ExecuteActivity(ctx, activity).Get(ctx, nil); err != nil {
			return fmt.Errorf("catch up acct-x: %w", err)
		}
		return nil
	}
	env.RegisterActivityWithOptions(activity, activityOptions("CatchUp"))
	env.RegisterWorkflowWithOptions(wf, workflowOptions("AccountFailover"))
	env.ExecuteWorkflow("AccountFailover")
	err := env.GetWorkflowError()
	require.Error(t, err)
	var te *temporal.TimeoutError
	require.ErrorAs(t, err, &te)

	f := describeError(err)
	t.Logf("SDK: %s", err)
	t.Logf("%s", f.line())
	requireClean(t, f.line())
	require.True(t, strings.HasPrefix(f.Error, "catch up acct-x: "), f.Error)
	require.Contains(t, strings.ToLower(f.Error), "timeout")
}

// TestDescribeKeepsShortCauses: a short inner message that is part of a
// word of another ("connect" in "connection refused") is not a duplicate.
func TestDescribeKeepsShortCauses(t *testing.T) {
	_, err := net.Dial("tcp", "127.0.0.1:1")
	require.Error(t, err)
	err = fmt.Errorf("look up acct-1: %w", err)
	f := describeError(err)
	require.Equal(t, oneLine(err.Error()), f.Error)
	require.Contains(t, f.Error, "connect: connection refused")
}
