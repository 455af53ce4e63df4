package report

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/workflows"
)

func evacuationReport(res workflows.EvacuationResult, rows int) string {
	var b strings.Builder
	Evacuation(&b, res, rows)
	return b.String()
}

// addRow appends an account's row, as the workflow records it.
func addRow(t *workflows.EvacuationTable, acct string, tier, parts int, to string, o workflows.Outcome, attempts int,
	after, took, unavail int64, lost uint64, errText string) {
	row := t.Len()
	t.Account, t.Tier, t.Partitions, t.To = append(t.Account, acct), append(t.Tier, tier),
		append(t.Partitions, parts), append(t.To, to)
	t.Outcome, t.Attempts = append(t.Outcome, o), append(t.Attempts, attempts)
	t.StartedAfterMillis, t.Millis = append(t.StartedAfterMillis, after), append(t.Millis, took)
	t.UnavailableMillis, t.LostOps = append(t.UnavailableMillis, unavail), append(t.LostOps, lost)
	if errText != "" {
		t.Errors = append(t.Errors, workflows.AccountIssue{Row: row, Error: errText})
	}
}

var at0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// TestEvacuationReportSummaryAndTable: every figure of a planned
// evacuation that left an account behind, then the table of all accounts
// in the order they ended.
func TestEvacuationReportSummaryAndTable(t *testing.T) {
	res := workflows.EvacuationResult{
		Stamp: "stamp-a", Mode: workflows.ModePlanned, Trigger: workflows.TriggerManual,
		Reason: "rack 7 power work", RequestedBy: "alice", Outcome: workflows.OutcomeIncomplete,
		Pauses: []workflows.Decision{
			{By: "bob", Reason: "look at acct-3", At: at0.Add(2 * time.Second)},
			{By: "bob", Reason: "fine", At: at0.Add(5 * time.Second)},
		},
		Changes:     []string{"limits set by bob at 10:00:06: at most 8 in flight, 0 per destination"},
		MaxInFlight: 8, Attempts: 2, OnStamp: 4, Partitions: 40,
		ByOutcome: []workflows.OutcomeCount{{Outcome: workflows.OutcomeCompleted, Accounts: 2},
			{Outcome: workflows.OutcomeMoved, Accounts: 1}, {Outcome: workflows.OutcomeRolledBack, Accounts: 1}},
		Tiers: []workflows.TierCount{{Tier: 0, Done: 2}, {Tier: 1, Done: 1, Failed: 1}},
		Slowest: []workflows.AccountTiming{{Account: "acct-2", Tier: 1, Millis: 2_400},
			{Account: "acct-1", Tier: 0, Millis: 900}},
		MaxUnavailableMillis: 310, TotalMillis: 12_500, Runs: 2,
	}
	tb := &res.Table
	addRow(tb, "acct-1", 0, 8, "stamp-b", workflows.OutcomeCompleted, 1, 12, 900, 120, 0, "")
	addRow(tb, "acct-4", 0, 16, "stamp-c", workflows.OutcomeMoved, 1, 0, 0, 0, 0, "")
	addRow(tb, "acct-2", 1, 8, "stamp-b", workflows.OutcomeCompleted, 1, 30, 2_400, 310, 0, "")
	addRow(tb, "acct-3", 1, 8, "stamp-c", workflows.OutcomeRolledBack, 2, 10_200, 2_100, 0, 0,
		"flush deadline 2s passed: partition 3 at flush-replay:\ninjected fault (after 2 attempts)")
	tb.Attached = []int{2}
	want := `planned evacuation of stamp-a: incomplete: 3 of 4 accounts moved, 1 left on stamp-a
  reason: "rack 7 power work", requested by "alice" (trigger manual)
  approval: not required (planned, started by hand)
  paused by bob at 2026-12-02T10:00:02Z: look at acct-3
  resumed by bob at 2026-12-02T10:00:05Z: fine
  by outcome: completed 2, moved 1, rolled-back 1
  by tier: tier 0: 2 moved; tier 1: 1 moved, 1 left
  admission: at most 8 in flight, 2 attempts per account
    limits set by bob at 10:00:06: at most 8 in flight, 0 per destination
  runs: 2 (it continued as new 1 time, to keep each history bounded)
  total time: 12.5s (40 partitions in the accounts it went through)
  slowest accounts: acct-2 (tier 1) 2.4s, acct-1 (tier 0) 900ms
  longest write-unavailability window: 310ms (acct-2, fence to promote)
  4 accounts, in the order they ended:
    account  tier  partitions  to       outcome      attempts  started after  took   unavailable  attached  error
    acct-1   0     8           stamp-b  completed    1         12ms           900ms  120ms
    acct-4   0     16          stamp-c  moved        1         -              -      -
    acct-2   1     8           stamp-b  completed    1         30ms           2.4s   310ms        yes
    acct-3   1     8           stamp-c  rolled-back  2         10.2s          2.1s   -                      flush deadline 2s passed: partition 3 at flush-replay: injected fault (after 2 attempts)
  (started after: from the evacuation's start, its last attempt; unavailable: fence to promote)
`
	require.Equal(t, want, evacuationReport(res, 20))
}

