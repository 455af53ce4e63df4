package testsuite

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/redisdriver"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// requireRedis skips without redis-server on a developer machine and fails
// in CI (CI=true), where .ci/run installs it.
func requireRedis(t *testing.T) {
	t.Helper()
	if _, err := RedisBinary(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v: .ci/run installs it", err)
		}
		t.Skipf("skipped: %v; with CI=true this fails", err)
	}
}

// TestRedisAccountFailsOverWithBaton is issue 16's Redis check through the
// same path as a stamp account's: an 8-shard Redis account (sixteen
// redis-server processes, TLS with the cluster's CA, a password) under
// live writes that follow the location service; `baton failover --wait`
// (the binary) runs the failover workflow on the worker process, which
// fences with CLIENT PAUSE, flush-sends, flush-replays, promotes the
// replicas, repoints the account and rejoins the old primaries. Every
// acknowledged write is on the new primaries; the account is protected
// again at once, so failing back is the same command the other way, and
// loses nothing either.
func TestRedisAccountFailsOverWithBaton(t *testing.T) {
	requireRedis(t)
	password, pwFile, err := NewPassword(t.TempDir(), location.KindRedis)
	require.NoError(t, err)
	c := startCluster(t, Options{WorkerArgs: WorkerArgs(location.KindRedis, pwFile)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const account, shards = "cache", 8
	ra, err := c.StartRedisAccount(ctx, account, shards, password)
	t.Cleanup(ra.Stop)
	require.NoError(t, err)
	rc := traffic.ShardConfig{Kind: location.KindRedis, Account: account, Resolve: traffic.LocationRoute(c.Loc, account), TLS: c.TLS, Password: password}

	for i, to := range []string{SiteB, SiteA} { // the failover, then the failback
		waitReplicasOnline(ctx, t, c, rc)
		w := traffic.NewShards(rc)
		require.NoError(t, w.Start(ctx))
		require.NoError(t, Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= 500, nil }))
		out, err := baton(ctx, t, c, "failover", account, "--to", to, "--wait", "--reason", "redis e2e")
		require.NoError(t, err, out)
		require.Contains(t, out, "completed", out)
		rep, err := traffic.AuditShards(ctx, rc, w.Stop())
		require.NoError(t, err)
		require.NoError(t, rep.Err(), "failover %d to %s", i+1, to)
		acct, err := c.Loc.Lookup(ctx, account)
		require.NoError(t, err)
		require.Equal(t, to, acct.Primary)
		require.False(t, acct.Unprotected, "the old primaries rejoined: the account is protected")
		t.Logf("failover %d to %s: %d acknowledged writes, 0 lost", i+1, to, rep.Acks)
	}
}

// waitReplicasOnline waits until the replicas of the account's primaries
// are online.
func waitReplicasOnline(ctx context.Context, t *testing.T, c *Cluster, rc traffic.ShardConfig) {
	t.Helper()
	d := redisdriver.New(redisdriver.Options{TLS: c.TLS, Password: rc.Password})
	defer d.Close()
	rt, err := rc.Resolve(ctx)
	require.NoError(t, err)
	require.NoError(t, WaitReplicasOnline(ctx, d, driver.Side{Account: rc.Account, Endpoints: rt.Endpoints}))
}

// TestRedisWorkerKillMidFlush: the worker process is SIGKILLed while it
// flush-sends a Redis account: its shards' replicas were resyncing from
// scratch when the failover began (a full sync that waits 3 s before it
// starts), so flush-send waits for them. A new worker process picks the
// failover up, it finishes, and no acknowledged write is lost.
func TestRedisWorkerKillMidFlush(t *testing.T) {
	requireRedis(t)
	password, pwFile, err := NewPassword(t.TempDir(), location.KindRedis)
	require.NoError(t, err)
	c := startCluster(t, Options{WorkerArgs: WorkerArgs(location.KindRedis, pwFile)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const account, shards = "cache-kill", 4
	ra, err := c.StartRedisAccount(ctx, account, shards, password)
	t.Cleanup(ra.Stop)
	require.NoError(t, err)
	rc := traffic.ShardConfig{Kind: location.KindRedis, Account: account, Resolve: traffic.LocationRoute(c.Loc, account), TLS: c.TLS, Password: password}
	waitReplicasOnline(ctx, t, c, rc)
	w := traffic.NewShards(rc)
	require.NoError(t, w.Start(ctx))
	require.NoError(t, Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= 500, nil }))

	// Every replica starts a full resync that waits 3 s on its primary.
	acct, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	for s := range shards {
		primary, replica := redisCLI(t, c, acct.PrimaryEndpoints[s], password), redisCLI(t, c, acct.SecondaryEndpoints[s], password)
		require.NoError(t, primary.ConfigSet(ctx, "repl-diskless-sync-delay", "3").Err())
		require.NoError(t, replica.Do(ctx, "REPLICAOF", "NO", "ONE").Err())
		host, port, _ := strings.Cut(acct.PrimaryEndpoints[s], ":")
		require.NoError(t, replica.Do(ctx, "REPLICAOF", host, port).Err())
	}

	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{Account: account,
		ToStamp: SiteB, Reason: "worker kill", RequestedBy: t.Name(), Options: workflows.FailoverOptions{CatchUpTimeout: -1}})
	require.NoError(t, err)
	awaitRunning(ctx, t, c.Client, run.GetID(), run.GetID(), activities.NameFlushSend)
	c.Worker.Kill()
	require.NoError(t, c.Worker.Restart())

	var res workflows.FailoverResult
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	rep, err := traffic.AuditShards(ctx, rc, w.Stop())
	require.NoError(t, err)
	require.NoError(t, rep.Err())
	require.Positive(t, retries(ctx, t, c.Client, run.GetID(), 0), "the killed worker's activity must have been retried")
}

// redisCLI is a client of one of the cluster's Redis servers, as the
// tests' certificate.
func redisCLI(t *testing.T, c *Cluster, addr, password string) *redis.Client {
	t.Helper()
	r := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: c.TLS.Clone(), Password: password})
	t.Cleanup(func() { _ = r.Close() })
	return r
}
