package testsuite

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// drills lists the account's drills whose visibility matches the extra
// condition (e.g. "ExecutionStatus = 'Completed'"), found the way an
// operator finds them in the Web UI: by their search attributes.
func drills(ctx context.Context, c client.Client, account, and string) ([]*workflowpb.WorkflowExecutionInfo, error) {
	q := fmt.Sprintf("%s = '%s' AND %s = '%s'", workflows.SearchOperation.GetName(), workflows.OperationDrill,
		workflows.SearchAccount.GetName(), account)
	if and != "" {
		q += " AND " + and
	}
	resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: 100})
	return resp.GetExecutions(), err
}

// phaseOf is a listed workflow's BatonPhase.
func phaseOf(e *workflowpb.WorkflowExecutionInfo) string {
	var p string
	if f, ok := e.GetSearchAttributes().GetIndexedFields()[workflows.SearchPhase.GetName()]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(f, &p)
	}
	return p
}

// awaitDrill polls visibility until a drill of the account matching and is
// listed, and returns the first.
func awaitDrill(ctx context.Context, t *testing.T, c *Cluster, account, and string) *workflowpb.WorkflowExecutionInfo {
	t.Helper()
	var found *workflowpb.WorkflowExecutionInfo
	require.NoError(t, Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		es, err := drills(ctx, c.Client, account, and)
		if err != nil || len(es) == 0 {
			return false, nil
		}
		found = es[0]
		return true, nil
	}), "no drill of %s with %s", account, and)
	return found
}

// drillResult waits for a drill run and returns its report.
func drillResult(ctx context.Context, t *testing.T, c *Cluster, id, runID string) workflows.DrillResult {
	t.Helper()
	var res workflows.DrillResult
	require.NoError(t, c.Client.GetWorkflow(ctx, id, runID).Get(ctx, &res), "drill %s", id)
	return res
}

// TestDrillUnderTrafficLosesNothing: one drill of an account under live
// traffic: failover, reprotect, failback, reprotect, each a child under the
// account's own IDs; its canaries are all read back, the audit of the
// traffic finds every acknowledged write, and the account ends where it
// started, protected. The drill is found by its search attributes.
func TestDrillUnderTrafficLosesNothing(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const account, partitions, canaries = "drill-acct", 8, 50
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 300, Workers: 4})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 300, gen.Err() }))

	start := time.Now()
	run, err := launch.Drill(ctx, c.Client, workflows.TaskQueue, workflows.DrillRequest{
		Account: account, Canaries: canaries, Reason: "e2e", RequestedBy: t.Name(),
		Failover: workflows.FailoverOptions{HeartbeatTimeout: 2 * time.Second}})
	require.NoError(t, err)
	require.Equal(t, workflows.DrillWorkflowID(account), run.GetID())
	var res workflows.DrillResult
	require.NoError(t, run.Get(ctx, &res))
	elapsed := time.Since(start)

	require.Equal(t, workflows.OutcomeCompleted, res.Outcome, res.Why)
	require.Equal(t, StampA, res.Home)
	require.Equal(t, StampB, res.Away)
	require.Len(t, res.Legs, 4)
	for i, want := range []struct {
		leg workflows.Phase
		id  string
	}{
		{workflows.PhaseDrillFailover, workflows.FailoverWorkflowID(account)},
		{workflows.PhaseDrillReprotect, workflows.ReprotectWorkflowID(account)},
		{workflows.PhaseDrillFailback, workflows.FailoverWorkflowID(account)},
		{workflows.PhaseDrillFinalReprotect, workflows.ReprotectWorkflowID(account)},
	} {
		l := res.Legs[i]
		require.Equal(t, want.leg, l.Leg)
		require.Equal(t, want.id, l.WorkflowID, "every leg runs under the account's own ID")
		require.Equal(t, workflows.OutcomeCompleted, l.Outcome, l.Error)
		require.Positive(t, l.Millis)
	}
	require.Equal(t, canaries, res.Legs[0].Canaries)
	require.Equal(t, 2*canaries, res.Legs[2].Canaries, "after the failback both legs' canaries are read back")
	require.Zero(t, res.CanariesLost)
	require.Empty(t, res.CanaryCleanup)
	require.Positive(t, res.Legs[0].FencedMillis)
	require.Positive(t, res.Legs[2].FencedMillis)
	budget := max(uint64(1000), 2*partitions)
	require.LessOrEqual(t, res.Legs[1].LagOps, budget, "lag within budget after the reprotect")
	require.LessOrEqual(t, res.Legs[3].LagOps, budget, "lag within budget after the final reprotect")
	require.GreaterOrEqual(t, res.RTOMillis, res.FencedMillis)

	acct, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.Equal(t, StampA, acct.Primary, "the account ends where it started")
	require.False(t, acct.Unprotected, "and protected")
	require.Equal(t, uint64(3), acct.Epoch, "two failovers")
	rr, err := c.StampClient(StampA).Read(ctx, account, activities.CanaryKeys(run.GetRunID(), 0, 2*canaries))
	require.NoError(t, err)
	require.Empty(t, rr.Values, "the drill deleted its canaries")

	// The traffic followed the account there and back; nothing it was
	// acknowledged is missing.
	before := gen.Stats().AcksByStamp[StampA]
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen.Stats().AcksByStamp[StampA] >= before+200, gen.Err()
	}))
	st := gen.Stop()
	require.Positive(t, st.AcksByStamp[StampB], "clients wrote to stamp-b during the drill")
	rep := auditNow(ctx, t, c, account, gen, "the drill")

	// Found as an operator finds it: BatonOperation and BatonAccount.
	e := awaitDrill(ctx, t, c, account, "ExecutionStatus = 'Completed'")
	require.Equal(t, workflows.DrillWorkflowID(account), e.GetExecution().GetWorkflowId())
	require.Equal(t, string(workflows.PhaseDone), phaseOf(e))

	var text strings.Builder
	report.Drill(&text, res)
	t.Logf("the drill's report:\n%s", text.String())
	chaosRun{scenario: "drill: failover, reprotect, failback, reprotect as one workflow", outcome: string(res.Outcome),
		faults: "none", elapsed: elapsed, fencedMillis: res.FencedMillis, ackGap: traffic.LongestGap(gen.Acked()),
		acked: st.Acks, lost: rep.Lost,
		note: fmt.Sprintf("RTO %s (slower failover leg); %d canaries read back, 0 lost; ends home on stamp-a, protected",
			(time.Duration(res.RTOMillis) * time.Millisecond).Round(10*time.Millisecond), 3*canaries)}.log(t)
}

