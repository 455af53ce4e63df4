package workflows

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// fakeStamp is a stamp's accounts as an evacuation sees them: the location
// service's listing and every account's failover (a mocked child), which
// records how many ran at once and in which order they started.
type fakeStamp struct {
	mu       sync.Mutex
	accounts []activities.EvacuationAccount
	primary  map[string]string
	// fail[a] > 0: the next fail[a] failovers of a roll back.
	fail        map[string]int
	started     []string
	inFlight    int
	maxInFlight int
	perDest     map[string]int
	maxPerDest  int
	took        time.Duration
}

func newFakeStamp(n int) *fakeStamp {
	f := &fakeStamp{primary: map[string]string{}, fail: map[string]int{}, perDest: map[string]int{},
		took: 2 * time.Second}
	for i := range n {
		a := activities.EvacuationAccount{
			EvacuationKey: activities.EvacuationKey{Tier: (n - i) % 3, Partitions: 1 + i%4,
				Account: fmt.Sprintf("acct-%03d", i)},
			To: fmt.Sprintf("stamp-%c", 'b'+i%2),
		}
		f.accounts = append(f.accounts, a)
		f.primary[a.Account] = "stamp-a"
	}
	return f
}

func (f *fakeStamp) page(_ context.Context, in activities.EvacuationPageInput) (activities.EvacuationPageResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var on []activities.EvacuationAccount
	for _, a := range f.accounts {
		if f.primary[a.Account] == in.Stamp {
			on = append(on, a)
		}
	}
	slices.SortFunc(on, func(x, y activities.EvacuationAccount) int { return x.Compare(y.EvacuationKey) })
	res := activities.EvacuationPageResult{OnStamp: len(on)}
	i := 0
	for i < len(on) && on[i].Compare(in.After) <= 0 {
		i++
	}
	end := min(len(on), i+in.Limit)
	res.Accounts, res.Last = on[i:end], end == len(on)
	return res, nil
}

func (f *fakeStamp) lookUp(_ context.Context, in activities.LookUpAccountsInput) ([]activities.AccountWhere, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []activities.AccountWhere
	for _, a := range in.Accounts {
		out = append(out, activities.AccountWhere{Account: a, Primary: f.primary[a]})
	}
	return out, nil
}

// failover is the mocked AccountFailover child.
func (f *fakeStamp) failover(ctx workflow.Context, req FailoverRequest) (FailoverResult, error) {
	f.mu.Lock()
	f.started = append(f.started, req.Account)
	f.inFlight++
	f.perDest[req.ToStamp]++
	f.maxInFlight = max(f.maxInFlight, f.inFlight)
	f.maxPerDest = max(f.maxPerDest, f.perDest[req.ToStamp])
	f.mu.Unlock()
	_ = workflow.Sleep(ctx, f.took)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inFlight--
	f.perDest[req.ToStamp]--
	res := FailoverResult{Account: req.Account, From: req.FromStamp, To: req.ToStamp, UnavailableMillis: 100}
	if f.fail[req.Account] > 0 {
		f.fail[req.Account]--
		res.Outcome = OutcomeRolledBack
		return res, temporal.NewNonRetryableApplicationError("flush deadline passed", ErrTypeRolledBack, nil, res)
	}
	f.primary[req.Account] = req.ToStamp
	res.Outcome = OutcomeCompleted
	return res, nil
}

func newEvacuationEnv(t *testing.T, f *fakeStamp) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(StampEvacuation)
	env.RegisterWorkflowWithOptions(f.failover, workflow.RegisterOptions{Name: NameAccountFailover})
	env.RegisterActivity(acts)
	env.OnActivity(acts.EvacuationPage, mock.Anything, mock.Anything).Return(f.page).Maybe()
	env.OnActivity(acts.LookUpAccounts, mock.Anything, mock.Anything).Return(f.lookUp).Maybe()
	return env
}

