package testsuite

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// chaosRun is one chaos scenario's measured figures, printed as a
// RELIABILITY line that cmd/reliability turns into docs/RELIABILITY.md.
type chaosRun struct {
	scenario string
	outcome  string
	kills    int
	faults   string
	// elapsed is the failover's time from start to end as the test saw it;
	// fencedMillis the write-unavailability window the workflow measured
	// (fence to promote, or to unfence on a rollback); ackGap the longest
	// time the clients saw no write acknowledged.
	elapsed      time.Duration
	fencedMillis int64
	ackGap       time.Duration
	// retries: activity attempts beyond the first, plus runs of a workflow
	// beyond its first, across every run of the failover and its groups.
	retries int
	acked   int64
	lost    int
	// struck counts the calls the stamps' injected faults struck.
	struck int64
	// note adds what the scenario checked beyond the columns.
	note string
}

// faultsStruck sums, over both stamps, the calls their faults struck.
func faultsStruck(ctx context.Context, t *testing.T, c *Cluster) int64 {
	t.Helper()
	var n int64
	for _, s := range []string{StampA, StampB} {
		fs, err := c.StampClient(s).Faults(ctx)
		if err != nil {
			continue // a stamp the scenario killed or cut off
		}
		for _, f := range fs {
			n += f.Struck
		}
	}
	return n
}

func (r chaosRun) log(t *testing.T) {
	t.Helper()
	t.Logf("RELIABILITY | %s | outcome %s | kills %d | faults %s | faults struck %d | time %s | fenced %s | longest ack gap %s | retries %d | acknowledged %d | lost %d | %s",
		r.scenario, r.outcome, r.kills, r.faults, r.struck, measured(r.elapsed), measured(time.Duration(r.fencedMillis)*time.Millisecond),
		measured(r.ackGap), r.retries, r.acked, r.lost, r.note)
}

// measured prints a duration a scenario measured, or "—" for one it did
// not (zero): a row never claims a window of 0s it did not see.
func measured(d time.Duration) string {
	if d <= 0 {
		return "—"
	}
	return d.Round(10 * time.Millisecond).String()
}

// phase reads a failover's BatonPhase search attribute: it works while no
// worker runs, unlike the progress query.
func phase(ctx context.Context, c client.Client, id string) workflows.Phase {
	d, err := c.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return ""
	}
	var p string
	if pl, ok := d.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()[workflows.SearchPhase.GetName()]; ok {
		_ = converter.GetDefaultDataConverter().FromPayload(pl, &p)
	}
	return workflows.Phase(p)
}

// running reports whether activity name is running (started, not done) in
// workflow wid: the moment to strike for a crash "mid" that activity.
func running(ctx context.Context, c client.Client, wid, name string) bool {
	d, err := c.DescribeWorkflowExecution(ctx, wid, "")
	if err != nil {
		return false
	}
	for _, pa := range d.GetPendingActivities() {
		if pa.GetActivityType().GetName() == name && pa.GetState() == enums.PENDING_ACTIVITY_STATE_STARTED {
			return true
		}
	}
	return false
}

// awaitRunning polls until activity runs in workflow wid, or in root when
// the failover flushes its groups inline (the fast path: a step that
// outlasts its local attempt runs as a regular activity of the failover),
// and fails fast if the failover (root) ends first: the strike would have
// missed.
func awaitRunning(ctx context.Context, t *testing.T, c client.Client, root, wid, activity string) {
	t.Helper()
	require.NoError(t, Poll(ctx, 10*time.Millisecond, func() (bool, error) {
		if running(ctx, c, wid, activity) || (wid != root && running(ctx, c, root, activity)) {
			return true, nil
		}
		d, err := c.DescribeWorkflowExecution(ctx, root, "")
		if err == nil && d.GetWorkflowExecutionInfo().GetStatus() != enums.WORKFLOW_EXECUTION_STATUS_RUNNING {
			var res workflows.FailoverResult
			werr := c.GetWorkflow(ctx, root, "").Get(ctx, &res)
			return false, fmt.Errorf("failover %s ended (%v, outcome %q) before %s ran in %s: nothing to strike", root, werr, res.Outcome, activity, wid)
		}
		return false, nil
	}))
}

