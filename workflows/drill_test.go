package workflows

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// recordedMetrics is a metrics handler that keeps what Baton's drill
// emits: name{tags} -> value (counters add, gauges and timers keep the
// last value).
type recordedMetrics struct {
	mu   *sync.Mutex
	tags map[string]string
	got  map[string]float64
}

func newRecordedMetrics() recordedMetrics {
	return recordedMetrics{mu: &sync.Mutex{}, tags: map[string]string{}, got: map[string]float64{}}
}

func (r recordedMetrics) WithTags(tags map[string]string) client.MetricsHandler {
	t := maps.Clone(r.tags)
	maps.Copy(t, tags)
	return recordedMetrics{mu: r.mu, tags: t, got: r.got}
}

// key is name{k=v,...} over the tags Baton sets (the SDK's own are left
// out).
func (r recordedMetrics) key(name string) string {
	var kv []string
	for _, k := range slices.Sorted(maps.Keys(r.tags)) {
		if k == "account" || k == "outcome" || k == "leg" {
			kv = append(kv, k+"="+r.tags[k])
		}
	}
	return name + "{" + strings.Join(kv, ",") + "}"
}

func (r recordedMetrics) set(name string, f func(old float64) float64) {
	if !strings.HasPrefix(name, "baton_drill") {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := r.key(name)
	r.got[k] = f(r.got[k])
}

func (r recordedMetrics) Counter(name string) client.MetricsCounter {
	return counterFunc(func(n int64) {
		r.set(name, func(old float64) float64 { return old + float64(n) })
	})
}

func (r recordedMetrics) Gauge(name string) client.MetricsGauge {
	return gaugeFunc(func(v float64) {
		r.set(name, func(float64) float64 { return v })
	})
}

func (r recordedMetrics) Timer(name string) client.MetricsTimer {
	return timerFunc(func(d time.Duration) {
		r.set(name, func(float64) float64 { return d.Seconds() })
	})
}

func (r recordedMetrics) snapshot() map[string]float64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.got)
}

type (
	counterFunc func(int64)
	gaugeFunc   func(float64)
	timerFunc   func(time.Duration)
)

func (f counterFunc) Inc(n int64)          { f(n) }
func (f gaugeFunc) Update(v float64)       { f(v) }
func (f timerFunc) Record(d time.Duration) { f(d) }

// drillFake answers a drill's activities and children from a model of one
// account on stamp-a and stamp-b, and records what happened.
type drillFake struct {
	mu        sync.Mutex
	ready     activities.DrillReadinessResult
	readyErr  error
	readiness int
	scheduled bool // the readiness check was asked for a scheduled drill
	// primary is where the account is; protected whether it replicates.
	primary   string
	protected bool
	store     map[string]string // canary key -> value, on the account
	steps     []string          // what happened, in order
	children  []string          // child workflow IDs, in order
	phases    []string          // BatonPhase, in order
	deleted   []string
	// Faults: the leg whose failover or reprotect fails (and how), or whose
	// canaries go missing.
	failFailover  Phase
	failOutcome   Outcome
	failReprotect Phase
	loseCanaries  Phase
	legs          int // failover legs run so far
	reprotects    int
	// fenced[i], rto[i]: the i-th failover's fenced window and duration.
	fenced []int64
	rto    []time.Duration
}

func newDrillFake() *drillFake {
	return &drillFake{primary: "stamp-a", protected: true, store: map[string]string{},
		ready: activities.DrillReadinessResult{Ready: true, Account: "acct", Partitions: 8, Epoch: 1,
			Primary: "stamp-a", Secondary: "stamp-b", SendLagOps: 3, ReplayLagOps: 2, LagBudgetOps: 1000},
		fenced: []int64{120, 80}, rto: []time.Duration{3 * time.Second, 5 * time.Second}}
}

func (f *drillFake) note(s string) { f.mu.Lock(); f.steps = append(f.steps, s); f.mu.Unlock() }

