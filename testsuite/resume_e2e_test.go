package testsuite

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// TestFailoverAgainFinishesAPromote: a promote that one partition refuses
// for good fails the failover after the point of no return, with the
// source fenced and the other partitions promoted; as its error says, the
// failover run again finishes it: the precheck sees the destination partly
// promoted to the new epoch with the source fenced, and the failover picks
// up at promote. Nothing acknowledged is lost.
func TestFailoverAgainFinishesAPromote(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const account, partitions = "finish-acct", 8
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 200, Workers: 4})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 200, gen.Err() }))

	three := 3
	require.NoError(t, c.StampClient(StampB).AddFault(ctx, stamp.Fault{Scope: "control", Account: account,
		Partition: &three, Op: "promote", ErrorRate: 1, Code: stamp.CodeConflict}))
	req := workflows.FailoverRequest{Account: account, FromStamp: StampA, ToStamp: StampB, RequestedBy: t.Name()}
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, req)
	require.NoError(t, err)
	err = run.Get(ctx, nil)
	require.True(t, workflows.IsFailed(err), "promote refused for good fails the failover: %v", err)
	require.ErrorContains(t, err, "run the failover again to finish it")
	st, err := c.StampClient(StampB).Status(ctx, account, nil)
	require.NoError(t, err)
	promoted := 0
	for _, p := range st.Partitions {
		if p.Role == stamp.RolePrimary {
			promoted++
		}
	}
	require.Equal(t, partitions-1, promoted, "every partition but the refused one was promoted")

	require.NoError(t, c.StampClient(StampB).ClearFaults(ctx))
	run, err = launch.Failover(ctx, c.Client, workflows.TaskQueue, req)
	require.NoError(t, err)
	var res workflows.FailoverResult
	require.NoError(t, run.Get(ctx, &res), "the failover run again finishes the promote")
	require.Contains(t, res.Resumed, "the promote was finished")
	acct, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.Equal(t, StampB, acct.Primary)
	require.EqualValues(t, 2, acct.Epoch)
	require.NotEmpty(t, acct.MovedBy, "the move names the failover that made it")

	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen.Stats().AcksByStamp[StampB] >= 100, gen.Err()
	}))
	gen.Stop()
	auditNow(ctx, t, c, account, gen, "the finished promote")
}