// retries counts, across every run of a failover's parent and of each of
// its groups, activity attempts beyond the first and runs beyond the first.
func retries(ctx context.Context, t *testing.T, c client.Client, id string, groups int) int {
	t.Helper()
	n := 0
	ids := []string{id}
	for i := range groups {
		ids = append(ids, fmt.Sprintf("%s/group-%04d", id, i))
	}
	for _, wid := range ids {
		runs := runsOf(ctx, t, c, wid)
		n += max(0, len(runs)-1)
		for _, rid := range runs {
			it := c.GetWorkflowHistory(ctx, wid, rid, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
			for it.HasNext() {
				ev, err := it.Next()
				require.NoError(t, err)
				if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && a.GetAttempt() > 1 {
					n += int(a.GetAttempt() - 1)
				}
			}
		}
	}
	return n
}

// runsOf lists every run of workflow wid, the first first: a retried
// workflow is a new run under the same ID, named by its predecessor's close
// event.
func runsOf(ctx context.Context, t *testing.T, c client.Client, wid string) []string {
	t.Helper()
	d, err := c.DescribeWorkflowExecution(ctx, wid, "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil // never started (the failover stopped first)
	}
	require.NoError(t, err)
	info := d.GetWorkflowExecutionInfo()
	rid := info.GetFirstRunId()
	if rid == "" {
		rid = info.GetExecution().GetRunId()
	}
	var runs []string
	for rid != "" {
		runs = append(runs, rid)
		it := c.GetWorkflowHistory(ctx, wid, rid, false, enums.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT)
		next := ""
		for it.HasNext() {
			ev, err := it.Next()
			require.NoError(t, err)
			switch {
			case ev.GetWorkflowExecutionFailedEventAttributes() != nil:
				next = ev.GetWorkflowExecutionFailedEventAttributes().GetNewExecutionRunId()
			case ev.GetWorkflowExecutionTimedOutEventAttributes() != nil:
				next = ev.GetWorkflowExecutionTimedOutEventAttributes().GetNewExecutionRunId()
			case ev.GetWorkflowExecutionContinuedAsNewEventAttributes() != nil:
				next = ev.GetWorkflowExecutionContinuedAsNewEventAttributes().GetNewExecutionRunId()
			}
		}
		rid = next
	}
	return runs
}

// underTraffic provisions an account, runs traffic on it, starts a planned
// failover with opts, lets strike act on the cluster while it runs, waits
// for the result and audits every acknowledged write.
func underTraffic(t *testing.T, c *Cluster, account string, opts workflows.FailoverOptions,
	strike func(ctx context.Context, id string) (kills int)) (workflows.FailoverResult, chaosRun, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const partitions = 16
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 500, Workers: 8})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 500, gen.Err() }))

	opts.HeartbeatTimeout = 2 * time.Second
	started := time.Now()
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Reason: "chaos", RequestedBy: t.Name(), Options: opts,
	})
	require.NoError(t, err)
	kills := 0
	if strike != nil {
		kills = strike(ctx, run.GetID())
	}
	res, ferr := result(ctx, run)
	elapsed := time.Since(started)
	// Traffic goes on a little on whichever stamp is primary now.
	acks := gen.AckCount()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= acks+200, gen.Err() }))
	st := gen.Stop()
	rep, err := traffic.Audit(ctx, c.Loc, account, gen.Acked(), traffic.AuditConfig{})
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.String())
	cr := chaosRun{kills: kills, acked: st.Acks, lost: rep.Lost, retries: retries(ctx, t, c.Client, run.GetID(), (partitions+249)/250),
		outcome: string(res.Outcome), elapsed: elapsed, fencedMillis: res.UnavailableMillis, ackGap: traffic.LongestGap(gen.Acked()),
		struck: faultsStruck(ctx, t, c)}
	return res, cr, ferr
}