func (f *drillFake) env(t *testing.T) (*testsuite.TestWorkflowEnvironment, recordedMetrics) {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	m := newRecordedMetrics()
	s.SetMetricsHandler(m)
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Drill, workflow.RegisterOptions{Name: NameDrill})
	env.RegisterWorkflowWithOptions(AccountFailover, workflow.RegisterOptions{Name: NameAccountFailover})
	env.RegisterWorkflowWithOptions(Reprotect, workflow.RegisterOptions{Name: NameReprotect})
	env.RegisterActivity(acts)
	env.OnActivity(acts.DrillReadiness, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DrillReadinessInput) (activities.DrillReadinessResult, error) {
			f.note("readiness")
			f.mu.Lock()
			f.readiness++
			f.scheduled = in.Scheduled
			f.mu.Unlock()
			require.Equal(t, []string{"failover-acct", "reprotect-acct"}, in.Busy)
			require.Equal(t, "BatonOperation = 'drill' AND BatonAccount = 'acct' AND ExecutionStatus = 'Running'", in.OtherDrills)
			return f.ready, f.readyErr
		})
	env.OnActivity(acts.WriteCanaries, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CanaryInput) (activities.CanaryResult, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			if in.Primary != f.primary {
				return activities.CanaryResult{}, fmt.Errorf("primary is %s, not %s", f.primary, in.Primary)
			}
			for _, k := range in.Keys {
				f.store[k] = activities.CanaryValue(k)
			}
			f.steps = append(f.steps, fmt.Sprintf("write %d canaries on %s", len(in.Keys), in.Primary))
			return activities.CanaryResult{Stamp: in.Primary, Written: len(in.Keys)}, nil
		})
	env.OnActivity(acts.CheckCanaries, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CanaryInput) (activities.CanaryResult, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			require.Equal(t, f.primary, in.Primary, "canaries are read from the new primary")
			res := activities.CanaryResult{Stamp: in.Primary, Checked: len(in.Keys)}
			for _, k := range in.Keys {
				if f.store[k] != activities.CanaryValue(k) {
					res.Lost = append(res.Lost, k)
				}
			}
			f.steps = append(f.steps, fmt.Sprintf("check %d canaries on %s", len(in.Keys), in.Primary))
			return res, nil
		})
	env.OnActivity(acts.DeleteCanaries, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CanaryInput) error {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.deleted = append(f.deleted, in.Keys...)
			f.steps = append(f.steps, fmt.Sprintf("delete %d canaries on %s", len(in.Keys), in.Primary))
			return nil
		})
	env.OnWorkflow(NameAccountFailover, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, req FailoverRequest) (FailoverResult, error) {
			f.mu.Lock()
			i := f.legs
			f.legs++
			f.mu.Unlock()
			leg := []Phase{PhaseDrillFailover, PhaseDrillFailback}[i]
			f.note(fmt.Sprintf("%s %s -> %s", leg, req.FromStamp, req.ToStamp))
			require.Equal(t, ModePlanned, req.Mode)
			require.Equal(t, TriggerManual, req.Trigger)
			require.NoError(t, workflow.Sleep(ctx, f.rto[i]))
			res := FailoverResult{Account: req.Account, From: req.FromStamp, To: req.ToStamp, Outcome: OutcomeCompleted,
				UnavailableMillis: f.fenced[i], TotalMillis: f.rto[i].Milliseconds()}
			if f.failFailover == leg {
				res.Outcome = f.failOutcome
				return res, temporal.NewNonRetryableApplicationError("failover of acct rolled back: flush deadline passed",
					errTypeOf(f.failOutcome), nil, res)
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			f.primary, f.protected = req.ToStamp, false
			if f.loseCanaries == leg {
				for _, k := range slices.Sorted(maps.Keys(f.store))[:2] {
					delete(f.store, k)
				}
			}
			return res, nil
		})
	env.OnWorkflow(NameReprotect, mock.Anything, mock.Anything).Return(
		func(ctx workflow.Context, req ReprotectRequest) (ReprotectResult, error) {
			f.mu.Lock()
			i := f.reprotects
			f.reprotects++
			f.mu.Unlock()
			leg := []Phase{PhaseDrillReprotect, PhaseDrillFinalReprotect}[i]
			f.note(string(leg))
			require.NoError(t, workflow.Sleep(ctx, 2*time.Second))
			res := ReprotectResult{Account: req.Account, Outcome: OutcomeCompleted, LagOps: 7}
			if f.failReprotect == leg {
				res.Outcome = OutcomeFailed
				return res, temporal.NewNonRetryableApplicationError("stamp-a did not catch up with stamp-b within 10m0s",
					ErrTypeReprotectFailed, nil, res)
			}
			f.mu.Lock()
			f.protected = true
			f.mu.Unlock()
			return res, nil
		})
	env.SetOnChildWorkflowStartedListener(func(info *workflow.Info, _ workflow.Context, _ converter.EncodedValues) {
		f.mu.Lock()
		f.children = append(f.children, info.WorkflowExecution.ID)
		f.mu.Unlock()
	})
	env.OnUpsertTypedSearchAttributes(mock.Anything).Run(func(args mock.Arguments) {
		if p, ok := args.Get(0).(temporal.SearchAttributes).GetKeyword(SearchPhase); ok {
			f.mu.Lock()
			f.phases = append(f.phases, p)
			f.mu.Unlock()
		}
	}).Return(nil)
	return env, m
}

