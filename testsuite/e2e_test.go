package testsuite

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// startCluster starts a real cluster for one test and stops it after.
func startCluster(t *testing.T, o Options) *Cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: needs the Temporal dev server (skipped with -short)")
	}
	// Not t.TempDir: a failed run keeps its logs for the post-mortem.
	o.Dir = runDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	c, err := Start(ctx, o) // closes what it started if it fails
	require.NoError(t, err)
	t.Cleanup(c.Close) // before runDir's cleanup, which removes or keeps the logs
	return c
}

// TestPlannedFailoverUnderTrafficLosesNothing is the whole path: a real
// Temporal server, real stampd processes, the worker process and live
// traffic; a planned failover moves the account and the audit finds every
// acknowledged write on the new primary.
func TestPlannedFailoverUnderTrafficLosesNothing(t *testing.T) {
	c := startCluster(t, Options{Durable: true, ReplicationDelay: 20 * time.Millisecond, ReplayRate: 3000})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	const account, partitions = "e2e-acct", 64
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)

	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 1500, Workers: 8})
	require.NoError(t, gen.Start(ctx))
	stopped := false
	defer func() {
		if !stopped {
			gen.Stop()
		}
	}()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 1000, gen.Err() }))

	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Reason: "e2e test", RequestedBy: t.Name(),
	})
	require.NoError(t, err)
	var res workflows.FailoverResult
	require.NoError(t, run.Get(ctx, &res))
	// On the fast path an account of 64 partitions flushes inline: no
	// group child to record.
	recordHistories(t, c, map[string]string{"account_failover": run.GetID()})

	require.Equal(t, StampB, res.To)
	require.Equal(t, uint64(2), res.NewEpoch)
	require.Len(t, res.Table.Partition, partitions)
	for p := range partitions {
		require.Equal(t, res.Table.FinalLSN[p], res.Table.SentLSN[p], "partition %d sent", p)
		require.Equal(t, res.Table.FinalLSN[p], res.Table.ReplayedLSN[p], "partition %d replayed", p)
	}
	require.Positive(t, res.UnavailableMillis)

	acct, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.Equal(t, StampB, acct.Primary)
	require.Equal(t, uint64(2), acct.Epoch)

	// Traffic follows the account to its new primary.
	before := gen.Stats().AcksByStamp[StampB]
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen.Stats().AcksByStamp[StampB] >= before+500, gen.Err()
	}))
	st := gen.Stop()
	stopped = true
	t.Logf("traffic: %d acks (%v by stamp), retries %v", st.Acks, st.AcksByStamp, st.Retries)

	rep, err := traffic.Audit(ctx, c.Loc, account, gen.Acked(), traffic.AuditConfig{})
	require.NoError(t, err)
	t.Log(rep.String())
	require.Equal(t, StampB, rep.Stamp)
	require.Zero(t, rep.Lost, "acknowledged writes lost")
	require.Zero(t, rep.Mismatched)
	require.Empty(t, rep.SplitBrain)
	require.Positive(t, st.AcksByStamp[StampA])
	require.Positive(t, st.AcksByStamp[StampB])
}

// TestPrecheckRefusesWrongExpectedPrimary: a failover that names the wrong
// current primary is refused and leaves the account exactly as it was.
func TestPrecheckRefusesWrongExpectedPrimary(t *testing.T) {
	c := startCluster(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const account = "refused-acct"
	_, err := c.Provision(ctx, account, 4)
	require.NoError(t, err)

	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampB, ToStamp: StampA,
	})
	require.NoError(t, err)
	err = run.Get(ctx, nil)
	require.ErrorContains(t, err, "not the expected stamp-b")

	acct, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.Equal(t, location.Account{Account: account, Partitions: 4, Primary: StampA, PrimaryURL: c.StampURLs[StampA],
		Secondary: StampB, SecondaryURL: c.StampURLs[StampB], Epoch: 1, UpdatedAt: acct.UpdatedAt}, acct)
	st, err := c.StampClient(StampA).Status(ctx, account, nil)
	require.NoError(t, err)
	for _, p := range st.Partitions {
		require.False(t, p.Fenced, "partition %d fenced by a refused failover", p.Partition)
	}
	_, err = c.StampClient(StampA).Put(ctx, account, "still-writable", "yes", 1)
	require.NoError(t, err)
}

// historyTag names the workflow version recordHistories records: a
// versioned change to the workflows records new histories under a new tag
// and keeps the old ones, so the replay test replays every version in
// flight (the untagged files are from before versionBoundedFlush, v1 from
// before versionFastPath, v2 from before versionBoundedLocal).
const historyTag = "v3"

// recordHistories writes the histories of finished workflows (file name
// without the tag and extension -> workflow ID) under workflows/testdata
// when BATON_RECORD_HISTORY=1, for the replay test. See
// docs/ARCHITECTURE.md.
func recordHistories(t *testing.T, c *Cluster, ids map[string]string) {
	t.Helper()
	if os.Getenv("BATON_RECORD_HISTORY") != "1" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for name, wid := range ids {
		file := name + "_" + historyTag + ".json"
		it := c.Client.GetWorkflowHistory(ctx, wid, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		var h historypb.History
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			h.Events = append(h.Events, ev)
		}
		b, err := protojson.MarshalOptions{Indent: "  "}.Marshal(&h)
		require.NoError(t, err)
		path := filepath.Join("..", "workflows", "testdata", file)
		require.NoError(t, os.WriteFile(path, b, 0o644))
		t.Logf("recorded %d events of %s in %s", len(h.Events), wid, path)
	}
}