// result waits for a failover and reads its report: its result if it
// completed, else the details of the error it ended with; and that error.
func result(ctx context.Context, run client.WorkflowRun) (workflows.FailoverResult, error) {
	var res workflows.FailoverResult
	err := run.Get(ctx, &res)
	if err == nil {
		return res, nil
	}
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.HasDetails() {
		_ = ae.Details(&res)
	}
	return res, err
}

// promotedOnce checks the epoch was bumped exactly once and every
// partition of the new primary took it.
func promotedOnce(t *testing.T, c *Cluster, account string) {
	t.Helper()
	ctx := context.Background()
	acct, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.Equal(t, StampB, acct.Primary)
	require.Equal(t, uint64(2), acct.Epoch, "the epoch is bumped exactly once")
	st, err := c.StampClient(StampB).Status(ctx, account, nil)
	require.NoError(t, err)
	for _, p := range st.Partitions {
		require.Equal(t, stamp.RolePrimary, p.Role)
		require.Equal(t, uint64(2), p.Epoch)
	}
	// Split brain: the old primary refuses writes, with either epoch.
	for _, epoch := range []uint64{1, 2} {
		_, err := c.StampClient(StampA).Put(ctx, account, "after-failover", "x", epoch)
		require.Error(t, err, "old primary accepted a write at epoch %d after promote", epoch)
	}
}

// TestChaosWorkerKilledInEachPhase: SIGKILL the worker in each phase and
// start a new one; the failover completes, promotes once, loses nothing.
func TestChaosWorkerKilledInEachPhase(t *testing.T) {
	// Each phase's stamp call is slowed down by 3 s, and the worker dies
	// while that activity is running.
	tests := []struct {
		name     string
		on       string // stamp the fault goes on
		op       string // its slowed control call
		activity string // the activity that is running when the worker dies
		child    bool   // it runs in the first group child, not the parent
	}{
		{"during fence", StampA, stamp.CtlFence, activities.NameFence, false},
		{"mid flush-send", StampA, stamp.CtlFlushSend, activities.NameFlushSend, true},
		{"mid flush-replay", StampB, stamp.CtlFlushReplay, activities.NameFlushReplay, true},
		{"just before promote", StampB, stamp.CtlPromote, activities.NamePromote, false},
	}
	c := startCluster(t, Options{Durable: true})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			require.NoError(t, c.StampClient(tt.on).AddFault(ctx, stamp.Fault{Scope: "control", Op: tt.op, LatencyMillis: 3000}))
			defer func() { require.NoError(t, c.StampClient(tt.on).ClearFaults(ctx)) }()
			account := fmt.Sprintf("worker-kill-%d", i)
			res, cr, err := underTraffic(t, c, account, workflows.FailoverOptions{CatchUpTimeout: -1}, func(ctx context.Context, id string) int {
				wid := id
				if tt.child {
					wid = id + "/group-0000"
				}
				awaitRunning(ctx, t, c.Client, id, wid, tt.activity)
				c.Worker.Kill()
				require.NoError(t, c.Worker.Restart())
				return 1
			})
			require.NoError(t, err)
			require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
			promotedOnce(t, c, account)
			cr.scenario, cr.faults = "worker SIGKILL "+tt.name, fmt.Sprintf("%s latency 3s on %s", tt.op, tt.on)
			cr.log(t)
			require.Zero(t, cr.lost)
			require.Positive(t, cr.retries, "the killed worker's activity must have been retried")
		})
	}
}

// TestChaosTemporalRestart: the Temporal server (file-backed SQLite) is
// killed and restarted mid-failover; the failover resumes and completes.
func TestChaosTemporalRestart(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx := context.Background()
	require.NoError(t, c.StampClient(StampB).AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFlushReplay, LatencyMillis: 2000}))
	res, cr, err := underTraffic(t, c, "temporal-restart", workflows.FailoverOptions{CatchUpTimeout: -1}, func(ctx context.Context, id string) int {
		awaitRunning(ctx, t, c.Client, id, id+"/group-0000", activities.NameFlushReplay)
		c.Temporal.Kill()
		require.NoError(t, c.Temporal.Restart())
		require.NoError(t, c.Temporal.WaitReady(ctx))
		return 1
	})
	require.NoError(t, err)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	promotedOnce(t, c, "temporal-restart")
	cr.scenario, cr.faults = "Temporal server SIGKILL + restart mid-flush", "flush-replay latency 2s on stamp-b"
	cr.log(t)
}

