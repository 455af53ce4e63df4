package activities

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/batonhq/baton/stamp"
)

// TestPrecheckRetriesTransientFaults: answers that may go away do not
// refuse a failover: with half of every status call failing on both stamps,
// the precheck passes, every time.
func TestPrecheckRetriesTransientFaults(t *testing.T) {
	w := newWorld(t)
	w.write(t, 20)
	ctx := context.Background()
	for _, c := range []*stamp.Client{w.src, w.dst} {
		require.NoError(t, c.AddFault(ctx, stamp.Fault{Scope: "control", Op: "status", ErrorRate: 0.5}))
	}
	for range 5 {
		_, err := exec[PrecheckResult](t, w, w.acts.Precheck, PrecheckInput{Account: account, From: "stamp-a", To: "stamp-b"})
		require.NoError(t, err)
	}
}

// TestPrecheckGivesUpWhenTheBudgetIsSpent: a destination that keeps failing
// refuses the failover once the budget (the activity's deadline) is spent,
// saying so; a definitive answer refuses at once, saying what it was.
func TestPrecheckGivesUpWhenTheBudgetIsSpent(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	require.NoError(t, w.dst.AddFault(ctx, stamp.Fault{Scope: "control", Op: "status", ErrorRate: 1}))
	bctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	_, err := w.acts.Precheck(bctx, PrecheckInput{Account: account, To: "stamp-b"})
	require.ErrorContains(t, err, "gave up")
	require.ErrorContains(t, err, "destination stamp stamp-b")
	require.ErrorContains(t, err, "injected_fault")
	require.NoError(t, bctx.Err(), "the precheck must answer before its deadline")
	nonRetryable(t, err)

	require.NoError(t, w.dst.ClearFaults(ctx))
	require.NoError(t, w.dst.AddFault(ctx, stamp.Fault{Scope: "control", Op: "status", ErrorRate: 1, Code: stamp.CodeConflict}))
	_, err = w.acts.Precheck(ctx, PrecheckInput{Account: account, To: "stamp-b"})
	require.ErrorContains(t, err, "409 conflict")
	require.NotContains(t, err.Error(), "gave up")
	nonRetryable(t, err)
}

func nonRetryable(t *testing.T, err error) {
	t.Helper()
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	require.True(t, ae.NonRetryable(), "%v must not be retried", err)
}

// TestFlushReplaySetsAsideAFailingPartition: one partition refused on its
// own does not hold back the others' replay; it comes back in Failed with
// its error. A final refusal of one partition fails the call, naming it.
func TestFlushReplaySetsAsideAFailingPartition(t *testing.T) {
	w := newWorld(t)
	w.write(t, 100)
	ctx := context.Background()
	pre, err := exec[PrecheckResult](t, w, w.acts.Precheck, PrecheckInput{Account: account, To: "stamp-b"})
	require.NoError(t, err)
	_, err = exec[FenceResult](t, w, w.acts.Fence, FenceInput{Account: account, FromURL: pre.FromURL, Partitions: partitions, Epoch: 1})
	require.NoError(t, err)
	sent, err := exec[FlushSendResult](t, w, w.acts.FlushSend, FlushSendInput{Account: account, FromURL: pre.FromURL, Partitions: AllPartitions(partitions)})
	require.NoError(t, err)
	require.Len(t, sent.Sent, partitions)

	bad := 3
	require.NoError(t, w.dst.AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFlushReplay, Partition: &bad, ErrorRate: 1}))
	in := FlushReplayInput{Account: account, ToURL: pre.ToURL, Targets: sent.Sent, ReportFailed: true}
	rep, err := exec[FlushReplayResult](t, w, w.acts.FlushReplay, in)
	require.NoError(t, err)
	require.Len(t, rep.Replayed, partitions-1)
	require.Equal(t, []int{bad}, rep.Failed)
	require.Contains(t, rep.Errors[0], "injected_fault")
	in.ReportFailed = false
	_, err = exec[FlushReplayResult](t, w, w.acts.FlushReplay, in)
	require.ErrorContains(t, err, "partition 3")

	require.NoError(t, w.dst.ClearFaults(ctx))
	require.NoError(t, w.dst.AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFlushReplay, Partition: &bad, ErrorRate: 1, Code: stamp.CodeStaleEpoch}))
	in.ReportFailed = true
	_, err = exec[FlushReplayResult](t, w, w.acts.FlushReplay, in)
	require.ErrorContains(t, err, "partition 3")
	require.ErrorContains(t, err, "stale_epoch")
	nonRetryable(t, err)
}

