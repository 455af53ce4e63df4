package testsuite

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// runReprotect reprotects the account and waits for its report.
func runReprotect(ctx context.Context, t *testing.T, c *Cluster, account string) workflows.ReprotectResult {
	t.Helper()
	run, err := launch.Reprotect(ctx, c.Client, workflows.TaskQueue, workflows.ReprotectRequest{
		Account: account, Reason: "test", RequestedBy: t.Name(), HeartbeatTimeout: 2 * time.Second})
	require.NoError(t, err)
	var res workflows.ReprotectResult
	require.NoError(t, run.Get(ctx, &res), "reprotect of %s", account)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	return res
}

// runFailover fails the account over from one stamp to the other, planned,
// and waits for its report.
func runFailover(ctx context.Context, t *testing.T, c *Cluster, account, from, to string) workflows.FailoverResult {
	t.Helper()
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: from, ToStamp: to, Reason: "cycle", RequestedBy: t.Name(),
		Options: workflows.FailoverOptions{HeartbeatTimeout: 2 * time.Second}})
	require.NoError(t, err)
	var res workflows.FailoverResult
	require.NoError(t, run.Get(ctx, &res), "failover of %s from %s to %s", account, from, to)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	return res
}

// auditNow reads every write acknowledged so far back from the account's
// current primary and requires every one of them there.
func auditNow(ctx context.Context, t *testing.T, c *Cluster, account string, gen *traffic.Generator, leg string) traffic.AuditReport {
	t.Helper()
	rep, err := traffic.Audit(ctx, c.Loc, account, gen.Acked(), traffic.AuditConfig{})
	require.NoError(t, err)
	require.True(t, rep.OK(), "after %s: %s", leg, rep.String())
	return rep
}

// TestFailoverReprotectFailbackCycles: the whole disaster-recovery cycle,
// again and again, under live traffic: failover, reprotect, failback,
// reprotect. After every leg the audit reads every acknowledged write from
// the current primary (nothing lost), and after every reprotect the replica
// is within its lag budget and the account can fail over again.
func TestFailoverReprotectFailbackCycles(t *testing.T) {
	cycles := 10
	if n, err := strconv.Atoi(os.Getenv("BATON_CYCLES")); err == nil && n > 0 {
		cycles = n
	}
	c := startCluster(t, Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	const account, partitions = "cycle-acct", 16
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 300, Workers: 4})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 300, gen.Err() }))

	from, to := StampA, StampB
	for cycle := range cycles {
		for leg := range 2 { // failover, then failback
			f := runFailover(ctx, t, c, account, from, to)
			acct, err := c.Loc.Lookup(ctx, account)
			require.NoError(t, err)
			require.True(t, acct.Unprotected, "after a failover the account is unprotected")
			auditNow(ctx, t, c, account, gen, fmt.Sprintf("cycle %d leg %d failover", cycle, leg))

			r := runReprotect(ctx, t, c, account)
			require.Equal(t, to, r.Primary)
			require.Equal(t, from, r.Secondary)
			require.Zero(t, r.RecoveredOps, "a planned failover diverges nothing")
			require.LessOrEqual(t, r.LagOps, max(uint64(1000), 2*partitions), "lag within budget after the reprotect")
			acct, err = c.Loc.Lookup(ctx, account)
			require.NoError(t, err)
			require.False(t, acct.Unprotected, "after a reprotect the account is protected")
			rep := auditNow(ctx, t, c, account, gen, fmt.Sprintf("cycle %d leg %d reprotect", cycle, leg))
			t.Logf("cycle %d leg %d: %s -> %s, fenced %d ms, reprotect %d ms, %d acked, 0 lost",
				cycle, leg, from, to, f.UnavailableMillis, r.TotalMillis, rep.Acks)
			from, to = to, from
		}
	}
	st := gen.Stop()
	rep := auditNow(ctx, t, c, account, gen, "the last leg")
	require.Greater(t, st.AcksByStamp[StampB], int64(0))
	chaosRun{scenario: fmt.Sprintf("%d cycles of failover, reprotect, failback, reprotect", cycles), outcome: "completed",
		faults: "none", acked: st.Acks, lost: rep.Lost, ackGap: traffic.LongestGap(gen.Acked()),
		note: "audited after every leg"}.log(t)
}