// TestChaosStampFaults: a 20% error rate and added latency on both stamps'
// control calls; the failover completes through retries.
func TestChaosStampFaults(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx := context.Background()
	for _, s := range []string{StampA, StampB} {
		require.NoError(t, c.StampClient(s).AddFault(ctx, stamp.Fault{Scope: "control", Account: "flaky-stamps", ErrorRate: 0.2, LatencyMillis: 50}))
	}
	res, cr, err := underTraffic(t, c, "flaky-stamps", workflows.FailoverOptions{}, nil)
	require.NoError(t, err)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	// The checks below read the stamps themselves: without the faults.
	for _, s := range []string{StampA, StampB} {
		require.NoError(t, c.StampClient(s).ClearFaults(ctx))
	}
	promotedOnce(t, c, "flaky-stamps")
	cr.scenario, cr.faults = "20% errors + 50 ms on every control call", "error_rate 0.2, latency 50 ms, both stamps"
	cr.log(t)
}

// TestChaosNonRetryableFaultFailsFast: a stale-epoch answer is not retried;
// the failover stops at once, rolls back, and nothing is promoted.
func TestChaosNonRetryableFaultFailsFast(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx := context.Background()
	require.NoError(t, c.StampClient(StampB).AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFlushReplay, ErrorRate: 1, Code: stamp.CodeStaleEpoch}))
	_, cr, err := underTraffic(t, c, "stale-epoch", workflows.FailoverOptions{}, nil)
	require.ErrorContains(t, err, "stale_epoch")
	require.ErrorContains(t, err, "rolled back")
	require.Zero(t, cr.retries, "a non-retryable answer must not be retried")
	acct, lerr := c.Loc.Lookup(ctx, "stale-epoch")
	require.NoError(t, lerr)
	require.Equal(t, StampA, acct.Primary)
	require.Equal(t, uint64(1), acct.Epoch)
	st, serr := c.StampClient(StampB).Status(ctx, "stale-epoch", nil)
	require.NoError(t, serr)
	for _, p := range st.Partitions {
		require.Equal(t, stamp.RoleSecondary, p.Role, "nothing may be promoted")
	}
	cr.scenario, cr.faults = "non-retryable stale epoch on flush-replay", "flush-replay answers 409 stale_epoch"
	cr.log(t)
}

// TestChaosDestinationStampCrash: kill -9 the destination stampd
// mid-replay and restart it; replay resumes from its durable LSN.
func TestChaosDestinationStampCrash(t *testing.T) {
	// Replay lags the traffic (20 ops/s per partition), and the first
	// flush-replay answer is held 3 s: the crash lands mid-replay. The fault
	// lives in memory, so the restarted stamp replays at full speed.
	c := startCluster(t, Options{Durable: true, ReplayRate: 20})
	require.NoError(t, c.StampClient(StampB).AddFault(context.Background(), stamp.Fault{Scope: "control", Op: stamp.CtlFlushReplay, LatencyMillis: 3000}))
	res, cr, err := underTraffic(t, c, "stamp-crash", workflows.FailoverOptions{CatchUpTimeout: -1}, func(ctx context.Context, id string) int {
		awaitRunning(ctx, t, c.Client, id, id+"/group-0000", activities.NameFlushReplay)
		c.Stamps[StampB].Kill()
		require.NoError(t, c.RestartStamp(ctx, StampB))
		return 1
	})
	require.NoError(t, err)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	promotedOnce(t, c, "stamp-crash")
	cr.scenario, cr.faults = "destination stampd kill -9 + restart mid-replay", "replay 20 ops/s/partition, flush-replay +3 s"
	cr.log(t)
}