// TestScheduledDrills: `baton drill` of an account whose failover is
// running is skipped, saying so; `baton drill schedule --every` makes a
// Temporal Schedule whose drill runs and is found by its search
// attributes; while the maintenance switch of the account's stamp is on,
// the scheduled drills are skipped, naming it; a drill due inside a
// blocked window is skipped with the reason; pause, show and delete work.
func TestScheduledDrills(t *testing.T) {
	c := startCluster(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const account = "sched-acct"
	_, err := c.Provision(ctx, account, 4)
	require.NoError(t, err)

	// A failover of the account waits at its approval gate: a drill now is
	// skipped, and says why.
	fo, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{Account: account,
		ToStamp: StampB, RequestedBy: t.Name(), Approval: workflows.ApprovalPolicy{Required: true}})
	require.NoError(t, err)
	require.NoError(t, Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		return phase(ctx, c.Client, fo.GetID()) == workflows.PhaseApproval, nil
	}))
	out, err := baton(ctx, t, c, "drill", account, "--wait")
	require.NoError(t, err, out)
	t.Logf("baton drill %s --wait:\n%s", account, out)
	require.Contains(t, out, "drill of sched-acct: skipped")
	require.Contains(t, out, "workflow failover-sched-acct is running: a drill waits until nothing else moves the account")
	out, err = baton(ctx, t, c, "reject", account, "--reason", "not now")
	require.NoError(t, err, out)
	require.Error(t, fo.Get(ctx, nil), "the failover was rejected")

	// A drill every 5 s.
	out, err = baton(ctx, t, c, "drill", "schedule", account, "--every", "5s", "--canaries", "8")
	require.NoError(t, err, out)
	require.Contains(t, out, "drill schedule drill-schedule-sched-acct created")
	require.Contains(t, out, "drills of sched-acct every 5s: active")
	// The schedule's drills carry TemporalScheduledById (the manual drill
	// above does not).
	scheduled := fmt.Sprintf("TemporalScheduledById = '%s'", workflows.DrillScheduleID(account))
	done := awaitDrill(ctx, t, c, account, scheduled+" AND ExecutionStatus = 'Completed' AND BatonPhase = 'done'")
	require.True(t, strings.HasPrefix(done.GetExecution().GetWorkflowId(), workflows.DrillWorkflowID(account)+"-"),
		"a scheduled drill's ID is drill-ACCOUNT and the time it was due: %s", done.GetExecution().GetWorkflowId())
	res := drillResult(ctx, t, c, done.GetExecution().GetWorkflowId(), done.GetExecution().GetRunId())
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.Equal(t, workflows.DrillScheduleID(account), res.Schedule)
	require.Equal(t, 8, res.Canaries)
	require.Zero(t, res.CanariesLost)

	// The maintenance switch of stamp-a (the account's primary) holds the
	// scheduled drills: the next one is skipped, naming it, who and why.
	_, err = c.Loc.SetSwitch(ctx, location.SwitchRequest{Stamp: StampA, On: true, By: "oncall", Reason: "e2e patching"})
	require.NoError(t, err)
	since := func() string { return fmt.Sprintf("StartTime > '%s'", time.Now().UTC().Format(time.RFC3339Nano)) }
	held := awaitDrill(ctx, t, c, account, scheduled+" AND BatonPhase = 'skipped' AND "+since())
	res = drillResult(ctx, t, c, held.GetExecution().GetWorkflowId(), held.GetExecution().GetRunId())
	require.Equal(t, workflows.OutcomeSkipped, res.Outcome)
	require.Regexp(t, `^held by the maintenance switch of stamp-a \(on since \S+, set by oncall: e2e patching\): `+
		`a scheduled drill does not start while it is on$`, res.Why)
	require.Empty(t, res.Legs)
	_, err = c.Loc.SetSwitch(ctx, location.SwitchRequest{Stamp: StampA, On: false, By: "oncall"})
	require.NoError(t, err)

	// Paused, no drill runs; then the drills get a blocked window around
	// now (two hours from the start of this one, UTC) and the schedule
	// runs again: the next drill is skipped, naming the window.
	out, err = baton(ctx, t, c, "drill", "schedule", account, "--pause", "--reason", "e2e")
	require.NoError(t, err, out)
	require.Contains(t, out, "every 5s: PAUSED (paused by")
	require.NoError(t, Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		es, err := drills(ctx, c.Client, account, "ExecutionStatus = 'Running'")
		return err == nil && len(es) == 0, nil
	}))
	now := time.Now().UTC()
	window := fmt.Sprintf("%s %02d:00-%02d:00", now.Weekday().String()[:3], now.Hour(), (now.Hour()+2)%24)
	out, err = baton(ctx, t, c, "drill", "schedule", account, "--every", "5s", "--canaries", "8", "--blocked", window)
	require.NoError(t, err, out)
	require.Contains(t, out, "drill schedule drill-schedule-sched-acct set")
	require.Contains(t, out, "PAUSED", "changing the drills keeps the schedule paused")
	require.Contains(t, out, "blocked (UTC): "+window)
	unpaused := since()
	out, err = baton(ctx, t, c, "drill", "schedule", account, "--unpause")
	require.NoError(t, err, out)
	require.Contains(t, out, "every 5s: active")
	skipped := awaitDrill(ctx, t, c, account, scheduled+" AND BatonPhase = 'skipped' AND "+unpaused)
	res = drillResult(ctx, t, c, skipped.GetExecution().GetWorkflowId(), skipped.GetExecution().GetRunId())
	require.Equal(t, workflows.OutcomeSkipped, res.Outcome)
	require.Contains(t, res.Why, fmt.Sprintf("UTC) is inside the blocked window %q", window))
	require.Empty(t, res.Legs)

	out, err = baton(ctx, t, c, "drill", "schedule", account)
	require.NoError(t, err, out)
	t.Logf("baton drill schedule %s:\n%s", account, out)
	require.Contains(t, out, "blocked (UTC): "+window)
	require.Contains(t, out, ": completed, done")
	require.Contains(t, out, ": completed, skipped")
	out, err = baton(ctx, t, c, "drill", "schedule", account, "--delete")
	require.NoError(t, err, out)
	require.Contains(t, out, "drill schedule drill-schedule-sched-acct deleted")
	out, err = baton(ctx, t, c, "drill", "schedule", account)
	require.Error(t, err, out)
	require.Contains(t, out, "baton: sched-acct has no drill schedule (drill-schedule-sched-acct): create one with "+
		"baton drill schedule sched-acct --every 168h")
}