// TestReprotectRecoversWhatAPartitionLost: the stamps lose each other while
// clients keep writing to the primary for a few seconds; then it dies and an
// unplanned failover promotes the secondary. Started again, the old primary
// is reprotected: the writes it acknowledged that the new primary never got
// are in its recovered area, equal to the audit's lost writes key by key.
// The failover's ledger, which only knew what was reported before contact
// was lost, is a lower bound; the reprotect states the difference.
func TestReprotectRecoversWhatAPartitionLost(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const account, partitions = "recover-acct", 8
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 400, Workers: 4})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 400, gen.Err() }))

	require.NoError(t, c.StampClient(StampB).AddFault(ctx, stamp.Fault{Scope: "replication", Unreachable: true}))
	cut := gen.AckCount()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= cut+800, gen.Err() }))
	c.Stamps[StampA].Kill()
	require.NoError(t, c.StampClient(StampB).ClearFaults(ctx))

	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Mode: workflows.ModeUnplanned, Reason: "stamp-a lost",
		RequestedBy: t.Name(), Approval: workflows.ApprovalPolicy{PreApproved: &workflows.Decision{By: t.Name(), Reason: "test"}},
		Options: workflows.FailoverOptions{SourceTimeout: 3 * time.Second}})
	require.NoError(t, err)
	var f workflows.FailoverResult
	require.NoError(t, run.Get(ctx, &f))
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen.Stats().AcksByStamp[StampB] >= 200, gen.Err()
	}))
	st := gen.Stop()
	rep, err := traffic.Audit(ctx, c.Loc, account, gen.Acked(), traffic.AuditConfig{ListLimit: 1 << 20})
	require.NoError(t, err)
	require.Positive(t, rep.Lost, "writes after the partition must be lost on the new primary")

	// The old primary comes back, and is reprotected.
	require.NoError(t, c.RestartStamp(ctx, StampA))
	r := runReprotect(ctx, t, c, account)
	// The recovered writes that clients saw acknowledged are exactly the
	// audit's lost writes, key by key; the others are writes the old
	// primary committed as it died, whose answer never reached a client
	// (which wrote them again elsewhere).
	acked := map[string]traffic.Ack{}
	for _, a := range gen.Acked() {
		if a.Stamp == StampA {
			acked[a.Key] = a
		}
	}
	var recoveredAcked []string
	unanswered := 0
	require.NoError(t, c.StampClient(StampA).Recovered(ctx, account, func(e stamp.RecoveredEntry) error {
		if a, ok := acked[e.Key]; ok && a.Partition == e.Partition && a.LSN == e.LSN {
			recoveredAcked = append(recoveredAcked, e.Key)
		} else {
			unanswered++
		}
		return nil
	}))
	slices.Sort(recoveredAcked)
	lost := slices.Clone(rep.LostKeys)
	slices.Sort(lost)
	require.Equal(t, len(lost), len(recoveredAcked), "recovered and acknowledged vs the audit's lost")
	require.True(t, slices.Equal(lost, recoveredAcked), "the recovered acknowledged writes are the audit's lost writes, key by key")
	require.Equal(t, uint64(len(lost)+unanswered), r.RecoveredOps)
	t.Logf("recovered %d writes: %d acknowledged (= the audit's %d lost), %d never answered", r.RecoveredOps, len(recoveredAcked), len(lost), unanswered)
	require.Equal(t, f.LostOps, r.LedgerLostOps, "the reprotect compares with the failover's ledger")
	require.LessOrEqual(t, r.LedgerLostOps, r.RecoveredOps, "the ledger is a lower bound")
	require.Equal(t, r.RecoveredOps-r.LedgerLostOps, r.LedgerMissedOps)
	// Failback loses nothing, and the demoted stamp holds the new primary's
	// data: every acknowledged write that survived, none of the diverged.
	gen2 := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 300, Workers: 4})
	require.NoError(t, gen2.Start(ctx))
	defer gen2.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen2.AckCount() >= 300, gen2.Err() }))
	runFailover(ctx, t, c, account, StampB, StampA)
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen2.Stats().AcksByStamp[StampA] >= 100, gen2.Err()
	}))
	gen2.Stop()
	auditNow(ctx, t, c, account, gen2, "the failback")
	chaosRun{scenario: "reprotect after a network partition and kill -9 of the old primary", outcome: string(r.Outcome), kills: 1,
		elapsed: time.Duration(r.TotalMillis) * time.Millisecond,
		faults:  "replication unreachable on stamp-b, then SIGKILL of stamp-a", acked: st.Acks, lost: rep.Lost,
		note: fmt.Sprintf("recovered %d = audit's lost %d, key by key; the failover's ledger knew %d (missed %d); failback lost 0",
			r.RecoveredOps, rep.Lost, r.LedgerLostOps, r.LedgerMissedOps)}.log(t)
}

