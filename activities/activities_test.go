package activities

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/location/locationtest"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/stamp/stamptest"
)

// world is a location service and two real stamps on loopback, with one
// provisioned account, for activity tests.
type world struct {
	acts     *Activities
	src, dst *stamp.Client
	env      *testsuite.TestActivityEnvironment
}

const account, partitions = "acct", 8

func newWorld(t *testing.T) *world {
	t.Helper()
	loc, err := locationtest.StartLocal(location.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = loc.Close() })
	var urls []string
	for _, name := range []string{"stamp-a", "stamp-b"} {
		s, err := stamptest.StartLocal(stamp.Config{Name: name, LocationURL: loc.URL(), EnableFaults: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		require.NoError(t, location.NewClient(loc.URL(), nil).RegisterStamp(context.Background(), location.Stamp{Name: name, URL: s.URL()}))
		urls = append(urls, s.URL())
	}
	w := &world{acts: New(loc.URL(), nil), src: stamp.NewClient(urls[0], nil), dst: stamp.NewClient(urls[1], nil)}
	_, err = location.Provision(context.Background(), w.acts.Location, w.src, w.dst, "stamp-a", "stamp-b", account, partitions)
	require.NoError(t, err)
	var s testsuite.WorkflowTestSuite
	w.env = s.NewTestActivityEnvironment()
	w.env.RegisterActivity(w.acts)
	return w
}

func (w *world) write(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		_, err := w.src.Put(context.Background(), account, fmt.Sprintf("k%d", i), "v", 0)
		require.NoError(t, err)
	}
}

func exec[T any](t *testing.T, w *world, fn any, in any) (T, error) {
	t.Helper()
	var out T
	v, err := w.env.ExecuteActivity(fn, in)
	if err != nil {
		return out, err
	}
	require.NoError(t, v.Get(&out))
	return out, nil
}

func TestPrecheck(t *testing.T) {
	w := newWorld(t)
	w.write(t, 50)
	tests := []struct {
		name    string
		in      PrecheckInput
		wantErr string
	}{
		{"ok", PrecheckInput{Account: account, From: "stamp-a", To: "stamp-b"}, ""},
		{"any current primary", PrecheckInput{Account: account, To: "stamp-b"}, ""},
		{"wrong expected primary", PrecheckInput{Account: account, From: "stamp-b", To: "stamp-a"}, "not the expected stamp-b"},
		{"unknown account", PrecheckInput{Account: "nope", To: "stamp-b"}, "not known to the location service"},
		{"already primary", PrecheckInput{Account: account, To: "stamp-a"}, "already primary on stamp-a"},
		{"not the replica", PrecheckInput{Account: account, To: "stamp-z"}, "replicates to stamp-b, not stamp-z"},
		{"no destination", PrecheckInput{Account: account}, "no destination stamp"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := exec[PrecheckResult](t, w, w.acts.Precheck, tt.in)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, partitions, res.Partitions)
				require.Equal(t, "stamp-a", res.From)
				require.Equal(t, uint64(1), res.Epoch)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			var ae *temporal.ApplicationError
			require.ErrorAs(t, err, &ae)
			require.True(t, ae.NonRetryable(), "a precheck refusal must not be retried")
		})
	}
}

// TestFailoverStepsAgainstRealStamps runs every step in order, twice each
// (idempotency), and checks the data on the new primary.
func TestFailoverStepsAgainstRealStamps(t *testing.T) {
	w := newWorld(t)
	w.write(t, 200)
	pre, err := exec[PrecheckResult](t, w, w.acts.Precheck, PrecheckInput{Account: account, From: "stamp-a", To: "stamp-b"})
	require.NoError(t, err)

	var fence FenceResult
	for range 2 {
		f, err := exec[FenceResult](t, w, w.acts.Fence, FenceInput{Account: account, FromURL: pre.FromURL, Partitions: partitions, Epoch: 1})
		require.NoError(t, err)
		f.Timing = Timing{} // when the attempt ran: not part of the answer
		if fence.FinalLSN != nil {
			require.Equal(t, fence, f, "a repeated fence answers the same")
		}
		fence = f
	}
	var total uint64
	for _, l := range fence.FinalLSN {
		total += l
	}
	require.Equal(t, uint64(200), total)
	_, err = w.src.Put(context.Background(), account, "after-fence", "x", 0)
	require.True(t, stamp.IsCode(err, stamp.CodeFenced), "fenced source refuses writes: %v", err)

	all := AllPartitions(partitions)
	var sent FlushSendResult
	for range 2 {
		sent, err = exec[FlushSendResult](t, w, w.acts.FlushSend, FlushSendInput{Account: account, FromURL: pre.FromURL, Partitions: all})
		require.NoError(t, err)
		require.Empty(t, sent.Failed)
		for _, s := range sent.Sent {
			require.Equal(t, fence.FinalLSN[s.Partition], s.LSN)
		}
	}
	for range 2 {
		rep, err := exec[FlushReplayResult](t, w, w.acts.FlushReplay, FlushReplayInput{Account: account, ToURL: pre.ToURL, Targets: sent.Sent})
		require.NoError(t, err)
		for _, r := range rep.Replayed {
			require.Equal(t, fence.FinalLSN[r.Partition], r.LSN)
		}
	}
	for range 2 {
		pr, err := exec[PromoteResult](t, w, w.acts.Promote, PromoteInput{Account: account, From: "stamp-a", To: "stamp-b", ToURL: pre.ToURL,
			Partitions: partitions, OldEpoch: 1, Epoch: 2})
		require.NoError(t, err)
		require.Equal(t, "stamp-b", pr.Location.Primary)
		require.Equal(t, uint64(2), pr.Location.Epoch)
	}
	v, err := w.dst.Get(context.Background(), account, "k199")
	require.NoError(t, err)
	require.Equal(t, "v", v.Value)
	_, err = w.dst.Put(context.Background(), account, "on-new-primary", "y", 2)
	require.NoError(t, err)
	// A promote at an older epoch is refused, non-retryably.
	_, err = exec[PromoteResult](t, w, w.acts.Promote, PromoteInput{Account: account, From: "stamp-a", To: "stamp-b", ToURL: pre.ToURL,
		Partitions: partitions, OldEpoch: 0, Epoch: 1})
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	require.True(t, ae.NonRetryable())
}

