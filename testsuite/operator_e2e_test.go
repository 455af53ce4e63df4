package testsuite

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/internal/temporalx"
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

	run, err := temporalx.StartFailover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Mode: workflows.ModeUnplanned, Reason: "stamp-a down", RequestedBy: t.Name(),
		Approval: workflows.ApprovalPolicy{PreApproved: &workflows.Decision{By: t.Name(), Reason: "test"}},
		Options:  workflows.FailoverOptions{SourceTimeout: 3 * time.Second},
	})
	require.NoError(t, err)
	var res workflows.FailoverResult
	require.NoError(t, run.Get(ctx, &res))
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

	run, err := temporalx.StartFailover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, ToStamp: StampB, Reason: "abort test", RequestedBy: t.Name(),
		Options: workflows.FailoverOptions{CatchUpTimeout: -1},
	})
	require.NoError(t, err)
	// A second failover of the same account is refused, naming the first.
	_, err = temporalx.StartFailover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{Account: account, ToStamp: StampB})
	require.ErrorIs(t, err, temporalx.ErrAlreadyRunning)
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
}
