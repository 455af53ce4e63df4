package report

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/workflows"
)

func TestRefusedFailoverShowsNoEmptyFields(t *testing.T) {
	var b strings.Builder
	Failover(&b, workflows.FailoverResult{Account: "acct-x", Mode: workflows.ModePlanned, Outcome: workflows.OutcomeRefused,
		Reason: "maintenance", RequestedBy: "ops", Trigger: workflows.TriggerManual}, 10)
	first := strings.SplitN(b.String(), "\n", 2)[0]
	require.Equal(t, "planned failover of acct-x: refused", first)
	require.NotContains(t, b.String(), " -> ,")
	require.NotContains(t, b.String(), "epoch 0")
}

func TestHeadlineCountsInTheSingular(t *testing.T) {
	got := headline(workflows.FailoverResult{Account: "a", Mode: workflows.ModePlanned, From: "stamp-a", To: "stamp-b",
		OldEpoch: 1, NewEpoch: 2, Partitions: 1, Groups: 1, Outcome: workflows.OutcomeCompleted})
	require.Equal(t, "planned failover of a: stamp-a -> stamp-b, epoch 1 -> 2 (1 partition in 1 group): completed", got)
	got = headline(workflows.FailoverResult{Account: "a", Mode: workflows.ModePlanned, From: "stamp-a", To: "stamp-b",
		OldEpoch: 1, NewEpoch: 2, Partitions: 64, Groups: 2, Outcome: workflows.OutcomeCompleted})
	require.Contains(t, got, "(64 partitions in 2 groups)")
}

// TestUnplannedReportLeadsWithTheEstimate: the loss line leads with what
// the failover cannot know, and an empty range reads "none".
func TestUnplannedReportLeadsWithTheEstimate(t *testing.T) {
	contact := time.Date(2026, 12, 1, 22, 25, 26, 0, time.UTC)
	res := workflows.FailoverResult{Account: "a", Mode: workflows.ModeUnplanned, Outcome: workflows.OutcomeCompleted,
		From: "stamp-a", To: "stamp-b", Partitions: 2, Groups: 1, GivenUp: []int{0, 1},
		Ledger: []activities.LossEntry{
			{Partition: 0, FromLSN: 95, ToLSN: 94, KnownAsOf: contact, SourceWriteRate: 200, UnseenOpsEstimate: 640},
			{Partition: 1, FromLSN: 10, ToLSN: 12, Ops: 3, KnownAsOf: contact, SourceWriteRate: 190, UnseenOpsEstimate: 608},
		},
		LostOps: 3, UnseenOpsEstimate: 1248}
	var b strings.Builder
	Failover(&b, res, 10)
	out := b.String()
	require.Contains(t, out, "DATA LOSS on 2 partitions whose source was given up on: up to ~1251 ops (estimate) = 3 known lost before the last contact (22:25:26.000Z) + ~1248 estimated after it")
	require.Contains(t, out, "partition 0: last contact 22:25:26.000Z; known lost: none; after it: ~640 ops (at 200 ops/s)")
	require.Contains(t, out, "partition 1: last contact 22:25:26.000Z; known lost: LSNs 10..12 (3 ops)")
	require.NotContains(t, out, "95..94")
}

// TestUnplannedStoreReportSaysWhereTheRestIs: a store account's ledger
// names each shard's fork and where its loss is counted, not ops.
func TestUnplannedStoreReportSaysWhereTheRestIs(t *testing.T) {
	heard := time.Date(2026, 12, 2, 8, 42, 12, 0, time.UTC)
	res := workflows.FailoverResult{Account: "db", Mode: workflows.ModeUnplanned, Outcome: workflows.OutcomeCompleted,
		From: "pg-a", To: "pg-b", Partitions: 3, Groups: 1, GivenUp: []int{0},
		Ledger: []activities.LossEntry{{Partition: 0, FromLSN: 0x3015AE8, ToLSN: 0x3015B00, KnownAsOf: heard,
			Unit: "WAL bytes", From: "0/3015AE8", Pending: "its rejoin reports it"}}}
	var b strings.Builder
	Failover(&b, res, 10)
	out := b.String()
	require.Contains(t, out, "DATA LOSS on 1 shard whose old primary was given up on")
	require.Contains(t, out, "shard 0: replayed up to 0/3015AE8; last heard from its primary (or its last replayed commit) "+
		"08:42:12.000Z; 24 WAL bytes received but never replayable\n      its rejoin reports it\n")
	require.NotContains(t, out, "ops known lost")
}

func TestRolledBackReportNamesWhatHeldItUp(t *testing.T) {
	res := workflows.FailoverResult{Account: "acct-x", Mode: workflows.ModePlanned, Outcome: workflows.OutcomeRolledBack,
		From: "stamp-a", To: "stamp-b", OldEpoch: 1, NewEpoch: 2, Partitions: 64, Groups: 1,
		FlushDeadline: 30 * time.Second, UnavailableMillis: 30_412,
		HeldUp: []workflows.PartitionIssue{{Partition: 3, Step: workflows.StepFlushReplay, Error: "stamp answered 503 injected_fault"}}}
	var b strings.Builder
	Failover(&b, res, 10)
	require.Contains(t, b.String(), "held up by 1 partition:\n    partition 3 at flush-replay: stamp answered 503 injected_fault")
	require.Contains(t, b.String(), "writes unavailable: 30.412s (fence to unfence; flush deadline 30s)")
}

func TestCompletedReportBreaksTheWindowDown(t *testing.T) {
	res := workflows.FailoverResult{Account: "a", Mode: workflows.ModePlanned, Outcome: workflows.OutcomeCompleted,
		From: "stamp-a", To: "stamp-b", Partitions: 1, Groups: 1, UnavailableMillis: 14_800,
		Window: []workflows.PhaseTiming{{Phase: "fence", Millis: 100}, {Phase: "flush-send", Millis: 6500, WaitMillis: 6100},
			{Phase: "flush-replay", Millis: 8000}, {Phase: "promote", Millis: 200}},
		Table: workflows.PartitionTable{Partition: []int{0}, FinalLSN: []uint64{5}, SentLSN: []uint64{5}, ReplayedLSN: []uint64{5},
			SendMillis: []int64{0}, ReplayMillis: []int64{0}, SentAfterMillis: []int64{6600}, ReplayedAfterMillis: []int64{14600}}}
	var b strings.Builder
	Failover(&b, res, 10)
	require.Contains(t, b.String(), "flush-send:         6.5s (of which 6.1s waiting for a worker or a retry)")
	require.Contains(t, b.String(), "14600")
}
