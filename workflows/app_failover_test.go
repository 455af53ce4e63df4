package workflows

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/planner"
	"github.com/batonhq/baton/planner/plantest"
)

func appEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(AppFailover, workflow.RegisterOptions{Name: NameAppFailover})
	env.RegisterWorkflowWithOptions(AccountFailover, workflow.RegisterOptions{Name: NameAccountFailover})
	env.RegisterActivity(acts)
	return env
}

// appRun executes a plan and returns its result, from the error's details
// when it did not complete.
func appRun(t *testing.T, env *testsuite.TestWorkflowEnvironment, p planner.Plan) (AppFailoverResult, error) {
	t.Helper()
	env.ExecuteWorkflow(AppFailover, AppFailoverRequest{Plan: p, Reason: "test", RequestedBy: t.Name()})
	require.True(t, env.IsWorkflowCompleted())
	var res AppFailoverResult
	if err := env.GetWorkflowError(); err != nil {
		var ae *temporal.ApplicationError
		require.ErrorAs(t, err, &ae)
		if ae.HasDetails() {
			require.NoError(t, ae.Details(&res))
		}
		return res, err
	}
	require.NoError(t, env.GetWorkflowResult(&res))
	return res, nil
}

// requireAppErrorType checks that err is the application error of type want.
func requireAppErrorType(t *testing.T, err error, want string) {
	t.Helper()
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, want, ae.Type())
}

func slot(c string, ph planner.Phase, start, end time.Duration) planner.Slot {
	return planner.Slot{Step: planner.Step{Component: c, Phase: ph}, Start: start, End: end}
}

const (
	off = planner.PhaseOffline
	on  = planner.PhaseOnline
	rst = planner.PhaseRestore
)

// The claim of US 8938639, executed: with one step at a time per site, A
// goes offline; then B; then C goes offline on the source while B comes
// online on the target; A comes online only after B and C are online. The
// order is read from the recorded step starts and ends.
func TestAppFailoverPatentExampleOneSlotPerSite(t *testing.T) {
	const d = 10 * time.Second
	res, err := appRun(t, appEnv(t), plantest.PatentExample(d, planner.Concurrency{Source: 1, Target: 1}))
	require.NoError(t, err)
	require.Equal(t, AppOutcomeCompleted, res.Outcome)
	require.Equal(t, []planner.Slot{
		slot("A", off, 0, d),
		slot("B", off, d, 2*d),
		slot("B", on, 2*d, 3*d),
		slot("C", off, 2*d, 3*d),
		slot("C", on, 3*d, 4*d),
		slot("A", on, 4*d, 5*d),
	}, res.Slots())
	require.Equal(t, (5 * d).Milliseconds(), res.TotalMillis)
	require.Equal(t, res.PredictedMillis, res.TotalMillis)
	require.Equal(t, (6 * d).Milliseconds(), res.SequentialMillis)
	require.Equal(t, (6 * d).Milliseconds(), res.BarrierMillis)
}

// With no limit, B and C go offline together and the failover takes the
// critical path.
func TestAppFailoverPatentExampleUnlimited(t *testing.T) {
	const d = 10 * time.Second
	res, err := appRun(t, appEnv(t), plantest.PatentExample(d, planner.Concurrency{}))
	require.NoError(t, err)
	require.Equal(t, []planner.Slot{
		slot("A", off, 0, d),
		slot("B", off, d, 2*d),
		slot("C", off, d, 2*d),
		slot("B", on, 2*d, 3*d),
		slot("C", on, 2*d, 3*d),
		slot("A", on, 3*d, 4*d),
	}, res.Slots())
	require.Equal(t, (4 * d).Milliseconds(), res.CriticalPathMillis)
	require.Equal(t, res.CriticalPathMillis, res.TotalMillis, "the makespan is the critical path")
	require.Equal(t, []string{"offline A", "offline B", "online B", "online A"}, res.CriticalPath)
}

