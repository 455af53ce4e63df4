package testsuite

import (
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// requirePostgres skips the test when PostgreSQL's server binaries are not
// installed, except in CI (CI=true), where that is a failure: .ci/run
// installs them.
func requirePostgres(t *testing.T) {
	t.Helper()
	if _, err := PostgresBinDir(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v (.ci/run installs Debian's postgresql)", err)
		}
		t.Skipf("skipped: %v (with CI=true this fails)", err)
	}
}

// TestPostgresClusterWorkerKilledMidFlush runs Baton the way production
// does: the real Temporal server (all services, one process) on PostgreSQL
// with its durable defaults (fsync, full_page_writes, synchronous_commit
// on; checked) and the schema made by temporal-sql-tool, and two worker processes on
// the same task queue. A 1,000-partition account fails over under live
// traffic; mid-flush the worker that holds a running flush activity is
// SIGKILLed and not restarted. The other worker takes that activity over
// (after its heartbeat timeout) and finishes the failover; the audit finds
// every acknowledged write on the new primary.
func TestPostgresClusterWorkerKilledMidFlush(t *testing.T) {
	requirePostgres(t)
	began := time.Now()
	c := startCluster(t, Options{Backend: BackendPostgres, Workers: 2, WorkerMetrics: true,
		Durable: true, ReplicationDelay: 20 * time.Millisecond, ReplayRate: 3000})
	started := time.Now()
	t.Logf("cluster on PostgreSQL %s up in %v (server %s, workers pids %d and %d)",
		c.Postgres.Addr(), started.Sub(began).Round(time.Millisecond), c.Server.HostPort, c.Workers[0].PID(), c.Workers[1].PID())
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	// As production runs it: PostgreSQL's durable defaults.
	for _, name := range []string{"fsync", "full_page_writes", "synchronous_commit"} {
		v, err := c.Postgres.Setting(ctx, name)
		require.NoError(t, err)
		require.Equal(t, "on", v, "PostgreSQL's %s", name)
	}

	const account, partitions = "pg-acct", 1000
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 500, Workers: 8})
	require.NoError(t, gen.Start(ctx))
	stopped := false
	defer func() {
		if !stopped {
			gen.Stop()
		}
	}()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 500, gen.Err() }))

	// A slow destination: each flush-replay call takes 2 s more, so the
	// flush lasts long enough to kill a worker in the middle of it.
	require.NoError(t, c.StampClient(StampB).AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFlushReplay, LatencyMillis: 2000}))

	submitted := time.Now()
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Reason: "postgres cluster e2e", RequestedBy: t.Name(),
		Options: workflows.FailoverOptions{HeartbeatTimeout: 6 * time.Second},
	})
	require.NoError(t, err)
	id := run.GetID()

	// Mid-flush: the progress query says flush with partitions still to
	// replay, and a group child has a FlushReplay activity on a worker that
	// started less than a second ago: its first call to stamp-b takes 2 s,
	// so it is certainly still running when its worker is killed.
	var held HeldActivity
	require.NoError(t, Poll(ctx, 10*time.Millisecond, func() (bool, error) {
		var ok bool
		held, ok = c.MidFlush(ctx, id, activities.NameFlushReplay, time.Second)
		return ok, nil
	}), "never saw the failover mid-flush")
	victim, survivor := held.Worker, 1-held.Worker
	survivorIdentity := strconv.Itoa(c.Workers[survivor].PID()) + "@"
	c.Workers[victim].Kill()
	killedAt := time.Now()
	t.Logf("SIGKILLed %s (pid-identity %s) while it ran %s %s of %s, %v after the start",
		c.Workers[victim].Name, held.Identity, held.Activity, held.ActivityID, held.WorkflowID, killedAt.Sub(submitted).Round(time.Millisecond))
	require.True(t, c.Workers[survivor].Running())

	var res workflows.FailoverResult
	require.NoError(t, run.Get(ctx, &res))
	done := time.Now()
	require.NoError(t, c.StampClient(StampB).ClearFaults(ctx))
	require.False(t, c.Workers[victim].Running(), "the killed worker stays dead")

	require.Equal(t, StampB, res.To)
	require.Equal(t, uint64(2), res.NewEpoch)
	require.Len(t, res.Table.Partition, partitions)
	for p := range partitions {
		require.Equal(t, res.Table.FinalLSN[p], res.Table.SentLSN[p], "partition %d sent", p)
		require.Equal(t, res.Table.FinalLSN[p], res.Table.ReplayedLSN[p], "partition %d replayed", p)
	}
	acct, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.Equal(t, StampB, acct.Primary)
	require.Equal(t, uint64(2), acct.Epoch)

	// The activity the dead worker held was finished by the other one, on a
	// later attempt.
	var finishedBy string
	var attempt int32
	it := c.Client.GetWorkflowHistory(ctx, held.WorkflowID, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	scheduled := map[int64]string{}
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil {
			scheduled[ev.GetEventId()] = a.GetActivityId()
		}
		if a := ev.GetActivityTaskStartedEventAttributes(); a != nil && scheduled[a.GetScheduledEventId()] == held.ActivityID {
			finishedBy, attempt = a.GetIdentity(), a.GetAttempt()
		}
	}
	require.True(t, strings.HasPrefix(finishedBy, survivorIdentity), "%s %s finished by %q, want the surviving worker %s", held.Activity, held.ActivityID, finishedBy, survivorIdentity)
	require.GreaterOrEqual(t, attempt, int32(2))

	// Traffic follows the account to stamp-b; then the audit.
	before := gen.Stats().AcksByStamp[StampB]
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen.Stats().AcksByStamp[StampB] >= before+200, gen.Err()
	}))
	st := gen.Stop()
	stopped = true
	rep, err := traffic.Audit(ctx, c.Loc, account, gen.Acked(), traffic.AuditConfig{})
	require.NoError(t, err)
	t.Log(rep.String())
	require.Equal(t, StampB, rep.Stamp)
	require.Zero(t, rep.Lost, "acknowledged writes lost")
	require.Zero(t, rep.Mismatched)
	require.Empty(t, rep.SplitBrain)
	require.Positive(t, st.AcksByStamp[StampA])
	require.Positive(t, st.AcksByStamp[StampB])

	// The surviving worker's /metrics has the SDK's metrics and Baton's
	// (the workflow ended on it).
	mctx, mcancel := context.WithTimeout(ctx, 30*time.Second)
	defer mcancel()
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^temporal_request_total\{.*operation="RespondActivityTaskCompleted".*\} [1-9]`),
		regexp.MustCompile(`(?m)^temporal_workflow_completed_total\{.*workflow_type="AccountFailover".*\} [1-9]`),
		regexp.MustCompile(`(?m)^temporal_activity_execution_latency_seconds_count\{.*activity_type="FlushReplay".*\} [1-9]`),
		regexp.MustCompile(`(?m)^baton_failovers_total\{.*mode="planned".*outcome="completed".*\} 1$`),
		regexp.MustCompile(`(?m)^baton_failover_duration_seconds_count\{.*mode="planned".*\} 1$`),
		regexp.MustCompile(`(?m)^baton_partitions_replayed_total\{.*\} 1000$`),
	}
	var body string
	require.NoError(t, Poll(mctx, 100*time.Millisecond, func() (bool, error) {
		body = scrapeMetrics(c.WorkerMetricsURLs[survivor])
		for _, re := range want {
			if !re.MatchString(body) {
				return false, nil
			}
		}
		return true, nil
	}), "the surviving worker's /metrics lacks one of %v:\n%s", want, body)
	// And the server its own, persistence on PostgreSQL included.
	require.Contains(t, scrapeMetrics(c.Server.MetricsURL), "persistence_requests{")

	t.Logf("BENCH | temporal server %s on PostgreSQL (%s) | 2 workers, one SIGKILLed mid-flush | %d partitions | failover %v (kill to completion %v) | report total %d ms, writes unavailable %d ms | %d writes acknowledged, %d lost | whole test %v",
		TemporalServerVersion, c.Postgres.Mode(), partitions, done.Sub(submitted).Round(time.Millisecond), done.Sub(killedAt).Round(time.Millisecond),
		res.TotalMillis, res.UnavailableMillis, st.Acks, rep.Lost, time.Since(began).Round(time.Second))
}

// scrapeMetrics fetches a /metrics page ("" when it does not answer).
func scrapeMetrics(url string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return ""
	}
	return string(b)
}
