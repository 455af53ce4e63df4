package testsuite

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// evacuationProgress asks a running evacuation how far it is.
func evacuationProgress(ctx context.Context, c *Cluster, stampName string) (workflows.EvacuationProgress, error) {
	var p workflows.EvacuationProgress
	v, err := c.Client.QueryWorkflow(ctx, workflows.EvacuationWorkflowID(stampName), "", workflows.QueryProgress)
	if err != nil {
		return p, err
	}
	return p, v.Get(&p)
}

// updateEvacuation sends an update to the stamp's evacuation and waits for
// its answer.
func updateEvacuation(ctx context.Context, t *testing.T, c *Cluster, stampName, name string, arg any) {
	t.Helper()
	h, err := c.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflows.EvacuationWorkflowID(stampName), UpdateName: name, Args: []any{arg},
		WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err, "update %s", name)
	require.NoError(t, h.Get(ctx, nil), "update %s", name)
}

// awaitProgress polls the evacuation's progress until cond holds.
func awaitProgress(ctx context.Context, t *testing.T, c *Cluster, what string,
	cond func(workflows.EvacuationProgress) bool) workflows.EvacuationProgress {
	t.Helper()
	var last workflows.EvacuationProgress
	err := Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		p, err := evacuationProgress(ctx, c, StampA)
		if err != nil {
			return false, nil // a restart in progress
		}
		last = p
		return cond(p), nil
	})
	require.NoError(t, err, "waiting for %s; last progress %+v", what, last)
	return last
}

// TestStampEvacuation: 50 accounts in 3 tiers on stamp-a under live
// traffic; one of them cannot replay on stamp-b; another is already being
// failed over by hand (held at its approval gate) when the evacuation
// starts. The evacuation pauses, resumes, gets a bigger K, loses its worker
// to SIGKILL and its Temporal server to a restart, and still moves the
// other 49 accounts exactly once each, in tier order, attaching to the
// hand-started failover rather than starting a second; the faulty account
// is reported rolled back with its reason after its attempts; the audit of
// every account finds nothing lost.
func TestStampEvacuation(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const n = 50
	names := make([]string, n)
	gens := make([]*traffic.Generator, n)
	for i := range n {
		names[i] = fmt.Sprintf("evac-%02d", i)
		_, err := c.Provision(ctx, names[i], 2+i%3)
		require.NoError(t, err)
		_, err = c.Loc.SetLabels(ctx, names[i], map[string]string{location.LabelTier: fmt.Sprint(i % 3)})
		require.NoError(t, err)
		gens[i] = traffic.New(traffic.Config{Location: c.Loc, Account: names[i], Rate: 10, Workers: 1})
		require.NoError(t, gens[i].Start(ctx))
		defer gens[i].Stop()
	}
	faulty, byHand := names[7], names[8] // tiers 1 and 2
	// Every fence takes 300 ms, so accounts overlap and K is visible; the
	// faulty account's replay on stamp-b always fails.
	require.NoError(t, c.StampClient(StampA).AddFault(ctx, stamp.Fault{Scope: "control", Op: "fence", LatencyMillis: 300}))
	require.NoError(t, c.StampClient(StampB).AddFault(ctx, stamp.Fault{Scope: "control", Account: faulty,
		Op: "flush-replay", ErrorRate: 1}))
	hand, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: byHand, FromStamp: StampA, ToStamp: StampB, RequestedBy: "someone else",
		Approval: workflows.ApprovalPolicy{Required: true}})
	require.NoError(t, err)

	run, err := launch.Evacuation(ctx, c.Client, workflows.TaskQueue, workflows.EvacuationRequest{
		Stamp: StampA, Reason: "drain for maintenance", RequestedBy: t.Name(), MaxInFlight: 3, Attempts: 2,
		RetryDelay: time.Second, Options: workflows.FailoverOptions{FlushDeadline: 4 * time.Second,
			HeartbeatTimeout: 2 * time.Second}})
	require.NoError(t, err)

	// Pause: what runs finishes, nothing new starts.
	awaitProgress(ctx, t, c, "5 accounts done", func(p workflows.EvacuationProgress) bool { return p.Done >= 5 })
	updateEvacuation(ctx, t, c, StampA, workflows.UpdatePause, workflows.Decision{By: t.Name(), Reason: "look"})
	paused := awaitProgress(ctx, t, c, "nothing running while paused",
		func(p workflows.EvacuationProgress) bool { return p.Running == 0 && p.Paused != nil })
	// Time passes (the traffic goes on) and nothing starts.
	acks := gens[0].AckCount()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gens[0].AckCount() >= acks+10, nil }))
	still, err := evacuationProgress(ctx, c, StampA)
	require.NoError(t, err)
	require.Equal(t, paused.Done+paused.Failed, still.Done+still.Failed, "nothing ended while paused")
	require.Zero(t, still.Running, "nothing started while paused")
	// Whatever starts from here may run under the new K.
	raised := time.Now()
	updateEvacuation(ctx, t, c, StampA, workflows.UpdateResume, workflows.Decision{By: t.Name()})
	updateEvacuation(ctx, t, c, StampA, workflows.UpdateLimits, workflows.EvacuationLimits{By: t.Name(), MaxInFlight: 6})

	// The worker dies mid-run, then the Temporal server restarts.
	awaitProgress(ctx, t, c, "20 accounts through", func(p workflows.EvacuationProgress) bool { return p.Done >= 20 })
	c.Worker.Kill()
	require.NoError(t, c.Worker.Restart())
	awaitProgress(ctx, t, c, "30 accounts through", func(p workflows.EvacuationProgress) bool { return p.Done >= 30 })
	c.Temporal.Kill()
	require.NoError(t, c.Temporal.Restart())
	require.NoError(t, c.Temporal.WaitReady(ctx))

	// The hand-started failover is approved once the evacuation waits for it.
	awaitProgress(ctx, t, c, "the evacuation waiting on the hand-started failover",
		func(p workflows.EvacuationProgress) bool {
			return slices.ContainsFunc(p.SlowestRunning, func(a workflows.AccountTiming) bool { return a.Account == byHand })
		})
	h, err := c.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: hand.GetID(),
		UpdateName: workflows.UpdateApprove, Args: []any{workflows.Decision{By: "someone else"}},
		WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))

	var res workflows.EvacuationResult
	err = run.Get(ctx, &res)
	require.Error(t, err, "one account could not move")
	require.True(t, isEvacuationIncomplete(err), "%v", err)
	res = evacuationReport(t, err)
	recordHistories(t, c, map[string]string{"stamp_evacuation": run.GetID()})

	t.Logf("evacuation: %d ms, %d runs, outcomes %v, pauses %d, changes %v", res.TotalMillis, res.Runs, res.ByOutcome,
		len(res.Pauses), res.Changes)
	for _, e := range res.Table.Errors {
		t.Logf("%s: %s (attempts %d)", res.Table.Account[e.Row], e.Error, res.Table.Attempts[e.Row])
	}
	require.Equal(t, n, res.Table.Len())
	require.Equal(t, []workflows.OutcomeCount{{Outcome: workflows.OutcomeCompleted, Accounts: n - 1},
		{Outcome: workflows.OutcomeRolledBack, Accounts: 1}}, res.ByOutcome)
	row := slices.Index(res.Table.Account, faulty)
	require.Equal(t, 2, res.Table.Attempts[row])
	require.Contains(t, res.Table.ErrorOf(row), "flush deadline")
	handRow := slices.Index(res.Table.Account, byHand)
	require.Contains(t, res.Table.Attached, handRow, "the evacuation attached to the failover started by hand")

	// Every account but the faulty one moved exactly once (epoch 1 -> 2),
	// and its writes are all there.
	for i, name := range names {
		a, err := c.Loc.Lookup(ctx, name)
		require.NoError(t, err)
		if name == faulty {
			require.Equal(t, StampA, a.Primary)
			require.EqualValues(t, 1, a.Epoch)
		} else {
			require.Equal(t, StampB, a.Primary, name)
			require.EqualValues(t, 2, a.Epoch, "%s moved once", name)
		}
		gens[i].Stop()
		rep, err := traffic.Audit(ctx, c.Loc, name, gens[i].Acked(), traffic.AuditConfig{})
		require.NoError(t, err)
		require.True(t, rep.OK(), "%s: %s", name, rep)
	}
	checkTierOrder(t, res, faulty, byHand)
	checkMaxInFlight(ctx, t, c, names, raised, byHand)
}