// Property test: hundreds of seeded random DAGs under random limits and
// strategies, executed in the SDK's time-skipping environment. No rule is
// ever broken, and the executed makespan is exactly the planner's
// prediction (the critical path when there is no limit).
func TestAppFailoverRandomPlansMatchThePlanner(t *testing.T) {
	seeds := uint64(300)
	if testing.Short() {
		seeds = 60
	}
	for seed := range seeds {
		p := plantest.RandomPlan(seed, plantest.RandomOptions{
			MaxComponents: 12,
			MaxLimit:      3,
			Strategies:    planner.Strategies,
		})
		g, err := planner.Compile(p)
		require.NoError(t, err)
		pred, err := g.Predict()
		require.NoError(t, err)

		res, err := appRun(t, appEnv(t), p)
		require.NoError(t, err, "seed %d", seed)
		slots := res.Slots()
		require.NoError(t, g.CheckSchedule(slots), "seed %d: %+v", seed, slots)
		var last time.Duration
		for _, s := range slots {
			last = max(last, s.End)
		}
		require.Equal(t, pred.Schedule.Makespan, last, "seed %d: executed makespan vs prediction", seed)
		require.Equal(t, pred.Schedule.Makespan.Milliseconds(), res.TotalMillis, "seed %d", seed)
		want := append([]planner.Slot(nil), pred.Schedule.Slots...)
		planner.SortSlots(want)
		require.Equal(t, want, slots, "seed %d: the executed schedule is the simulated one", seed)
		if p.Concurrency == (planner.Concurrency{}) && g.Strategy() == planner.StrategyOverlap {
			require.Equal(t, pred.CriticalPathTime, last, "seed %d: no limit: the critical path", seed)
		}
	}
}

// appDecide sends an abort update at a (virtual) time.
func appDecide(env *testsuite.TestWorkflowEnvironment, at time.Duration, d Decision, rejected *error) {
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateAbort, "abort-1", &testsuite.TestUpdateCallback{
			OnAccept:   func() {},
			OnReject:   func(err error) { *rejected = err },
			OnComplete: func(_ any, err error) { *rejected = errors.Join(*rejected, err) },
		}, d)
	}, at)
}

// An abort while B and C are going offline: their offline steps are
// stopped, no online step runs, B and C come back on the source at once,
// and A (which needs them) after both.
func TestAppFailoverAbortRestoresOnTheSource(t *testing.T) {
	const d = 10 * time.Second
	env := appEnv(t)
	var rejected error
	appDecide(env, 15*time.Second, Decision{By: "bob", Reason: "drill over"}, &rejected)
	res, err := appRun(t, env, plantest.PatentExample(d, planner.Concurrency{}))
	require.NoError(t, rejected)
	require.ErrorContains(t, err,
		"application failover patent-example aborted by bob (drill over); back online on the source: [B C A]")
	requireAppErrorType(t, err, ErrTypeAppAborted)
	require.Equal(t, AppOutcomeAborted, res.Outcome)
	require.Equal(t, "bob", res.Abort.By)
	require.Equal(t, []planner.Slot{
		slot("A", off, 0, d),
		slot("B", off, d, 15*time.Second),
		slot("C", off, d, 15*time.Second),
		slot("B", rst, 15*time.Second, 25*time.Second),
		slot("C", rst, 15*time.Second, 25*time.Second),
		slot("A", rst, 25*time.Second, 35*time.Second),
	}, res.Slots())
	for _, s := range res.Steps {
		switch {
		case s.Phase == on:
			require.Equal(t, AppStepPending, s.Status, "%s ran after an abort", s.Step())
		case s.Phase == off && s.Component != "A":
			require.Equal(t, AppStepCancelled, s.Status, "%s", s.Step())
		default:
			require.Equal(t, AppStepDone, s.Status, "%s", s.Step())
		}
	}
}

func TestAppFailoverAbortAfterAnOnlineStepIsRefused(t *testing.T) {
	const d = 10 * time.Second
	env := appEnv(t)
	var rejected error
	appDecide(env, 25*time.Second, Decision{By: "bob", Reason: "too late"}, &rejected)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(UpdateAbort, Decision{By: "carol", Reason: "from the UI"})
	}, 26*time.Second)
	res, err := appRun(t, env, plantest.PatentExample(d, planner.Concurrency{}))
	require.NoError(t, err)
	require.ErrorContains(t, rejected, "point of no return")
	require.Equal(t, AppOutcomeCompleted, res.Outcome)
	require.Nil(t, res.Abort)
	require.Len(t, res.Refusals, 1)
	require.Contains(t, res.Refusals[0], `abort signal from "carol" refused: an online step has started`)
}

func TestAppFailoverAbortNeedsAName(t *testing.T) {
	env := appEnv(t)
	var rejected error
	appDecide(env, time.Second, Decision{}, &rejected)
	_, err := appRun(t, env, plantest.PatentExample(10*time.Second, planner.Concurrency{}))
	require.NoError(t, err)
	require.ErrorContains(t, rejected, "say who you are")
}