// TestChaosSourceUnreachableInPlannedFailover: the source stops answering
// flush-send; the planned failover gives up and rolls back, the account
// stays on the old primary, nothing is lost.
func TestChaosSourceUnreachableInPlannedFailover(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx := context.Background()
	require.NoError(t, c.StampClient(StampA).AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFlushSend, Unreachable: true}))
	_, cr, err := underTraffic(t, c, "source-gone", workflows.FailoverOptions{FlushSendGiveUp: 3 * time.Second}, nil)
	require.ErrorContains(t, err, "rolled back: source-gone is still primary on stamp-a")
	acct, lerr := c.Loc.Lookup(ctx, "source-gone")
	require.NoError(t, lerr)
	require.Equal(t, StampA, acct.Primary)
	cr.scenario, cr.faults = "source unreachable for flush-send, planned", "flush-send connections closed on stamp-a"
	cr.log(t)
}

// TestChaosPressure: 20 accounts fail over at once on one worker while
// traffic runs on all of them; all complete and nothing is lost.
func TestChaosPressure(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const accounts, partitions = 20, 16
	gens := make([]*traffic.Generator, accounts)
	for i := range accounts {
		acct := fmt.Sprintf("pressure-%02d", i)
		_, err := c.Provision(ctx, acct, partitions)
		require.NoError(t, err)
		gens[i] = traffic.New(traffic.Config{Location: c.Loc, Account: acct, Rate: 50, Workers: 2})
		require.NoError(t, gens[i].Start(ctx))
		defer gens[i].Stop()
	}
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		for _, g := range gens {
			if g.AckCount() < 50 {
				return false, g.Err()
			}
		}
		return true, nil
	}))
	var wg sync.WaitGroup
	errs := make([]error, accounts)
	fenced := make([]int64, accounts)
	started := time.Now()
	for i := range accounts {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
				Account: fmt.Sprintf("pressure-%02d", i), ToStamp: StampB, Reason: "pressure", RequestedBy: t.Name()})
			if err == nil {
				var res workflows.FailoverResult
				err = run.Get(ctx, &res)
				fenced[i] = res.UnavailableMillis
			}
			errs[i] = err
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(started)
	var acked int64
	var ackGap time.Duration
	lost := 0
	for i, g := range gens {
		require.NoError(t, errs[i], "failover of pressure-%02d", i)
		st := g.Stop()
		rep, err := traffic.Audit(ctx, c.Loc, fmt.Sprintf("pressure-%02d", i), g.Acked(), traffic.AuditConfig{})
		require.NoError(t, err)
		require.True(t, rep.OK(), rep.String())
		require.Equal(t, StampB, rep.Stamp)
		acked += st.Acks
		lost += rep.Lost
		ackGap = max(ackGap, traffic.LongestGap(g.Acked()))
	}
	chaosRun{scenario: fmt.Sprintf("%d accounts at once on one worker", accounts), outcome: fmt.Sprintf("%d completed", accounts), faults: "none",
		elapsed: elapsed, fencedMillis: slices.Max(fenced), ackGap: ackGap, acked: acked, lost: lost,
		note: "time: all of them; fenced window and ack gap: the worst account's"}.log(t)
}

// TestChaosSplitBrainNeverAcknowledged: across a failover under traffic, no
// key is acknowledged by both stamps under one epoch, and the old primary
// refuses writes after promote whatever epoch they carry.
func TestChaosSplitBrainNeverAcknowledged(t *testing.T) {
	c := startCluster(t, Options{Durable: true})
	res, cr, err := underTraffic(t, c, "split-brain", workflows.FailoverOptions{}, nil)
	require.NoError(t, err)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	promotedOnce(t, c, "split-brain")
	ctx := context.Background()
	_, perr := c.StampClient(StampA).Put(ctx, "split-brain", "late", "x", 2)
	require.True(t, stamp.IsCode(perr, stamp.CodeNotPrimary) || stamp.IsCode(perr, stamp.CodeFenced), "old primary: %v", perr)
	require.True(t, strings.Contains(perr.Error(), "stamp"), perr.Error())
	cr.scenario, cr.faults = "split brain check (audit + writes to the old primary)", "none"
	cr.log(t)
}