// runDrill runs a drill of acct and returns its report (from the error's
// details when it failed) and its error.
func runDrill(t *testing.T, env *testsuite.TestWorkflowEnvironment, req DrillRequest) (DrillResult, error) {
	t.Helper()
	if req.Account == "" {
		req.Account = "acct"
	}
	env.ExecuteWorkflow(NameDrill, req)
	require.True(t, env.IsWorkflowCompleted())
	var res DrillResult
	if err := env.GetWorkflowError(); err != nil {
		var ae *temporal.ApplicationError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, ErrTypeDrillFailed, ae.Type())
		require.NoError(t, ae.Details(&res))
		return res, err
	}
	require.NoError(t, env.GetWorkflowResult(&res))
	return res, nil
}

// TestDrillRunsTheWholeCycle: failover, reprotect, failback, reprotect,
// each a child under the account's own ID; canaries written before each
// failover and read back from the new primary after it (after the
// failback, both legs' canaries), deleted at the end; the report gives
// each leg's figures; the phases, search attributes and metrics follow.
func TestDrillRunsTheWholeCycle(t *testing.T) {
	f := newDrillFake()
	env, m := f.env(t)
	start := time.Date(2025, 1, 4, 12, 0, 0, 0, time.UTC) // a Saturday
	env.SetStartTime(start)
	res, err := runDrill(t, env, DrillRequest{Canaries: 5, Blocked: []string{"Sat 00:00-06:00", "Sun 00:00-24:00"},
		RequestedBy: "alice", Reason: "weekly practice"})
	require.NoError(t, err)

	require.Equal(t, OutcomeCompleted, res.Outcome)
	require.Empty(t, res.Why)
	require.Equal(t, []string{
		"readiness",
		"write 5 canaries on stamp-a", "failover stamp-a -> stamp-b", "check 5 canaries on stamp-b",
		"reprotect",
		"write 5 canaries on stamp-b", "failback stamp-b -> stamp-a", "check 10 canaries on stamp-a",
		"final-reprotect",
		"delete 10 canaries on stamp-a",
	}, f.steps)
	require.Equal(t, []string{"failover-acct", "reprotect-acct", "failover-acct", "reprotect-acct"}, f.children)
	require.Equal(t, []string{"precheck", "failover", "reprotect", "failback", "final-reprotect", "done"}, f.phases)
	require.Equal(t, "stamp-a", f.primary, "the account ends where it started")
	require.True(t, f.protected, "and protected")
	require.Len(t, f.deleted, 10)
	require.Len(t, slices.Compact(slices.Sorted(slices.Values(f.deleted))), 10, "every canary key is its own")
	for _, k := range f.deleted {
		require.True(t, strings.HasPrefix(k, "drill-"), k)
	}

	require.Equal(t, "stamp-a", res.Home)
	require.Equal(t, "stamp-b", res.Away)
	require.Equal(t, uint64(5), res.LagOpsAtStart)
	require.Len(t, res.Legs, 4)
	for i, want := range []struct {
		leg      Phase
		from, to string
		id       string
	}{
		{PhaseDrillFailover, "stamp-a", "stamp-b", "failover-acct"},
		{PhaseDrillReprotect, "stamp-a", "stamp-b", "reprotect-acct"},
		{PhaseDrillFailback, "stamp-b", "stamp-a", "failover-acct"},
		{PhaseDrillFinalReprotect, "stamp-b", "stamp-a", "reprotect-acct"},
	} {
		l := res.Legs[i]
		require.Equal(t, want.leg, l.Leg)
		require.Equal(t, want.from, l.From, l.Leg)
		require.Equal(t, want.to, l.To, l.Leg)
		require.Equal(t, want.id, l.WorkflowID)
		require.Equal(t, OutcomeCompleted, l.Outcome)
		require.Empty(t, l.Error)
	}
	require.Equal(t, int64(120), res.Legs[0].FencedMillis)
	require.Equal(t, int64(80), res.Legs[2].FencedMillis)
	require.Equal(t, 5, res.Legs[0].Canaries)
	require.Equal(t, 10, res.Legs[2].Canaries)
	require.Equal(t, uint64(7), res.Legs[1].LagOps)
	require.Equal(t, uint64(7), res.Legs[3].LagOps)
	require.Equal(t, int64(3000), res.Legs[0].Millis)
	require.Equal(t, int64(5000), res.Legs[2].Millis)
	require.Equal(t, int64(5000), res.RTOMillis, "the slower failover leg")
	require.Equal(t, int64(120), res.FencedMillis, "the longer fenced window")
	require.Equal(t, int64(12000), res.TotalMillis, "3 s + 2 s + 5 s + 2 s of legs")
	require.Zero(t, res.CanariesLost)
	require.Empty(t, res.CanaryCleanup)

	got := m.snapshot()
	require.Equal(t, 1.0, got["baton_drills{account=acct,outcome=completed}"])
	require.Equal(t, float64(start.Add(12*time.Second).Unix()), got["baton_drill_last_timestamp_seconds{account=acct,outcome=completed}"])
	require.Equal(t, 3.0, got["baton_drill_rto{account=acct,leg=failover}"])
	require.Equal(t, 5.0, got["baton_drill_rto{account=acct,leg=failback}"])
	require.Len(t, got, 4, "%v", got)
}