// TestReprotectOntoAWipedStamp: after a planned failover the old primary's
// data directory is wiped; the reprotect seeds it from a snapshot of the
// new primary, then streams; a failback afterwards loses nothing.
func TestReprotectOntoAWipedStamp(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const account, partitions = "wiped-acct", 8
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 300, Workers: 4})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 300, gen.Err() }))
	runFailover(ctx, t, c, account, StampA, StampB)
	require.NoError(t, c.WipeStamp(ctx, StampA))

	r := runReprotect(ctx, t, c, account)
	require.Len(t, r.Seeded, partitions, "every partition is seeded")
	require.Positive(t, r.SeededBytes)
	before := gen.Stats().AcksByStamp[StampA]
	runFailover(ctx, t, c, account, StampB, StampA)
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen.Stats().AcksByStamp[StampA] >= before+200, gen.Err()
	}))
	st := gen.Stop()
	rep := auditNow(ctx, t, c, account, gen, "the failback onto the seeded stamp")
	chaosRun{scenario: "reprotect onto a wiped stamp (seed, then stream), then failback", outcome: string(r.Outcome),
		elapsed: time.Duration(r.TotalMillis) * time.Millisecond,
		faults:  "stamp-a's data directory deleted", acked: st.Acks, lost: rep.Lost,
		note: fmt.Sprintf("seeded %d partitions, %d bytes", len(r.Seeded), r.SeededBytes)}.log(t)
}

// TestReprotectSurvivesCrashes: the worker is SIGKILLed while the reprotect
// rewinds the diverged keys, and the Temporal server right after; the
// reprotect resumes and finishes, and the recovered area holds each
// diverged write exactly once.
func TestReprotectSurvivesCrashes(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const account, partitions = "crash-acct", 8
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 300, Workers: 4})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 300, gen.Err() }))
	require.NoError(t, c.StampClient(StampB).AddFault(ctx, stamp.Fault{Scope: "replication", Unreachable: true}))
	cut := gen.AckCount()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= cut+300, gen.Err() }))
	c.Stamps[StampA].Kill()
	require.NoError(t, c.StampClient(StampB).ClearFaults(ctx))
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Mode: workflows.ModeUnplanned, RequestedBy: t.Name(),
		Approval: workflows.ApprovalPolicy{PreApproved: &workflows.Decision{By: t.Name(), Reason: "test"}},
		Options:  workflows.FailoverOptions{SourceTimeout: 3 * time.Second}})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))
	st := gen.Stop()
	rep, err := traffic.Audit(ctx, c.Loc, account, gen.Acked(), traffic.AuditConfig{ListLimit: 1 << 20})
	require.NoError(t, err)
	require.NoError(t, c.RestartStamp(ctx, StampA))

	// Reads on the new primary answer slowly: the rewind is under way when
	// the worker dies.
	require.NoError(t, c.StampClient(StampB).AddFault(ctx, stamp.Fault{Scope: "data", Account: account, LatencyMillis: 3000}))
	rp, err := launch.Reprotect(ctx, c.Client, workflows.TaskQueue, workflows.ReprotectRequest{
		Account: account, RequestedBy: t.Name(), HeartbeatTimeout: 2 * time.Second})
	require.NoError(t, err)
	id := rp.GetID()
	awaitRunning(ctx, t, c.Client, id, id, "RestoreDiverged")
	c.Worker.Kill()
	require.NoError(t, c.Worker.Restart())
	// The new worker took the rewind over (its second attempt runs): now
	// the server goes down and comes back.
	require.NoError(t, Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		d, err := c.Client.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return false, nil
		}
		for _, pa := range d.GetPendingActivities() {
			if pa.GetActivityType().GetName() == "RestoreDiverged" && pa.GetAttempt() > 1 &&
				pa.GetState() == enums.PENDING_ACTIVITY_STATE_STARTED {
				return true, nil
			}
		}
		return false, nil
	}))
	c.Temporal.Kill()
	require.NoError(t, c.Temporal.Restart())
	require.NoError(t, c.Temporal.WaitReady(ctx))
	require.NoError(t, c.StampClient(StampB).ClearFaults(ctx))
	var r workflows.ReprotectResult
	require.NoError(t, rp.Get(ctx, &r))
	require.Equal(t, workflows.OutcomeCompleted, r.Outcome)
	require.Positive(t, r.RecoveredOps)

	seen := map[string]int{}
	total := 0
	require.NoError(t, c.StampClient(StampA).Recovered(ctx, account, func(e stamp.RecoveredEntry) error {
		seen[fmt.Sprintf("%d/%d", e.Partition, e.LSN)]++
		total++
		return nil
	}))
	require.Equal(t, int(r.RecoveredOps), total)
	for at, n := range seen {
		require.Equal(t, 1, n, "diverged write at partition/LSN %s recovered %d times", at, n)
	}
	require.GreaterOrEqual(t, total, rep.Lost, "every write the failover lost is recovered")
	chaosRun{scenario: "reprotect: worker SIGKILL mid-rewind, then Temporal restart", outcome: string(r.Outcome), kills: 2,
		elapsed: time.Duration(r.TotalMillis) * time.Millisecond,
		faults:  "reads on the new primary +3 s", retries: retries(ctx, t, c.Client, id, 0), acked: st.Acks, lost: rep.Lost,
		note: fmt.Sprintf("lost: by the unplanned failover before it; %d diverged writes recovered, each once", total)}.log(t)
}
