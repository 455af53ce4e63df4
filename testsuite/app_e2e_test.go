package testsuite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/planner"
	"github.com/batonhq/baton/workflows"
)

// shopPlan loads examples/plans/shop.yaml against this cluster's stamps,
// failing over account.
func shopPlan(t *testing.T, c *Cluster, account string) planner.Plan {
	t.Helper()
	vars := map[string]string{"STAMP_A_URL": c.StampURLs[StampA], "STAMP_B_URL": c.StampURLs[StampB], "ACCOUNT": account}
	p, err := planner.ParseFile("../examples/plans/shop.yaml", func(k string) (string, bool) { v, ok := vars[k]; return v, ok })
	require.NoError(t, err)
	return p
}

// TestAppFailoverEndToEnd fails the 13-component shop of
// examples/plans/shop.yaml over on a real Temporal server with the worker
// process, including a storage-account failover between the reference
// stamps, once per strategy: the overlapped schedule of US 8938639 and the
// two baselines (sequential; barrier groups), each with its own account. It
// checks that the executed order obeys each strategy's rules, that the
// account moved, and that its failover ran as a child under the account's
// own workflow ID; it logs the measured times (BENCHMARKS.md).
func TestAppFailoverEndToEnd(t *testing.T) {
	c := startCluster(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	var table strings.Builder
	fmt.Fprintf(&table, "%-10s %10s %10s %14s\n", "strategy", "measured", "predicted", "critical path")
	for _, strategy := range planner.Strategies {
		account := "shop-blobs-" + string(strategy)
		_, err := c.Provision(ctx, account, 8)
		require.NoError(t, err)
		p := shopPlan(t, c, account)
		require.GreaterOrEqual(t, len(p.Components), 8)
		p.Strategy = strategy
		g, err := planner.Compile(p)
		require.NoError(t, err)

		run, err := launch.AppFailover(ctx, c.Client, workflows.TaskQueue,
			workflows.AppFailoverRequest{Plan: p, Reason: "e2e", RequestedBy: t.Name()})
		require.NoError(t, err)
		require.Equal(t, "app-failover-shop", run.GetID())
		var res workflows.AppFailoverResult
		require.NoError(t, run.Get(ctx, &res), "strategy %s", strategy)

		require.Equal(t, workflows.AppOutcomeCompleted, res.Outcome)
		require.Len(t, res.Steps, 26)
		for _, s := range res.Steps {
			require.Equal(t, workflows.AppStepDone, s.Status, "%s: %s", s.Step(), s.Error)
		}
		require.NoError(t, g.CheckSchedule(res.Slots()), "strategy %s: the executed order breaks a rule", strategy)

		acct, err := c.Loc.Lookup(ctx, account)
		require.NoError(t, err)
		require.Equal(t, StampB, acct.Primary, "the blob store's account moved")
		desc, err := c.Client.DescribeWorkflowExecution(ctx, workflows.FailoverWorkflowID(account), "")
		require.NoError(t, err)
		info := desc.GetWorkflowExecutionInfo()
		require.Equal(t, enums.WORKFLOW_EXECUTION_STATUS_COMPLETED, info.GetStatus())
		require.Equal(t, run.GetID(), info.GetParentExecution().GetWorkflowId(), "the account failover is the plan's child")

		fmt.Fprintf(&table, "%-10s %10s %10s %14s\n", strategy, report.FormatDuration(time.Duration(res.TotalMillis)*time.Millisecond),
			report.FormatDuration(time.Duration(res.PredictedMillis)*time.Millisecond),
			report.FormatDuration(time.Duration(res.CriticalPathMillis)*time.Millisecond))
		var rep strings.Builder
		report.AppFailover(&rep, res, 64)
		t.Logf("strategy %s:\n%s", strategy, rep.String())
		if strategy == planner.StrategyOverlap {
			recordAppHistory(t, c, run.GetID(), run.GetRunID())
			for _, s := range res.Steps {
				if s.Phase == planner.PhaseOnline && s.Component == "blob-store" {
					t.Logf("blob-store account failover: %s in %d ms", s.Output, s.Millis)
				}
			}
		}
	}
	t.Logf("shop plan (13 components, 26 steps), measured on a real Temporal dev server:\n%s", table.String())
}

// TestAppFailoverAbortEndToEnd aborts the patent's example on a real server
// while B and C are going offline: they are stopped, nothing comes online
// on the target, and B, C, then A are restored on the source.
func TestAppFailoverAbortEndToEnd(t *testing.T) {
	c := startCluster(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	p, err := planner.ParseFile("../examples/plans/patent.yaml", nil)
	require.NoError(t, err)
	p.Name = "patent-abort"
	for i := range p.Components {
		if p.Components[i].Name != "A" {
			p.Components[i].Offline.Wait = planner.DurPtr(time.Hour) // a drain that would never end
		}
		p.Components[i].Restore.Wait = planner.DurPtr(100 * time.Millisecond)
	}
	run, err := launch.AppFailover(ctx, c.Client, workflows.TaskQueue, workflows.AppFailoverRequest{Plan: p, Reason: "e2e", RequestedBy: t.Name()})
	require.NoError(t, err)

	require.NoError(t, Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		v, err := c.Client.QueryWorkflow(ctx, run.GetID(), "", workflows.QueryProgress)
		if err != nil {
			return false, err
		}
		var prog workflows.AppProgress
		if err := v.Get(&prog); err != nil {
			return false, err
		}
		return len(prog.Running) == 2, nil
	}))
	h, err := c.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), UpdateName: workflows.UpdateAbort,
		Args: []any{workflows.Decision{By: "e2e", Reason: "drill over"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))

	err = run.Get(ctx, nil)
	require.ErrorContains(t, err, "aborted by e2e (drill over); back online on the source: [B C A]")
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	var res workflows.AppFailoverResult
	require.NoError(t, ae.Details(&res))
	require.Equal(t, workflows.AppOutcomeAborted, res.Outcome)
	end := map[string]time.Time{}
	for _, s := range res.Steps {
		switch s.Phase {
		case planner.PhaseOnline:
			require.Equal(t, workflows.AppStepPending, s.Status, "%s ran after the abort", s.Step())
		case planner.PhaseRestore:
			require.Equal(t, workflows.AppStepDone, s.Status)
			end[s.Component] = s.EndedAt
			if s.Component == "A" {
				require.False(t, s.StartedAt.Before(end["B"]), "A restored before B")
				require.False(t, s.StartedAt.Before(end["C"]), "A restored before C")
			}
		}
	}
	require.Len(t, end, 3)
}

// recordAppHistory writes a finished AppFailover's history to
// workflows/testdata/app_failover.json when BATON_RECORD_HISTORY=1, for the
// replay test (workflows/app_failover_replay_test.go).
func recordAppHistory(t *testing.T, c *Cluster, id, runID string) {
	t.Helper()
	if os.Getenv("BATON_RECORD_HISTORY") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	it := c.Client.GetWorkflowHistory(ctx, id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var h historypb.History
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		h.Events = append(h.Events, ev)
	}
	b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
	require.NoError(t, err)
	path := filepath.Join("..", "workflows", "testdata", "app_failover.json")
	require.NoError(t, os.WriteFile(path, b, 0o644))
	t.Logf("recorded %d events of %s in %s", len(h.Events), id, path)
}