// TestDrillSkipsInsideABlockedWindow: inside a blocked window (UTC) a drill
// touches nothing, not even the readiness check, and completes as skipped,
// naming the window; outside it, it runs.
func TestDrillSkipsInsideABlockedWindow(t *testing.T) {
	for _, c := range []struct {
		now     time.Time
		blocked []string
		window  string // "" = not blocked
	}{
		{time.Date(2025, 1, 4, 3, 0, 0, 0, time.UTC), []string{"Sat 00:00-06:00"}, "Sat 00:00-06:00"},
		{time.Date(2025, 1, 4, 1, 59, 0, 0, time.UTC), []string{"mon 09:00-17:00", "Friday 22:00-02:00"}, "Fri 22:00-02:00"},
		{time.Date(2025, 1, 8, 12, 30, 0, 0, time.UTC), []string{"daily 12:00-13:00"}, "daily 12:00-13:00"},
		{time.Date(2025, 1, 4, 6, 0, 0, 0, time.UTC), []string{"Sat 00:00-06:00"}, ""},
		{time.Date(2025, 1, 4, 2, 0, 0, 0, time.UTC), []string{"Fri 22:00-02:00"}, ""},
	} {
		t.Run(fmt.Sprintf("%s %v", c.now.Format("Mon 15:04"), c.blocked), func(t *testing.T) {
			f := newDrillFake()
			env, m := f.env(t)
			env.SetStartTime(c.now)
			res, err := runDrill(t, env, DrillRequest{Blocked: c.blocked})
			require.NoError(t, err)
			if c.window == "" {
				require.Equal(t, OutcomeCompleted, res.Outcome)
				return
			}
			require.Equal(t, OutcomeSkipped, res.Outcome)
			require.Equal(t, fmt.Sprintf("now (%s UTC) is inside the blocked window %q", c.now.Format("Mon 15:04"), c.window), res.Why)
			require.Empty(t, f.steps, "nothing is touched, nothing asked")
			require.Empty(t, res.Legs)
			require.Equal(t, []string{"precheck", "skipped"}, f.phases)
			require.Equal(t, 1.0, m.snapshot()["baton_drills{account=acct,outcome=skipped}"])
		})
	}
}

