package workflows

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/batonhq/baton/activities"
)

// starts counts, per activity type, the local and the regular attempts a
// failover made.
func starts(env *testsuite.TestWorkflowEnvironment) (local, regular *calls) {
	local, regular = &calls{}, &calls{}
	env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		local.add(info.ActivityType.Name)
	})
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		regular.add(info.ActivityType.Name)
	})
	return local, regular
}

// TestQuickStepsStayLocal: on the fast path every step before promote
// runs as one local attempt when it answers within localBudget.
func TestQuickStepsStayLocal(t *testing.T) {
	f := newFake(10)
	env := newEnv(t, f)
	local, regular := starts(env)
	_, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, err)
	for _, name := range []string{"Precheck", "Fence", "FlushSend", "FlushReplay", "Promote"} {
		require.Equal(t, 1, local.get(name), "%s: local attempts", name)
		require.Zero(t, regular.get(name), "%s: regular attempts", name)
	}
}

// TestSlowStepGoesOnAsARegularActivity: a step that outlasts its local
// attempt goes on as a regular activity (heartbeats, retries, visible as
// pending), so the workflow task that ran it is not held open.
func TestSlowStepGoesOnAsARegularActivity(t *testing.T) {
	f := newFake(10)
	env := newEnvWithout(t, f, "FlushReplay")
	// The first attempt answers only when its deadline passes.
	var later atomic.Bool
	env.OnActivity(acts.FlushReplay, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.FlushReplayInput) (activities.FlushReplayResult, error) {
			if !later.Swap(true) {
				<-ctx.Done()
				return activities.FlushReplayResult{}, ctx.Err()
			}
			return f.flushReplay(ctx, in)
		})
	local, regular := starts(env)
	res, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, err)
	require.Equal(t, 1, local.get("FlushReplay"))
	require.Equal(t, 1, regular.get("FlushReplay"))
	require.Equal(t, 1, local.get("Promote"), "later quick steps are local again")
	require.Equal(t, f.final[9], res.Table.ReplayedLSN[9])
}

// TestFinalAnswerOfALocalAttemptEndsTheStep: a final refusal in the local
// attempt is not tried again as a regular activity.
func TestFinalAnswerOfALocalAttemptEndsTheStep(t *testing.T) {
	f := newFake(10)
	f.replayErr = temporal.NewNonRetryableApplicationError("flush-replay: beyond received", activities.ErrTypeRefused, nil)
	env := newEnv(t, f)
	local, regular := starts(env)
	_, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b", Options: FailoverOptions{FlushDeadline: time.Minute}})
	require.Error(t, err)
	require.GreaterOrEqual(t, local.get("FlushReplay"), 1)
	require.Zero(t, regular.get("FlushReplay"), "a final answer was tried again as a regular activity")
	require.True(t, f.unfenced, "the failover rolled back")
}