// TestFenceReportsPartitionsItCouldNotFence: best effort, a partition
// refused until Until is reported with its error while the others are
// fenced; otherwise the activity fails, naming it, for Temporal to retry.
func TestFenceReportsPartitionsItCouldNotFence(t *testing.T) {
	w := newWorld(t)
	w.write(t, 50)
	ctx := context.Background()
	bad := 5
	require.NoError(t, w.src.AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFence, Partition: &bad, Unreachable: true}))
	src := w.src.Base()
	res, err := exec[FenceResult](t, w, w.acts.Fence, FenceInput{Account: account, FromURL: src, Partitions: partitions, Epoch: 1,
		BestEffort: true, Until: time.Now().Add(500 * time.Millisecond)})
	require.NoError(t, err)
	require.Equal(t, []int{bad}, res.Unreachable)
	require.Contains(t, res.Errors[0], "unavailable")
	for p, fenced := range res.Fenced {
		require.Equal(t, p != bad, fenced, "partition %d", p)
	}
	_, err = exec[FenceResult](t, w, w.acts.Fence, FenceInput{Account: account, FromURL: src, Partitions: partitions, Epoch: 1,
		Until: time.Now().Add(500 * time.Millisecond)})
	require.ErrorContains(t, err, "still refused [5]")
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		require.False(t, ae.NonRetryable(), "a partition that may come back is retried")
	}
}

// TestStepsOutOfTimeReportNoPartition: a step whose own time runs out
// while its store is slow (a local attempt's budget) fails, to be tried
// again; it does not report the partitions it stopped waiting for as the
// store's failures (a best-effort fence answering so would roll the
// failover back, seen once in TestChaosWorkerKilledInEachPhase).
func TestStepsOutOfTimeReportNoPartition(t *testing.T) {
	w := newWorld(t)
	w.write(t, 50)
	ctx := context.Background()
	src, dst := w.src.Base(), w.dst.Base()
	slow := func(c *stamp.Client, op string) {
		t.Helper()
		require.NoError(t, c.ClearFaults(ctx))
		require.NoError(t, c.AddFault(ctx, stamp.Fault{Scope: "control", Op: op, LatencyMillis: 2000}))
	}
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}

	slow(w.src, stamp.CtlFence)
	_, err := w.acts.Fence(short(), FenceInput{Account: account, FromURL: src, Partitions: partitions, Epoch: 1,
		BestEffort: true, Until: time.Now().Add(time.Minute)})
	require.ErrorContains(t, err, "out of time")

	require.NoError(t, w.src.ClearFaults(ctx))
	_, err = w.acts.Fence(ctx, FenceInput{Account: account, FromURL: src, Partitions: partitions, Epoch: 1})
	require.NoError(t, err)
	slow(w.src, stamp.CtlFlushSend)
	_, err = w.acts.FlushSend(short(), FlushSendInput{Account: account, FromURL: src, Partitions: AllPartitions(partitions)})
	require.ErrorContains(t, err, "out of time")

	require.NoError(t, w.src.ClearFaults(ctx))
	sent, err := w.acts.FlushSend(ctx, FlushSendInput{Account: account, FromURL: src, Partitions: AllPartitions(partitions)})
	require.NoError(t, err)
	slow(w.dst, stamp.CtlFlushReplay)
	_, err = w.acts.FlushReplay(short(), FlushReplayInput{Account: account, ToURL: dst, Targets: sent.Sent, ReportFailed: true})
	require.ErrorContains(t, err, "out of time")
}