// A signal cannot answer: one that does not say who sends it is refused
// and recorded, and the failover goes on.
func TestAppFailoverAbortSignalNeedsAName(t *testing.T) {
	env := appEnv(t)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(UpdateAbort, Decision{Reason: "nameless"}) }, time.Second)
	res, err := appRun(t, env, plantest.PatentExample(10*time.Second, planner.Concurrency{}))
	require.NoError(t, err)
	require.Equal(t, AppOutcomeCompleted, res.Outcome)
	require.Nil(t, res.Abort)
	require.Equal(t, []string{`abort signal from "" refused: say who you are: the decision's By is empty`}, res.Refusals)
}

func TestAppFailoverProgressQuery(t *testing.T) {
	const d = 10 * time.Second
	env := appEnv(t)
	var during AppProgress
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryProgress)
		require.NoError(t, err)
		require.NoError(t, v.Get(&during))
	}, 15*time.Second)
	_, err := appRun(t, env, plantest.PatentExample(d, planner.Concurrency{}))
	require.NoError(t, err)
	require.Equal(t, AppPhaseOffline, during.Phase)
	require.Equal(t, []string{"offline B", "offline C"}, during.Running)
	require.Equal(t, 1, during.Done)
	require.Equal(t, 6, during.Total)
	require.Equal(t, int64(40_000), during.PredictedMillis)
	require.Len(t, during.Steps, 6)
	require.Equal(t, AppStep{
		Component: "A",
		Phase:     off,
		Action:    "wait 10s",
		Status:    AppStepDone,
		StartedAt: during.StartedAt,
		EndedAt:   during.StartedAt.Add(d),
		Millis:    10_000,
	}, during.Steps[0])
	require.Equal(t, AppStepPending, during.Steps[5].Status)
}

// actionPlan: web depends on api; api's offline is a command, web's online
// an HTTP check, api's online a storage-account failover.
func actionPlan() planner.Plan {
	return planner.Plan{Name: "shop", Components: []planner.Component{
		{
			Name:      "web",
			DependsOn: []string{"api"},
			Offline:   &planner.Action{Wait: planner.DurPtr(time.Second)},
			Online: &planner.Action{
				HTTP:    &planner.HTTPAction{URL: "http://web/healthz", ExpectStatus: 204},
				Retries: 2,
			},
			Restore: &planner.Action{Wait: planner.DurPtr(time.Second)},
		},
		{
			Name: "api",
			Offline: &planner.Action{
				Command: []string{"systemctl", "stop", "api"},
				Retries: 1,
				Timeout: planner.Dur(time.Minute),
			},
			Online: &planner.Action{
				Account: &planner.AccountAction{Account: "acct-1", From: "stamp-a", To: "stamp-b"},
			},
		},
	}}
}

func TestAppFailoverRunsEveryActionKind(t *testing.T) {
	env := appEnv(t)
	var mu sync.Mutex
	var calls []string
	note := func(s string) { mu.Lock(); calls = append(calls, s); mu.Unlock() }
	commandFailures := 1
	fakeCommand := func(_ context.Context, in activities.CommandInput) (activities.CommandResult, error) {
		note("command " + in.Step)
		require.Equal(t, []string{"systemctl", "stop", "api"}, in.Argv)
		if commandFailures > 0 {
			commandFailures--
			return activities.CommandResult{}, temporal.NewApplicationError("exit 1", activities.ErrTypeCommandFailed)
		}
		return activities.CommandResult{Output: "stopping\nstopped api\n"}, nil
	}
	env.OnActivity(acts.RunCommand, mock.Anything, mock.Anything).Return(fakeCommand)
	httpFailures := 2
	fakeHTTP := func(_ context.Context, in activities.HTTPInput) (activities.HTTPResult, error) {
		note("http " + in.Step)
		require.Equal(t, activities.HTTPInput{
			Step:         "online web",
			Method:       "GET",
			URL:          "http://web/healthz",
			ExpectStatus: 204,
		}, in)
		if httpFailures > 0 {
			httpFailures--
			return activities.HTTPResult{},
				temporal.NewApplicationError("answered 503", activities.ErrTypeUnexpectedStatus)
		}
		return activities.HTTPResult{Status: 204}, nil
	}
	env.OnActivity(acts.CallHTTP, mock.Anything, mock.Anything).Return(fakeHTTP)
	var childID string
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		childID = info.WorkflowExecution.ID
	})
	fakeAccountFailover := func(_ workflow.Context, req FailoverRequest) (FailoverResult, error) {
		note("account " + req.Account)
		require.Equal(t, "stamp-a", req.FromStamp)
		require.Equal(t, "stamp-b", req.ToStamp)
		require.Contains(t, req.Reason, "application failover shop, component api")
		return FailoverResult{Account: req.Account, To: req.ToStamp, NewEpoch: 2, UnavailableMillis: 42}, nil
	}
	env.OnWorkflow(NameAccountFailover, mock.Anything, mock.Anything).Return(fakeAccountFailover)
	res, err := appRun(t, env, actionPlan())
	require.NoError(t, err)
	require.Equal(t, FailoverWorkflowID("acct-1"), childID, "the child runs under the account's own failover ID")
	require.Equal(t, []string{
		"command offline api", "command offline api",
		"account acct-1",
		"http online web", "http online web", "http online web",
	}, calls)
	outputs := map[string]string{}
	for _, s := range res.Steps {
		outputs[s.Step().String()] = s.Output
		require.Equal(t, AppStepDone, s.Status)
	}
	require.Equal(t, "stopped api", outputs["offline api"])
	require.Equal(t, "acct-1 primary on stamp-b at epoch 2; writes unavailable 42 ms", outputs["online api"])
	require.Equal(t, "204", outputs["online web"])
}