// TestEvacuationReportTenThousandAccounts: past --rows, the table lists
// the accounts left on the stamp and counts the rest; --rows 0 lists all.
func TestEvacuationReportTenThousandAccounts(t *testing.T) {
	res := workflows.EvacuationResult{Stamp: "stamp-a", Mode: workflows.ModePlanned,
		Trigger: workflows.TriggerManual, Outcome: workflows.OutcomeIncomplete, MaxInFlight: 200, OnStamp: 10_000}
	for i := range 10_000 {
		o, e := workflows.OutcomeCompleted, ""
		if i%1000 == 7 {
			o, e = workflows.OutcomeRefused, fmt.Sprintf("precheck refused failover of acct-%05d: lag", i)
		}
		addRow(&res.Table, fmt.Sprintf("acct-%05d", i), i%4, 1, "stamp-b", o, 1, int64(i), 200, 50, 0, e)
	}
	out := evacuationReport(res, 20)
	require.Contains(t, out, "planned evacuation of stamp-a: incomplete: 9990 of 10000 accounts moved, 10 left on stamp-a\n")
	require.Contains(t, out, "  the 10 accounts left on stamp-a (--rows 0 lists every account):\n")
	require.Contains(t, out, "    ... and 9990 moved, not listed\n")
	require.Equal(t, 10, strings.Count(out, "  refused  1"), out)
	require.NotContains(t, out, "    acct-00000 ")
	require.Less(t, strings.Count(out, "\n"), 30)

	// Fewer rows than failures: the first ones, and counts.
	out = evacuationReport(res, 4)
	require.Contains(t, out, "  the first 4 of the 10 accounts left on stamp-a (--rows 0 lists every account):\n")
	require.Contains(t, out, "    ... and 6 more left on stamp-a and 9990 moved, not listed\n")
	require.Equal(t, 4, strings.Count(out, "  refused  1"))

	// All.
	out = evacuationReport(res, 0)
	require.Contains(t, out, "  10000 accounts, in the order they ended:\n")
	require.Contains(t, out, "    acct-00000 ")
	require.Contains(t, out, "    acct-09999 ")
	require.NotContains(t, out, "not listed")

	// Nothing left: no rows past --rows, a pointer to them.
	for i := range res.Table.Outcome {
		res.Table.Outcome[i] = workflows.OutcomeCompleted
	}
	res.Table.Errors, res.Outcome = nil, workflows.OutcomeCompleted
	out = evacuationReport(res, 20)
	require.Contains(t, out, "  all 10000 accounts moved; --rows 0 lists them\n")
	require.NotContains(t, out, "    acct-0")
}