// TestFlushSendIsolatesAFailingPartition: with one partition's control calls
// failing, the group call falls back to per-partition calls, so every other
// partition is sent and only the bad one is reported failed.
func TestFlushSendIsolatesAFailingPartition(t *testing.T) {
	w := newWorld(t)
	w.write(t, 100)
	pre, err := exec[PrecheckResult](t, w, w.acts.Precheck, PrecheckInput{Account: account, To: "stamp-b"})
	require.NoError(t, err)
	_, err = exec[FenceResult](t, w, w.acts.Fence, FenceInput{Account: account, FromURL: pre.FromURL, Partitions: partitions, Epoch: 1})
	require.NoError(t, err)
	bad := 3
	require.NoError(t, w.src.AddFault(context.Background(), stamp.Fault{Scope: "control", Account: account, Partition: &bad, ErrorRate: 1}))
	res, err := exec[FlushSendResult](t, w, w.acts.FlushSend, FlushSendInput{Account: account, FromURL: pre.FromURL, Partitions: AllPartitions(partitions)})
	require.NoError(t, err)
	require.Equal(t, []int{bad}, res.Failed)
	require.Len(t, res.Sent, partitions-1)
	require.Contains(t, res.LastError, "partition 3")

	// Unfence rolls the fence back: the source takes writes again.
	require.NoError(t, w.src.ClearFaults(context.Background()))
	_, err = w.env.ExecuteActivity(w.acts.Unfence, UnfenceInput{Account: account, FromURL: pre.FromURL, Partitions: partitions, Epoch: 1})
	require.NoError(t, err)
	_, err = w.src.Put(context.Background(), account, "after-rollback", "z", 1)
	require.NoError(t, err)
}

func TestCatchUpReportsLag(t *testing.T) {
	w := newWorld(t)
	w.write(t, 30)
	res, err := exec[CatchUpResult](t, w, w.acts.CatchUp, CatchUpInput{Account: account, FromURL: w.src.Base(), ToURL: w.dst.Base(),
		Partitions: partitions, MaxLagOps: 0, Timeout: 30 * time.Second})
	require.NoError(t, err)
	require.True(t, res.CaughtUp)
	require.Zero(t, res.SendLagOps+res.ReplayLagOps)
}

// TestPrecheckRecognisesItsOwnSteps: a precheck run again by the failover
// whose worker was lost mid-task (same Operation) picks up where that
// attempt got: at promote, when the destination is partly promoted to the
// new epoch and the source fenced; done, when the location service moved
// the account for it. Another failover is refused as before, and a partly
// promoted destination with a source still taking writes refuses.
func TestPrecheckRecognisesItsOwnSteps(t *testing.T) {
	w := newWorld(t)
	w.write(t, 40)
	ctx := context.Background()
	in := PrecheckInput{Account: account, From: "stamp-a", To: "stamp-b", Operation: "run-1"}
	cu, err := exec[CatchUpResult](t, w, w.acts.CatchUp, CatchUpInput{Account: account, FromURL: w.src.Base(),
		ToURL: w.dst.Base(), Partitions: partitions, MaxLagOps: 0, Timeout: 10 * time.Second})
	require.NoError(t, err)
	require.True(t, cu.CaughtUp, "the destination replays what was written")
	// Two partitions promoted ahead, the source not fenced: refused.
	_, err = w.dst.Promote(ctx, account, stamp.ControlRequest{Partitions: []int{0, 1}, Epoch: 2})
	require.NoError(t, err)
	_, err = exec[PrecheckResult](t, w, w.acts.Precheck, in)
	require.ErrorContains(t, err, "not fenced")
	// Fenced: resume at promote.
	_, err = w.src.Fence(ctx, account, stamp.ControlRequest{All: true, Epoch: 1})
	require.NoError(t, err)
	pre, err := exec[PrecheckResult](t, w, w.acts.Precheck, in)
	require.NoError(t, err)
	require.Equal(t, ResumePromote, pre.Resume)
	require.Equal(t, 2, pre.PromotedAhead)
	require.EqualValues(t, 1, pre.Epoch)
	// Moved by run-1: done; by anyone else: nothing to fail over.
	_, err = exec[PromoteResult](t, w, w.acts.Promote, PromoteInput{Account: account, From: "stamp-a", To: "stamp-b",
		ToURL: pre.ToURL, Partitions: partitions, OldEpoch: 1, Epoch: 2, Operation: "run-1"})
	require.NoError(t, err)
	pre, err = exec[PrecheckResult](t, w, w.acts.Precheck, in)
	require.NoError(t, err)
	require.Equal(t, ResumeMoved, pre.Resume)
	require.Equal(t, "stamp-a", pre.From)
	require.EqualValues(t, 1, pre.Epoch)
	in.Operation = "run-2"
	_, err = exec[PrecheckResult](t, w, w.acts.Precheck, in)
	require.ErrorContains(t, err, "not the expected stamp-a")
}