// TestDrillSkipsAnAccountThatIsNotReady: whatever the readiness check finds
// (unprotected, a secondary that does not answer, lag above the budget,
// another failover, reprotect or drill running), the drill starts no leg
// and completes as skipped with the reason.
func TestDrillSkipsAnAccountThatIsNotReady(t *testing.T) {
	for _, why := range []string{
		"acct is not ready to fail over: reprotect pending: acct failed over to stamp-b at epoch 2 and stamp-a does not " +
			"replicate it yet: baton reprotect acct",
		"acct is not ready to fail over: secondary stamp-b does not answer: connection refused",
		"acct is not ready to fail over: lag 5000 ops (4000 unacknowledged, 1000 not replayed on stamp-b), budget 1000",
		"workflow failover-acct is running: a drill waits until nothing else moves the account",
		"another drill of acct is running (workflow drill-acct)",
	} {
		t.Run(why[:40], func(t *testing.T) {
			f := newDrillFake()
			f.ready = activities.DrillReadinessResult{Account: "acct", NotReady: why}
			env, m := f.env(t)
			res, err := runDrill(t, env, DrillRequest{})
			require.NoError(t, err, "a skipped drill is not a failure")
			require.Equal(t, OutcomeSkipped, res.Outcome)
			require.Equal(t, why, res.Why)
			require.Equal(t, []string{"readiness"}, f.steps)
			require.Empty(t, f.children)
			require.Equal(t, []string{"precheck", "skipped"}, f.phases)
			got := m.snapshot()
			require.Equal(t, 1.0, got["baton_drills{account=acct,outcome=skipped}"])
			require.NotContains(t, got, "baton_drill_rto{account=acct,leg=failover}")
		})
	}
}

// TestScheduledDrillHeldByAMaintenanceSwitch: the readiness check is told
// whether the drill's schedule started it (a maintenance switch holds only
// those); held, the drill is skipped with the switch's who and why.
func TestScheduledDrillHeldByAMaintenanceSwitch(t *testing.T) {
	const why = "held by the maintenance switch of stamp-a (on since 2026-01-02T03:04:05Z, set by oncall: " +
		"patching): a scheduled drill does not start while it is on"
	f := newDrillFake()
	f.ready = activities.DrillReadinessResult{Account: "acct", NotReady: why}
	env, m := f.env(t)
	res, err := runDrill(t, env, DrillRequest{Schedule: DrillScheduleID("acct")})
	require.NoError(t, err, "a held drill is skipped, not failed")
	require.True(t, f.scheduled)
	require.Equal(t, OutcomeSkipped, res.Outcome)
	require.Equal(t, why, res.Why)
	require.Empty(t, f.children)
	require.Equal(t, []string{"precheck", "skipped"}, f.phases)
	require.Equal(t, 1.0, m.snapshot()["baton_drills{account=acct,outcome=skipped}"])

	f = newDrillFake()
	env, _ = f.env(t)
	res, err = runDrill(t, env, DrillRequest{})
	require.NoError(t, err)
	require.False(t, f.scheduled, "a drill started by hand is not held")
	require.Equal(t, OutcomeCompleted, res.Outcome)
}

// TestDrillSkipsWhenAFailoverStartsFirst: the readiness check passed, but
// by the time the drill starts its failover another workflow runs under
// the account's failover ID (here, to simulate one, the drill's own): the
// child start is refused and the drill is skipped, having touched nothing
// but its canaries, which it deletes.
func TestDrillSkipsWhenAFailoverStartsFirst(t *testing.T) {
	f := newDrillFake()
	env, _ := f.env(t)
	env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: FailoverWorkflowID("acct")})
	res, err := runDrill(t, env, DrillRequest{})
	require.NoError(t, err)
	require.Equal(t, OutcomeSkipped, res.Outcome)
	require.Equal(t, "workflow failover-acct is running: a drill waits until nothing else moves the account", res.Why)
	require.Empty(t, res.Legs)
	require.Zero(t, f.legs, "no failover ran")
	require.Len(t, f.deleted, DefaultDrillCanaries, "the canaries written are deleted")
	require.Equal(t, []string{"precheck", "failover", "skipped"}, f.phases)
}

