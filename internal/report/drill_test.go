package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/workflows"
)

func drillLegs() []workflows.DrillLeg {
	return []workflows.DrillLeg{
		{Leg: workflows.PhaseDrillFailover, From: "stamp-a", To: "stamp-b", WorkflowID: "failover-acct-1",
			Outcome: workflows.OutcomeCompleted, Millis: 807, FencedMillis: 278, Canaries: 32},
		{Leg: workflows.PhaseDrillReprotect, From: "stamp-a", To: "stamp-b", WorkflowID: "reprotect-acct-1",
			Outcome: workflows.OutcomeCompleted, Millis: 410, LagOps: 3},
		{Leg: workflows.PhaseDrillFailback, From: "stamp-b", To: "stamp-a", WorkflowID: "failover-acct-1",
			Outcome: workflows.OutcomeCompleted, Millis: 760, FencedMillis: 251, Canaries: 64},
		{Leg: workflows.PhaseDrillFinalReprotect, From: "stamp-b", To: "stamp-a", WorkflowID: "reprotect-acct-1",
			Outcome: workflows.OutcomeCompleted, Millis: 380},
	}
}

// TestDrillReport: a completed drill leads with its RTO, fenced window and
// canaries, then one line a leg; a skipped one says why and nothing more; a
// failed one names the leg, says where the account is and what to do.
func TestDrillReport(t *testing.T) {
	at := time.Date(2025, 1, 4, 12, 0, 0, 0, time.UTC)
	res := workflows.DrillResult{Account: "acct-1", Reason: "weekly", RequestedBy: "alice", Outcome: workflows.OutcomeCompleted,
		Home: "stamp-a", Away: "stamp-b", Partitions: 8, LagOpsAtStart: 12, LagBudgetOps: 1000, Legs: drillLegs(),
		Canaries: 32, RTOMillis: 807, FencedMillis: 278, StartedAt: at, TotalMillis: 2400}
	var b bytes.Buffer
	Drill(&b, res)
	require.Equal(t, strings.Join([]string{
		"drill of acct-1: completed in 2.4s: RTO 807ms, fenced 278ms, 64 canary keys written and read back, 0 lost",
		`  reason: "weekly", requested by "alice", at 2025-01-04T12:00:00Z`,
		"  home stamp-a, away stamp-b (8 partitions); replication lag at the start 12 ops (budget 1000)",
		"  1. failover         stamp-a -> stamp-b: completed in 807ms (RTO), fenced 278ms, canaries 32 read back, 0 lost [failover-acct-1]",
		"  2. reprotect        stamp-a replicates stamp-b: completed in 410ms, lag at the end 3 ops [reprotect-acct-1]",
		"  3. failback         stamp-b -> stamp-a: completed in 760ms (RTO), fenced 251ms, canaries 64 read back, 0 lost [failover-acct-1]",
		"  4. final-reprotect  stamp-b replicates stamp-a: completed in 380ms, lag at the end 0 ops [reprotect-acct-1]",
		"",
	}, "\n"), b.String())

	b.Reset()
	Drill(&b, workflows.DrillResult{Account: "acct-1", Reason: "scheduled drill", Schedule: "drill-schedule-acct-1",
		Outcome: workflows.OutcomeSkipped, Why: `now (Sat 03:00 UTC) is inside the blocked window "Sat 00:00-06:00"`, StartedAt: at})
	require.Equal(t, strings.Join([]string{
		"drill of acct-1: skipped",
		`  reason: "scheduled drill", started by schedule drill-schedule-acct-1, at 2025-01-04T12:00:00Z`,
		`  skipped: now (Sat 03:00 UTC) is inside the blocked window "Sat 00:00-06:00"`,
		"",
	}, "\n"), b.String())

	b.Reset()
	failed := res
	failed.Outcome, failed.FailedLeg, failed.TotalMillis = workflows.OutcomeFailed, workflows.PhaseDrillReprotect, 1500
	failed.Legs = failed.Legs[:2]
	failed.Legs[1].Outcome, failed.Legs[1].Error = workflows.OutcomeFailed, "the reprotect: stamp-a did not catch up"
	failed.Why = "drill of acct-1 failed at its reprotect leg: the reprotect: stamp-a did not catch up"
	failed.Next = "acct-1 is primary on stamp-b, not protected: reprotect it (baton reprotect acct-1)"
	Drill(&b, failed)
	out := b.String()
	require.True(t, strings.HasPrefix(out, "drill of acct-1: failed at its reprotect leg after 1.5s\n"), out)
	require.Contains(t, out, "  failed: drill of acct-1 failed at its reprotect leg: the reprotect: stamp-a did not catch up\n")
	require.Contains(t, out, "  next: acct-1 is primary on stamp-b, not protected: reprotect it (baton reprotect acct-1)\n")
	require.Contains(t, out, "  2. reprotect        stamp-a replicates stamp-b: failed in 410ms, lag at the end 3 ops [reprotect-acct-1]\n"+
		"     error: the reprotect: stamp-a did not catch up\n")
	require.NotContains(t, out, "3. failback")
}
