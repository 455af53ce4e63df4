package testsuite

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// TestUnplannedFailoverLedgerEqualsAudit: the source stamp goes down under
// live traffic with replication behind. The unplanned failover gives up on
// its partitions, promotes what the destination received, and its
// data-loss ledger names exactly the acknowledged writes the audit finds
// lost.
func TestUnplannedFailoverLedgerEqualsAudit(t *testing.T) {
	// One entry per partition per 50 ms shipment: replication falls behind
	// the traffic, so the outage loses writes.
	c := startCluster(t, Options{Durable: true, ReplicationBatch: 1, ReplicationDelay: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const account, partitions = "unplanned-acct", 8
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	src, dst := c.StampClient(StampA), c.StampClient(StampB)

	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 800, Workers: 8})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 1500, gen.Err() }))

	// The outage: first the source stops answering clients, then, once the
	// destination has heard the source's final sizes, the process dies.
	cut := time.Now()
	require.NoError(t, src.AddFault(ctx, stamp.Fault{Scope: "data", Unreachable: true}))
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		st, err := dst.Status(ctx, account, nil)
		return err == nil && st.Partitions[0].SourceSeenAt.After(cut.Add(100*time.Millisecond)), nil
	}))
	c.Stamps[StampA].Kill()
	acksBefore := gen.AckCount()

	started := time.Now()
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Mode: workflows.ModeUnplanned, Reason: "stamp-a down", RequestedBy: t.Name(),
		Approval: workflows.ApprovalPolicy{PreApproved: &workflows.Decision{By: t.Name(), Reason: "test"}},
		Options:  workflows.FailoverOptions{SourceTimeout: 3 * time.Second},
	})
	require.NoError(t, err)
	var res workflows.FailoverResult
	require.NoError(t, run.Get(ctx, &res))
	elapsed := time.Since(started)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.False(t, res.Precheck.SourceReachable)
	require.Len(t, res.GivenUp, partitions)
	require.Positive(t, res.LostOps, "replication was behind: the outage must lose writes")

	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen.Stats().AcksByStamp[StampB] >= 200, gen.Err()
	}))
	st := gen.Stop()
	require.Equal(t, acksBefore, st.AcksByStamp[StampA], "no write was acknowledged by the dead source")
	rep, err := traffic.Audit(ctx, c.Loc, account, gen.Acked(), traffic.AuditConfig{ListLimit: 1 << 20})
	require.NoError(t, err)
	t.Logf("ledger: %d ops lost; audit: %d of %d acknowledged writes lost", res.LostOps, rep.Lost, rep.Acks)
	require.Equal(t, int(res.LostOps), rep.Lost, "the ledger must agree with the audit")
	require.Zero(t, rep.Mismatched)
	require.Empty(t, rep.SplitBrain)

	// Every lost write lies in its partition's ledger range.
	lost := map[string]bool{}
	for _, k := range rep.LostKeys {
		lost[k] = true
	}
	ranges := map[int][2]uint64{}
	for _, e := range res.Ledger {
		ranges[e.Partition] = [2]uint64{e.FromLSN, e.ToLSN}
		require.False(t, e.KnownAsOf.IsZero())
	}
	for _, a := range gen.Acked() {
		if !lost[a.Key] {
			continue
		}
		r := ranges[a.Partition]
		require.Equal(t, StampA, a.Stamp)
		require.True(t, a.LSN >= r[0] && a.LSN <= r[1], "lost %s (partition %d LSN %d) outside the ledger's %d..%d", a.Key, a.Partition, a.LSN, r[0], r[1])
	}
	// Started again and reprotected, the old primary holds in its recovered
	// area exactly what the ledger and the audit counted.
	require.NoError(t, c.RestartStamp(ctx, StampA))
	r := runReprotect(ctx, t, c, account)
	require.Equal(t, res.LostOps, r.RecoveredOps, "recovered = ledger")
	require.Zero(t, r.LedgerMissedOps)
	chaosRun{scenario: "unplanned: source's data plane cut, then kill -9, replication behind", outcome: string(res.Outcome), kills: 1,
		faults: "data plane unreachable on stamp-a, then SIGKILL", elapsed: elapsed, fencedMillis: res.UnavailableMillis,
		ackGap: traffic.LongestGap(gen.Acked()), retries: retries(ctx, t, c.Client, run.GetID(), 1), acked: st.Acks, lost: rep.Lost,
		note: fmt.Sprintf("ledger %d = audit's lost %d = recovered by the reprotect %d (contact lasted until the kill)",
			res.LostOps, rep.Lost, r.RecoveredOps)}.log(t)
}