// TestDrillFailingLegSaysWhereTheAccountIs: a leg that fails fails the
// drill, which starts nothing more and says which leg failed, where the
// account was left and what the operator does.
func TestDrillFailingLegSaysWhereTheAccountIs(t *testing.T) {
	for _, c := range []struct {
		name     string
		set      func(f *drillFake)
		leg      Phase
		legs     int
		primary  string
		prot     bool
		next     string
		children []string
	}{
		{"failover rolls back", func(f *drillFake) { f.failFailover, f.failOutcome = PhaseDrillFailover, OutcomeRolledBack },
			PhaseDrillFailover, 1, "stamp-a", true,
			"acct is still primary on stamp-a, protected: fix the cause (the failover's report: baton result acct), " +
				"then drill again (baton drill acct)", []string{"failover-acct"}},
		{"failover fails past promote", func(f *drillFake) { f.failFailover, f.failOutcome = PhaseDrillFailover, OutcomeFailed },
			PhaseDrillFailover, 1, "stamp-a", true,
			"the failover of acct failed at or past its point of no return: see where acct is (baton status acct) " +
				"and the failover's report (baton result acct), which says what to do by hand", []string{"failover-acct"}},
		{"canaries lost in the failover", func(f *drillFake) { f.loseCanaries = PhaseDrillFailover },
			PhaseDrillFailover, 1, "stamp-b", false,
			"acct is primary on stamp-b, not protected: find out why the canary writes are not there (the failover's report: " +
				"baton result acct), then reprotect it (baton reprotect acct) and fail it back (baton failover acct --to stamp-a)",
			[]string{"failover-acct"}},
		{"reprotect fails", func(f *drillFake) { f.failReprotect = PhaseDrillReprotect },
			PhaseDrillReprotect, 2, "stamp-b", false,
			"acct is primary on stamp-b, not protected: reprotect it (baton reprotect acct), then fail it back " +
				"(baton failover acct --to stamp-a)", []string{"failover-acct", "reprotect-acct"}},
		{"failback rolls back", func(f *drillFake) { f.failFailover, f.failOutcome = PhaseDrillFailback, OutcomeRolledBack },
			PhaseDrillFailback, 3, "stamp-b", true,
			"acct is still primary on stamp-b, protected: fix the cause (the failover's report: baton result acct), " +
				"then fail it back (baton failover acct --to stamp-a)", []string{"failover-acct", "reprotect-acct", "failover-acct"}},
		{"canaries lost in the failback", func(f *drillFake) { f.loseCanaries = PhaseDrillFailback },
			PhaseDrillFailback, 3, "stamp-a", false,
			"acct is primary on stamp-a, not protected: find out why the canary writes are not there (the failover's report: " +
				"baton result acct), then reprotect it (baton reprotect acct)",
			[]string{"failover-acct", "reprotect-acct", "failover-acct"}},
		{"final reprotect fails", func(f *drillFake) { f.failReprotect = PhaseDrillFinalReprotect },
			PhaseDrillFinalReprotect, 4, "stamp-a", false,
			"acct is back home on stamp-a but not protected: reprotect it (baton reprotect acct)",
			[]string{"failover-acct", "reprotect-acct", "failover-acct", "reprotect-acct"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newDrillFake()
			c.set(f)
			env, m := f.env(t)
			res, err := runDrill(t, env, DrillRequest{Canaries: 4})
			require.Error(t, err)
			require.Equal(t, OutcomeFailed, res.Outcome)
			require.Equal(t, c.leg, res.FailedLeg)
			require.Len(t, res.Legs, c.legs)
			last := res.Legs[len(res.Legs)-1]
			require.Equal(t, c.leg, last.Leg)
			require.NotEmpty(t, last.Error)
			require.Contains(t, err.Error(), fmt.Sprintf("drill of acct failed at its %s leg: ", c.leg))
			var ae *temporal.ApplicationError
			require.ErrorAs(t, err, &ae)
			require.Equal(t, res.Why, ae.Message(), "one readable line")
			require.Equal(t, c.next, res.Next)
			require.Equal(t, c.children, f.children, "nothing starts after the failed leg")
			require.Equal(t, c.primary, f.primary, "the account is where the leg left it")
			require.Equal(t, c.prot, f.protected)
			require.Empty(t, f.deleted, "the canaries stay for the investigation")
			require.Equal(t, "failed", f.phases[len(f.phases)-1])
			got := m.snapshot()
			require.Equal(t, 1.0, got["baton_drills{account=acct,outcome=failed}"])
			require.NotContains(t, got, "baton_drill_rto{account=acct,leg=failover}", "RTO is recorded for completed drills")
			if c.name == "canaries lost in the failover" {
				require.Equal(t, 2, res.CanariesLost)
				require.Len(t, res.Legs[0].LostCanaries, 2)
				require.Contains(t, err.Error(), "2 of 4 canary writes acknowledged before the failover are not on stamp-b")
			}
		})
	}
}