// TestPrecheckLocalAttemptRefusesNothing: the fast path's local attempt
// has a budget of its own; a store that keeps failing through it fails
// the attempt, for the precheck to go on as an activity with its whole
// budget, instead of refusing the failover (seen once as "gave up after
// 1s" under load).
func TestPrecheckLocalAttemptRefusesNothing(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(w.acts)
	env.SetTestTimeout(1500 * time.Millisecond)
	for _, c := range []*stamp.Client{w.dst, w.src} {
		require.NoError(t, c.AddFault(ctx, stamp.Fault{Scope: "control", Op: "status", ErrorRate: 1}))
		_, err := env.ExecuteLocalActivity(w.acts.Precheck, PrecheckInput{Account: account, From: "stamp-a", To: "stamp-b"})
		require.ErrorContains(t, err, "going on as an activity")
		var ae *temporal.ApplicationError
		if errors.As(err, &ae) {
			require.False(t, ae.NonRetryable(), "%v refused the failover", err)
		}
		require.NoError(t, c.ClearFaults(ctx))
	}
}

// TestLocalAttemptsLeaveTheRestToAnActivity: a fence or a catch-up whose
// local attempt ends with a partition still refused, or replication still
// behind, fails the attempt (the step goes on as an activity with its
// whole bounds) instead of answering: a best-effort fence would report
// the partition unreachable and roll back, a catch-up would fence the lag.
func TestLocalAttemptsLeaveTheRestToAnActivity(t *testing.T) {
	w := newWorld(t)
	w.write(t, 50)
	ctx := context.Background()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(w.acts)
	env.SetTestTimeout(time.Second)
	src, dst := w.src.Base(), w.dst.Base()

	require.NoError(t, w.src.AddFault(ctx, stamp.Fault{Scope: "control", Op: "status", ErrorRate: 1}))
	_, err := env.ExecuteLocalActivity(w.acts.CatchUp, CatchUpInput{Account: account, FromURL: src, ToURL: dst,
		Partitions: partitions, Timeout: time.Minute})
	require.ErrorContains(t, err, "going on as an activity")
	require.NoError(t, w.src.ClearFaults(ctx))

	bad := 5
	require.NoError(t, w.src.AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFence, Partition: &bad, Unreachable: true}))
	_, err = env.ExecuteLocalActivity(w.acts.Fence, FenceInput{Account: account, FromURL: src, Partitions: partitions, Epoch: 1,
		BestEffort: true, Until: time.Now().Add(time.Minute)})
	require.ErrorContains(t, err, "going on as an activity")
}

// TestWholeCallRefusalNamesNoPartition: a stamp refusing a call as a
// whole (a fence at a stale epoch) fails the step as a stale epoch, naming
// no partition (it is not any one partition's); one partition refused on
// its own is named.
func TestWholeCallRefusalNamesNoPartition(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	_, err := exec[FenceResult](t, w, w.acts.Fence, FenceInput{Account: account, FromURL: w.src.Base(), Partitions: partitions, Epoch: 7})
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, ErrTypeStaleEpoch, ae.Type())
	_, named := RefusedPartition(err)
	require.False(t, named, "%v names a partition", err)

	bad := 6
	require.NoError(t, w.src.AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFence, Partition: &bad, ErrorRate: 1,
		Code: stamp.CodeConflict}))
	_, err = exec[FenceResult](t, w, w.acts.Fence, FenceInput{Account: account, FromURL: w.src.Base(), Partitions: partitions, Epoch: 1})
	pf, named := RefusedPartition(err)
	require.True(t, named, "%v names no partition", err)
	require.Equal(t, bad, pf.Partition)
}