func isEvacuationIncomplete(err error) bool {
	res, ok := workflows.EvacuationOutcomeOf(err)
	return ok && res.Outcome == workflows.OutcomeIncomplete
}

func evacuationReport(t *testing.T, err error) workflows.EvacuationResult {
	t.Helper()
	res, ok := workflows.EvacuationOutcomeOf(err)
	require.True(t, ok, "%v", err)
	return res
}

// checkTierOrder: the evacuation started every account of a tier no later
// than any account of a later tier (its own record of when it started each;
// several start in one workflow task, and the server may start those
// children in any order). The faulty account's row holds its retry and the
// hand-started failover's the moment it was attached: both aside.
func checkTierOrder(t *testing.T, res workflows.EvacuationResult, skip ...string) {
	t.Helper()
	last, first := map[int]int64{}, map[int]int64{}
	for i, name := range res.Table.Account {
		if slices.Contains(skip, name) {
			continue
		}
		at, tier := res.Table.StartedAfterMillis[i], res.Table.Tier[i]
		last[tier] = max(last[tier], at)
		if f, ok := first[tier]; !ok || at < f {
			first[tier] = at
		}
	}
	for tier := 1; tier < 3; tier++ {
		require.GreaterOrEqual(t, first[tier], last[tier-1],
			"tier %d started at +%d ms, before tier %d's last start at +%d ms", tier, first[tier], tier-1, last[tier-1])
	}
}

// checkMaxInFlight: from the failovers' start and close times, at most 3
// ran at once before K was raised and at most 6 after, and more than 3
// did.
func checkMaxInFlight(ctx context.Context, t *testing.T, c *Cluster, names []string, raised time.Time, skip string) {
	t.Helper()
	type span struct{ start, end time.Time }
	var spans []span
	for _, name := range names {
		if name == skip {
			continue
		}
		d, err := c.Client.DescribeWorkflowExecution(ctx, workflows.FailoverWorkflowID(name), "")
		require.NoError(t, err)
		info := d.GetWorkflowExecutionInfo()
		spans = append(spans, span{info.GetStartTime().AsTime(), info.GetCloseTime().AsTime()})
	}
	before, after := 0, 0
	for _, s := range spans {
		overlap := 0
		for _, o := range spans {
			if !o.start.After(s.start) && o.end.After(s.start) {
				overlap++
			}
		}
		if s.start.Before(raised) {
			before = max(before, overlap)
		} else {
			after = max(after, overlap)
		}
	}
	t.Logf("at most %d failovers at once before K was raised to 6, %d after", before, after)
	require.LessOrEqual(t, before, 3)
	require.LessOrEqual(t, after, 6)
	require.Greater(t, after, 3, "K raised to 6 lets more than 3 run at once")
}