// TestEvacuationOrderAdmissionAndRetries: tiers first, then smaller
// accounts; never more than K at once nor more than the cap per
// destination; an account that rolls back is retried and then moves; one
// that always rolls back is reported after its attempts and does not stop
// the others.
func TestEvacuationOrderAdmissionAndRetries(t *testing.T) {
	f := newFakeStamp(60)
	f.fail["acct-007"] = 1
	f.fail["acct-011"] = 99
	env := newEvacuationEnv(t, f)
	env.ExecuteWorkflow(StampEvacuation, EvacuationRequest{Stamp: "stamp-a", MaxInFlight: 6, PerDestination: 4,
		Attempts: 2, RetryDelay: time.Second, RequestedBy: "test"})
	require.True(t, env.IsWorkflowCompleted())
	err := env.GetWorkflowError()
	require.Error(t, err)
	require.True(t, isType(err, ErrTypeEvacuationIncomplete), "%v", err)
	res := evacuationResultOf(t, err)
	require.Equal(t, 60, res.Table.Len())
	require.Equal(t, 60, res.OnStamp)
	require.Equal(t, []OutcomeCount{{OutcomeCompleted, 59}, {OutcomeRolledBack, 1}}, res.ByOutcome)
	row := slices.Index(res.Table.Account, "acct-011")
	require.Equal(t, 2, res.Table.Attempts[row])
	require.Contains(t, res.Table.ErrorOf(row), "flush deadline passed (after 2 attempts)")
	require.Equal(t, 2, res.Table.Attempts[slices.Index(res.Table.Account, "acct-007")])
	require.LessOrEqual(t, f.maxInFlight, 6)
	require.Equal(t, 4, f.maxPerDest)
	// Start order follows the tiers, per destination (an account whose
	// destination is at its cap does not hold back one going elsewhere);
	// first attempts only.
	seen := map[string]bool{}
	lastTier := map[string]int{}
	for _, name := range f.started {
		if seen[name] {
			continue
		}
		seen[name] = true
		a := accountOf(f, name)
		require.GreaterOrEqual(t, a.Tier, lastTier[a.To], "account %s of tier %d started after tier %d",
			name, a.Tier, lastTier[a.To])
		lastTier[a.To] = a.Tier
	}
}

func accountOf(f *fakeStamp, name string) activities.EvacuationAccount {
	for _, a := range f.accounts {
		if a.Account == name {
			return a
		}
	}
	return activities.EvacuationAccount{}
}

func evacuationResultOf(t *testing.T, err error) EvacuationResult {
	t.Helper()
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	var res EvacuationResult
	require.NoError(t, ae.Details(&res))
	return res
}

// TestEvacuationControls: a pause holds new starts until resumed, a change
// of K applies at once, and an abort lets the accounts in flight finish and
// starts no others.
func TestEvacuationControls(t *testing.T) {
	f := newFakeStamp(40)
	env := newEvacuationEnv(t, f)
	var startedAtPause, startedAtResume int
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdatePause, "p", noopUpdate(t), Decision{By: "op", Reason: "look"})
		f.mu.Lock()
		startedAtPause = len(f.started)
		f.mu.Unlock()
	}, 3*time.Second)
	env.RegisterDelayedCallback(func() {
		f.mu.Lock()
		startedAtResume = len(f.started)
		f.mu.Unlock()
		env.UpdateWorkflow(UpdateResume, "r", noopUpdate(t), Decision{By: "op"})
		env.UpdateWorkflow(UpdateLimits, "k", noopUpdate(t), EvacuationLimits{By: "op", MaxInFlight: 10})
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateAbort, "a", noopUpdate(t), Decision{By: "op", Reason: "enough"})
	}, time.Minute+3*time.Second)
	env.ExecuteWorkflow(StampEvacuation, EvacuationRequest{Stamp: "stamp-a", MaxInFlight: 2, RequestedBy: "test"})
	err := env.GetWorkflowError()
	require.True(t, isType(err, ErrTypeEvacuationAborted), "%v", err)
	res := evacuationResultOf(t, err)
	require.Equal(t, startedAtPause, startedAtResume, "nothing starts while paused")
	require.Equal(t, 10, f.maxInFlight, "K raised to 10 mid-run")
	require.Len(t, res.Pauses, 2)
	require.Equal(t, res.Table.Len(), len(f.started))
	require.Equal(t, 40-len(f.started), res.NotStarted)
	require.Less(t, len(f.started), 40)
}

// noopUpdate fails the test if an update is refused.
func noopUpdate(t *testing.T) *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { t.Errorf("update rejected: %v", err) },
		OnComplete: func(any, error) {},
	}
}