// A step that fails for good before any online step rolls the failover
// back: what went offline comes back on the source.
func TestAppFailoverFailureBeforeOnlineRollsBack(t *testing.T) {
	env := appEnv(t)
	env.OnActivity(acts.RunCommand, mock.Anything, mock.Anything).Return(activities.CommandResult{},
		temporal.NewNonRetryableApplicationError("systemctl: program not found on worker host",
			activities.ErrTypeCommandNotFound, nil))
	res, err := appRun(t, env, actionPlan())
	require.ErrorContains(t, err, "application failover shop: offline api failed")
	require.ErrorContains(t, err,
		"no online step had started: back online on the source: [web]; no restore action, left offline: [api]")
	requireAppErrorType(t, err, ErrTypeAppRolledBack)
	require.Equal(t, AppOutcomeRolledBack, res.Outcome)
	byStep := map[string]AppStep{}
	for _, s := range res.Steps {
		byStep[s.Step().String()] = s
	}
	require.Equal(t, AppStepFailed, byStep["offline api"].Status)
	require.Contains(t, byStep["offline api"].Error, "program not found")
	require.Equal(t, AppStepSkipped, byStep["restore api"].Status)
	require.Equal(t, AppStepDone, byStep["restore web"].Status)
	webStart, apiEnd := byStep["restore web"].StartedAt, byStep["restore api"].EndedAt
	require.True(t, webStart.Equal(apiEnd) || webStart.After(apiEnd), "web needs api back first")
	require.Equal(t, AppStepPending, byStep["online api"].Status)
}

// Past the point of no return a failure stops the failover where it is and
// says where every component is.
func TestAppFailoverFailureAfterOnlineStops(t *testing.T) {
	env := appEnv(t)
	env.OnActivity(acts.RunCommand, mock.Anything, mock.Anything).Return(activities.CommandResult{}, nil)
	env.OnActivity(acts.CallHTTP, mock.Anything, mock.Anything).Return(activities.HTTPResult{},
		temporal.NewApplicationError("answered 503", activities.ErrTypeUnexpectedStatus))
	env.OnWorkflow(NameAccountFailover, mock.Anything, mock.Anything).
		Return(FailoverResult{Account: "acct-1", To: "stamp-b"}, nil)
	res, err := appRun(t, env, actionPlan())
	require.ErrorContains(t, err, "online web failed")
	require.ErrorContains(t, err, "after the point of no return: online on the target: [api]; "+
		"offline or partly moved: [web]; untouched on the source: []")
	require.Equal(t, AppOutcomeFailed, res.Outcome)
}

// An account failover that outlives its timeout is cancelled (it rolls
// itself back) and the step fails.
func TestAppFailoverAccountTimeout(t *testing.T) {
	env := appEnv(t)
	env.OnActivity(acts.RunCommand, mock.Anything, mock.Anything).Return(activities.CommandResult{}, nil)
	p := actionPlan()
	p.Components[1].Online.Timeout = planner.Dur(10 * time.Minute)
	env.OnWorkflow(NameAccountFailover, mock.Anything, mock.Anything).After(time.Hour).Return(FailoverResult{}, nil)
	res, err := appRun(t, env, p)
	require.ErrorContains(t, err,
		"online api failed: fail storage account acct-1 over to stamp-b: timed out after 10m0s")
	require.Equal(t, AppOutcomeFailed, res.Outcome)
}

func TestAppFailoverRefusesAnInvalidPlan(t *testing.T) {
	p := plantest.PatentExample(time.Second, planner.Concurrency{})
	p.Components[1].DependsOn = []string{"A"}
	_, err := appRun(t, appEnv(t), p)
	require.ErrorContains(t, err, "dependency cycle: A -> B -> A")
	requireAppErrorType(t, err, ErrTypeAppPlanInvalid)
}