// TestDrillRefusesABadRequest: a request the contract refuses fails the
// drill before anything is asked.
func TestDrillRefusesABadRequest(t *testing.T) {
	for want, req := range map[string]DrillRequest{
		"no account: name the account to drill":           {Account: ""},
		`blocked window "Sat 6-8": time "6" is not HH:MM`: {Account: "acct", Blocked: []string{"Sat 6-8"}},
		"canaries 1001: write 1 to 1000 canaries":         {Account: "acct", Canaries: 1001},
	} {
		f := newDrillFake()
		env, _ := f.env(t)
		env.ExecuteWorkflow(NameDrill, req)
		err := env.GetWorkflowError()
		require.Error(t, err)
		require.Contains(t, err.Error(), want)
		require.Empty(t, f.steps)
	}
}

// TestBlockedWindows: the format of a blocked window, and what it covers.
func TestBlockedWindows(t *testing.T) {
	sat := func(h, m int) time.Time { return time.Date(2025, 1, 4, h, m, 0, 0, time.UTC) }
	for _, c := range []struct {
		in   string
		norm string
		in1  []time.Time
		out  []time.Time
	}{
		{"Sat 00:00-06:00", "Sat 00:00-06:00", []time.Time{sat(0, 0), sat(5, 59)}, []time.Time{sat(6, 0), sat(-1, 59)}},
		{"saturday 22:30-24:00", "Sat 22:30-24:00", []time.Time{sat(22, 30), sat(23, 59)}, []time.Time{sat(24, 0), sat(22, 29)}},
		{"Fri 22:00-02:00", "Fri 22:00-02:00", []time.Time{sat(-2, 0), sat(1, 59)}, []time.Time{sat(2, 0), sat(-2, -1), sat(22, 0)}},
		{"daily 23:00-01:00", "daily 23:00-01:00", []time.Time{sat(0, 30), sat(23, 0), sat(24, 30)}, []time.Time{sat(1, 0), sat(12, 0)}},
		{"SUN 00:00-24:00", "Sun 00:00-24:00", []time.Time{sat(24, 0), sat(47, 59)}, []time.Time{sat(23, 59), sat(48, 0)}},
		{"Mon 09:00-17:00", "Mon 09:00-17:00", nil, []time.Time{sat(9, 0), sat(24+9, 0)}},
	} {
		w, err := ParseBlockedWindow(c.in)
		require.NoError(t, err, c.in)
		require.Equal(t, c.norm, w.String())
		for _, at := range c.in1 {
			require.True(t, w.Contains(at), "%s contains %s", c.in, at.Format(time.RFC1123))
			require.True(t, w.Contains(at.In(time.FixedZone("UTC+5", 5*3600))), "in any zone: the instant counts")
		}
		for _, at := range c.out {
			require.False(t, w.Contains(at), "%s does not contain %s", c.in, at.Format(time.RFC1123))
		}
	}
	for in, want := range map[string]string{
		"Sat":                  "write DAY HH:MM-HH:MM in UTC",
		"Sat 00:00 06:00":      "write DAY HH:MM-HH:MM in UTC",
		"Caturday 00:00-06:00": `day "Caturday" is not Mon, Tue, Wed, Thu, Fri, Sat, Sun or daily`,
		"Sat 0:00-06:00":       `time "0:00" is not HH:MM`,
		"Sat 00:00-25:00":      `time "25:00" is not a time of day`,
		"Sat 24:00-06:00":      `time "24:00" is not a time of day`,
		"Sat 06:00-06:00":      "it starts where it ends; for a whole day write 00:00-24:00",
	} {
		_, err := ParseBlockedWindow(in)
		require.ErrorContains(t, err, want, in)
	}
}