// TestAbortMidFlightKeepsTheOldPrimary: an abort during flush-replay stops
// the failover, unfences the source, and the account keeps serving writes
// from the old primary with nothing lost.
func TestAbortMidFlightKeepsTheOldPrimary(t *testing.T) {
	// A slow replay (50 ops/s per partition) keeps the failover in its
	// flush phase long enough to abort it there.
	c := startCluster(t, Options{Durable: true, ReplayRate: 50})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const account, partitions = "abort-acct", 8
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)

	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 1000, Workers: 8})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 2000, gen.Err() }))

	started := time.Now()
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, ToStamp: StampB, Reason: "abort test", RequestedBy: t.Name(),
		Options: workflows.FailoverOptions{CatchUpTimeout: -1},
	})
	require.NoError(t, err)
	// A second failover of the same account is refused, naming the first.
	_, err = launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{Account: account, ToStamp: StampB})
	require.ErrorIs(t, err, launch.ErrAlreadyRunning)
	require.ErrorContains(t, err, run.GetRunID())

	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		v, err := c.Client.QueryWorkflow(ctx, run.GetID(), "", workflows.QueryProgress)
		if err != nil {
			return false, nil
		}
		var p workflows.Progress
		return v.Get(&p) == nil && p.Phase == workflows.PhaseFlush, nil
	}))
	h, err := c.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: run.GetID(), UpdateName: workflows.UpdateAbort,
		Args: []any{workflows.Decision{By: t.Name(), Reason: "changed my mind"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))

	err = run.Get(ctx, nil)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "aborted failover ends in an application error: %v", err)
	var res workflows.FailoverResult
	require.NoError(t, ae.Details(&res))
	require.Equal(t, workflows.OutcomeAborted, res.Outcome)
	require.Equal(t, t.Name(), res.Abort.By)

	acct, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.Equal(t, StampA, acct.Primary)
	require.Equal(t, uint64(1), acct.Epoch)
	st, err := c.StampClient(StampA).Status(ctx, account, nil)
	require.NoError(t, err)
	for _, p := range st.Partitions {
		require.False(t, p.Fenced, "partition %d still fenced after the abort", p.Partition)
	}
	// Writes keep flowing to the old primary.
	before := gen.Stats().AcksByStamp[StampA]
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen.Stats().AcksByStamp[StampA] >= before+500, gen.Err()
	}))
	stats := gen.Stop()
	require.Zero(t, stats.AcksByStamp[StampB])
	rep, err := traffic.Audit(ctx, c.Loc, account, gen.Acked(), traffic.AuditConfig{})
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.String())
	chaosRun{scenario: "abort mid flush-replay", outcome: string(res.Outcome), faults: "replay throttled to 50 ops/s/partition",
		elapsed: time.Since(started), fencedMillis: res.UnavailableMillis, ackGap: traffic.LongestGap(gen.Acked()),
		retries: retries(ctx, t, c.Client, run.GetID(), 1), acked: stats.Acks, lost: rep.Lost,
		note: "source unfenced, location unchanged, writes resume on stamp-a"}.log(t)
}

// TestUnplannedAfterAPartitionSaysWhatItCannotKnow: the stamps lose each
// other while clients keep writing to the primary for 3 s, then the
// primary dies and an unplanned failover runs. The ledger only knows what
// the primary reported before contact was lost, so the report must not
// claim "0 lost": it leads with an estimate of what the primary may have
// acknowledged after the last contact, and the audit's real loss lies
// between the known and the estimate.
func TestUnplannedAfterAPartitionSaysWhatItCannotKnow(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const account, partitions = "partitioned-acct", 16
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 600, Workers: 8})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 1500, gen.Err() }))

	// The network between the stamps goes: no shipment or heartbeat reaches
	// stamp-b, while clients still write to stamp-a for 3 s.
	require.NoError(t, c.StampClient(StampB).AddFault(ctx, stamp.Fault{Scope: "replication", Unreachable: true}))
	partitioned := gen.AckCount()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= partitioned+1500, gen.Err() }))
	c.Stamps[StampA].Kill()
	struck := faultsStruck(ctx, t, c)
	require.NoError(t, c.StampClient(StampB).ClearFaults(ctx))

	started := time.Now()
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Mode: workflows.ModeUnplanned, Reason: "stamp-a lost", RequestedBy: t.Name(),
		Approval: workflows.ApprovalPolicy{PreApproved: &workflows.Decision{By: t.Name(), Reason: "test"}},
		Options:  workflows.FailoverOptions{SourceTimeout: 3 * time.Second},
	})
	require.NoError(t, err)
	var res workflows.FailoverResult
	require.NoError(t, run.Get(ctx, &res))
	elapsed := time.Since(started)
	require.Len(t, res.GivenUp, partitions)
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen.Stats().AcksByStamp[StampB] >= 200, gen.Err()
	}))
	st := gen.Stop()
	rep, err := traffic.Audit(ctx, c.Loc, account, gen.Acked(), traffic.AuditConfig{ListLimit: 1 << 20})
	require.NoError(t, err)
	unseen := uint64(rep.Lost) - min(uint64(rep.Lost), res.LostOps)
	t.Logf("known lost %d, estimated after the last contact %d, audit lost %d (unseen by the ledger: %d)",
		res.LostOps, res.UnseenOpsEstimate, rep.Lost, unseen)
	require.Greater(t, uint64(rep.Lost), res.LostOps, "writes after the partition must be lost beyond what the ledger knows")
	require.Positive(t, res.UnseenOpsEstimate, "the report must estimate what it cannot know")
	for _, e := range res.Ledger {
		require.Positive(t, e.SourceWriteRate, "partition %d: the write rate before contact was lost", e.Partition)
	}
	var b strings.Builder
	report.Failover(&b, res, 5)
	require.Contains(t, b.String(), fmt.Sprintf("DATA LOSS on %d partitions whose source was given up on: up to ~%d ops (estimate)",
		partitions, res.LostOps+res.UnseenOpsEstimate))
	chaosRun{scenario: "unplanned after a network partition (clients wrote to the old primary for 3 s), then kill -9", outcome: string(res.Outcome), kills: 1,
		faults: "replication unreachable on stamp-b, then SIGKILL of stamp-a", struck: struck, elapsed: elapsed, fencedMillis: res.UnavailableMillis,
		ackGap: traffic.LongestGap(gen.Acked()), retries: retries(ctx, t, c.Client, run.GetID(), 1), acked: st.Acks, lost: rep.Lost,
		note: fmt.Sprintf("ledger knew %d (lower bound), estimated ~%d more after the last contact; audit lost %d", res.LostOps, res.UnseenOpsEstimate, rep.Lost)}.log(t)
}
