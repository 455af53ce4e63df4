package report

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/workflows"
)

func reprotectReport(res workflows.ReprotectResult) string {
	var b strings.Builder
	Reprotect(&b, res)
	return b.String()
}

// TestReprotectReportStatesWhatTheLedgerMissed: after an unplanned
// failover the recovered writes come with the ledger's figure and the
// difference; every figure the reprotect produced is there.
func TestReprotectReportStatesWhatTheLedgerMissed(t *testing.T) {
	out := reprotectReport(workflows.ReprotectResult{
		Account: "acct-1", Primary: "stamp-b", Secondary: "stamp-a", Epoch: 2, Partitions: 4,
		Outcome: workflows.OutcomeCompleted, Reason: "stamp-a is back", RequestedBy: "alice",
		Trigger: workflows.TriggerManual, Recovered: []int{30, 0, 6, 1}, RecoveredOps: 37, RestoredKeys: 25,
		LastFailoverMode: "unplanned", LedgerLostOps: 30, LedgerUnseenEstimate: 9, LedgerMissedOps: 7,
		LagOps: 12, TotalMillis: 4_200, CatchUpMillis: 1_100,
	})
	want := `reprotect of acct-1: primary stamp-b, secondary stamp-a (the old primary), epoch 2 (4 partitions): completed
  reason: "stamp-a is back", requested by "alice" (trigger manual)
  recovered writes: 37 writes on stamp-a past what stamp-b replayed, set aside (baton recovered acct-1 lists them)
    partition 0: 30 writes
    partition 2: 6 writes
    partition 3: 1 write
    the failover's ledger (unplanned) saw 30 of 37; 7 written after the last contact (its estimate was ~9)
  restored: 25 keys on stamp-a rewound to stamp-b's values
  lag at the end: 12 ops written on stamp-b not yet replayed on stamp-a
  total time: 4.2s (catch-up 1.1s)
`
	require.Equal(t, want, out)
}

func TestReprotectReportCases(t *testing.T) {
	base := workflows.ReprotectResult{Account: "a", Primary: "stamp-b", Secondary: "stamp-a", Epoch: 3, Partitions: 1,
		Outcome: workflows.OutcomeCompleted, TotalMillis: 800, CatchUpMillis: 300}
	tests := []struct {
		name      string
		mutate    func(*workflows.ReprotectResult)
		want, not []string
	}{
		{"planned: nothing diverged", func(r *workflows.ReprotectResult) {
			r.Recovered, r.LastFailoverMode = []int{0}, "planned"
		}, []string{
			"(1 partition): completed",
			"recovered writes: none (stamp-a held nothing past what stamp-b replayed)",
			"the last failover was planned: nothing was lost, nothing diverged",
			"lag at the end: none (stamp-a had replayed all stamp-b wrote)",
			"total time: 800ms (catch-up 300ms)",
		}, []string{"restored", "seeded", "reason"}},
		{"ledger saw everything", func(r *workflows.ReprotectResult) {
			r.Recovered, r.RecoveredOps, r.LedgerLostOps, r.LastFailoverMode = []int{1}, 1, 1, "unplanned"
			r.RestoredKeys = 1
		}, []string{
			"recovered writes: 1 write on stamp-a",
			"partition 0: 1 write\n",
			"the failover's ledger (unplanned) saw all 1 write: none written after the last contact",
			"restored: 1 key on stamp-a",
		}, nil},
		{"wiped stamp seeded", func(r *workflows.ReprotectResult) {
			r.Partitions, r.Seeded, r.SeededBytes = 4, []int{0, 1, 2, 3}, 3*1024*1024/2
			r.LastFailoverMode, r.LedgerLostOps = "unplanned", 5
		}, []string{
			"recovered writes: none (stamp-a held no data of the account)",
			"the failover's ledger (unplanned) counted 5 writes lost: they went with stamp-a's data",
			"seeded: 4 partitions (0-3) from a snapshot of stamp-b, 1.5 MiB",
		}, nil},
		{"some partitions seeded", func(r *workflows.ReprotectResult) {
			r.Partitions, r.Recovered, r.Seeded, r.SeededBytes = 12, make([]int, 12), []int{9, 0, 1, 2, 7, 10}, 1
		}, []string{"seeded: 6 partitions (0-2, 7, 9-10) from a snapshot of stamp-b, 1 byte"}, nil},
		{"already protected", func(r *workflows.ReprotectResult) {
			r.AlreadyProtected, r.CatchUpMillis = true, 0
		}, []string{"already protected: stamp-b replicates to stamp-a; nothing to do"}, []string{"lag", "recovered"}},
		{"alerts", func(r *workflows.ReprotectResult) {
			r.AlertsSeen, r.Trigger, r.Reason, r.RequestedBy = 1, workflows.TriggerAlert, "alert StampRecovered firing", "alertmanager"
		}, []string{"(trigger alert)", "alerts: 1 alert recorded"}, nil},
		{"failed catching up", func(r *workflows.ReprotectResult) {
			r.Outcome, r.Recovered, r.LagOps = workflows.OutcomeFailed, []int{0}, 1
		}, []string{": failed", "lag at the end: 1 op written on stamp-b"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := base
			tt.mutate(&res)
			out := reprotectReport(res)
			for _, w := range tt.want {
				require.Contains(t, out, w)
			}
			for _, n := range tt.not {
				require.NotContains(t, out, n)
			}
		})
	}
}

// TestRefusedReprotectShowsNoEmptyFields: refused before its precheck
// answered, the report has the headline and the reason only.
func TestRefusedReprotectShowsNoEmptyFields(t *testing.T) {
	out := reprotectReport(workflows.ReprotectResult{Account: "acct-x", Outcome: workflows.OutcomeRefused,
		Reason: "manual reprotect", RequestedBy: "ops", TotalMillis: 40})
	require.Equal(t, "reprotect of acct-x: refused\n  reason: \"manual reprotect\", requested by \"ops\"\n  total time: 40ms\n", out)
}

func TestReprotectReportListsAtMostTenPartitions(t *testing.T) {
	counts := make([]int, 15)
	for i := range counts {
		counts[i] = i + 1
	}
	out := reprotectReport(workflows.ReprotectResult{Account: "a", Primary: "b", Secondary: "c", Partitions: 15,
		Outcome: workflows.OutcomeCompleted, Recovered: counts, RecoveredOps: 120})
	require.Contains(t, out, "    partition 14: 15 writes\n")
	require.NotContains(t, out, "partition 4:")
	require.Contains(t, out, "... and 5 more partitions")
}