// TestEvacuationReportCases: the lines that depend on how it went.
func TestEvacuationReportCases(t *testing.T) {
	base := func() workflows.EvacuationResult {
		return workflows.EvacuationResult{Stamp: "stamp-a", Mode: workflows.ModePlanned,
			Trigger: workflows.TriggerManual, Outcome: workflows.OutcomeCompleted, MaxInFlight: 20, Attempts: 3}
	}
	tests := []struct {
		name      string
		res       func() workflows.EvacuationResult
		want, not []string
	}{
		{"unplanned: approval and the ledgers summed", func() workflows.EvacuationResult {
			r := base()
			r.Mode, r.ApprovalRequired, r.ApprovalReason = workflows.ModeUnplanned, true, "an unplanned evacuation may lose data"
			r.Approval = &workflows.Decision{By: "carol", Reason: "stamp-a is gone", At: at0}
			r.LostOps, r.UnseenOpsEstimate, r.PerDestination, r.Runs = 42, 7, 5, 1
			r.StoreShardsLost = 2
			addRow(&r.Table, "acct-1", 2, 4, "stamp-b", workflows.OutcomeCompleted, 1, 5, 800, 300, 40, "")
			addRow(&r.Table, "acct-2", activities.NoTier, 4, "stamp-b", workflows.OutcomeCompleted, 1, 6, 700, 250, 2, "")
			return r
		}, []string{
			"unplanned evacuation of stamp-a: completed: 2 of 2 accounts moved, 0 left on stamp-a\n",
			"  approval (an unplanned evacuation may lose data): approved by carol at 2026-12-02T10:00:00Z: stamp-a is gone\n",
			"  data loss, summed over the accounts' ledgers: 42 ops known lost + ~7 estimated after the last contact\n",
			"  and 2 given-up shards of PostgreSQL accounts lost what their old primaries acknowledged after the fork: " +
				"counted when they rejoin (pgrejoin)\n",
			"  admission: at most 20 in flight, 5 per destination, 3 attempts per account\n",
			"attached  error", "lost ops",
			"    acct-1   2     4           stamp-b  completed  1         5ms            800ms  300ms        40\n",
			"    acct-2   -     4 ",
		}, []string{"runs:", "not required"}},
		{"approved with the request", func() workflows.EvacuationResult {
			r := base()
			r.Mode = workflows.ModeUnplanned
			r.Approval = &workflows.Decision{By: "dave", Reason: "approved at start: stamp-a down", At: at0}
			return r
		}, []string{
			"unplanned evacuation of stamp-a: completed: no account had stamp-a as its primary\n",
			"  approval: given with the request by dave: approved at start: stamp-a down\n",
		}, []string{"data loss", "in the order they ended"}},
		{"rejected at the gate", func() workflows.EvacuationResult {
			r := base()
			r.Outcome, r.ApprovalRequired, r.ApprovalReason = workflows.OutcomeRejected, true, "the request asks for an approval"
			r.Rejection = &workflows.Decision{By: "erin", Reason: "not now", At: at0}
			return r
		}, []string{
			"planned evacuation of stamp-a: rejected\n",
			"  approval (the request asks for an approval): rejected\n",
			"  rejected by erin at 2026-12-02T10:00:00Z: not now\n",
		}, []string{"by outcome", "by tier", "moved"}},
		{"no approval in time", func() workflows.EvacuationResult {
			r := base()
			r.Outcome, r.ApprovalRequired, r.ApprovalReason = workflows.OutcomeTimedOut, true, "started automatically (trigger alert)"
			r.Trigger, r.AlertsSeen = workflows.TriggerAlert, 2
			return r
		}, []string{
			"  approval (started automatically (trigger alert)): none given\n",
			"  alerts: 2 alerts recorded\n",
		}, nil},
		{"aborted: never started, the abort, refused signals", func() workflows.EvacuationResult {
			r := base()
			r.Outcome, r.NotStarted, r.OnStamp = workflows.OutcomeAborted, 3, 4
			r.Abort = &workflows.Decision{By: "frank", Reason: "wrong stamp", At: at0}
			r.Refusals = []string{`pause signal from "gus" refused: the evacuation has already stopped starting accounts`}
			addRow(&r.Table, "acct-1", 0, 2, "stamp-b", workflows.OutcomeCompleted, 1, 3, 400, 100, 0, "")
			r.Tiers = []workflows.TierCount{{Tier: 0, Done: 1}}
			return r
		}, []string{
			"planned evacuation of stamp-a: aborted: 1 of 4 accounts moved, 3 left on stamp-a\n",
			"  aborted by frank at 2026-12-02T10:00:00Z: wrong stamp\n",
			`  refused: pause signal from "gus" refused: the evacuation has already stopped starting accounts` + "\n",
			"  never started: 3 accounts (the evacuation was aborted first)\n",
			"  by tier: tier 0: 1 moved\n",
		}, nil},
		{"more accounts than at the start", func() workflows.EvacuationResult {
			r := base()
			r.OnStamp = 1
			addRow(&r.Table, "acct-1", 0, 2, "stamp-b", workflows.OutcomeCompleted, 1, 3, 400, 100, 0, "")
			addRow(&r.Table, "acct-9", 0, 2, "stamp-b", workflows.OutcomeCompleted, 1, 900, 400, 100, 0, "")
			return r
		}, []string{"2 of 2 accounts moved, 0 left on stamp-a (1 on it at the start)\n"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := evacuationReport(tt.res(), 20)
			for _, w := range tt.want {
				require.Contains(t, out, w)
			}
			for _, n := range tt.not {
				require.NotContains(t, out, n)
			}
		})
	}
}
