package testsuite

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// storeCluster is a cluster whose worker drives accounts of kind, and an
// account of shards of that kind with live writes' configuration.
func storeCluster(ctx context.Context, t *testing.T, kind, account string, shards int) (*Cluster, *ShardAccount) {
	t.Helper()
	RequireStore(t, kind)
	password, pwFile, err := NewPassword(t.TempDir(), kind)
	require.NoError(t, err)
	c := startCluster(t, Options{WorkerArgs: WorkerArgs(kind, pwFile)})
	start := c.StartRedisAccount
	if kind == location.KindPostgres {
		start = c.StartPGAccount
	}
	sa, err := start(ctx, account, shards, password)
	t.Cleanup(sa.Stop)
	require.NoError(t, err)
	return c, sa
}

// TestStoreAccountsFailOverWithBaton is issue 16's planned failover of a
// 4-shard PostgreSQL account and an 8-shard Redis account, through the same
// path as a stamp account's: real servers (TLS with the cluster's CA,
// passwords), live writes that follow the location service, and `baton
// failover --wait` (the binary) running the failover workflow on the worker
// process through the store's driver. Every acknowledged write is on the
// new primaries. Then the account fails back, after the old primaries
// rejoined as replicas (Redis: in the failover itself; PostgreSQL: the
// operator's pg_rewind), and loses nothing either.
func TestStoreAccountsFailOverWithBaton(t *testing.T) {
	for _, tc := range []struct {
		kind   string
		shards int
	}{{location.KindPostgres, 4}, {location.KindRedis, 8}} {
		t.Run(tc.kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			account := "shop-" + tc.kind
			c, sa := storeCluster(ctx, t, tc.kind, account, tc.shards)
			siteA, siteB := Sites(tc.kind)
			if tc.kind == location.KindRedis {
				// Refused, touching nothing: the failovers below find the account as it was.
				out, err := baton(ctx, t, c, "failover", account, "--to", siteB, "--mode", "unplanned", "--approve", "--wait",
					"--reason", "refused")
				require.Error(t, err, out)
				require.Contains(t, out, "cannot fail over unplanned", out)
			}
			for i, to := range []string{siteB, siteA} { // the failover, then the failback
				require.NoError(t, sa.WaitOnline(ctx, c))
				cfg := sa.Config(c)
				w := traffic.NewShards(cfg)
				require.NoError(t, w.Start(ctx))
				require.NoError(t, Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= 500, nil }))
				out, err := baton(ctx, t, c, "failover", account, "--to", to, "--wait", "--reason", "stores e2e")
				require.NoError(t, err, out)
				require.Contains(t, out, "completed", out)
				rep, err := traffic.AuditShards(ctx, cfg, w.Stop())
				require.NoError(t, err)
				require.NoError(t, rep.Err(), "failover %d to %s", i+1, to)
				acct, err := c.Loc.Lookup(ctx, account)
				require.NoError(t, err)
				require.Equal(t, to, acct.Primary)
				// Redis rejoined in the failover; PostgreSQL waits for the operator.
				require.Equal(t, tc.kind == location.KindPostgres, acct.Unprotected)
				t.Logf("failover %d to %s: %d acknowledged writes, 0 lost", i+1, to, rep.Acks)
				out, err = baton(ctx, t, c, "status", account)
				require.NoError(t, err, out)
				require.Contains(t, out, "readiness is not checked yet", out)
				rejoinAndReprotect(ctx, t, c, sa)
			}
		})
	}
}

// TestStoreWorkerKillMidFlush: on each driver, the worker process is
// SIGKILLed while the failover waits in a flush step: Redis replicas
// resyncing from scratch when the failover began (flush-send waits for
// them), PostgreSQL standbys whose replay is paused (flush-replay waits).
// A new worker process picks the failover up, it finishes once the replicas
// catch up, and no acknowledged write is lost.
func TestStoreWorkerKillMidFlush(t *testing.T) {
	for _, tc := range []struct {
		kind     string
		activity string
		stall    func(ctx context.Context, t *testing.T, c *Cluster, sa *ShardAccount, acct location.Account) (release func())
	}{
		{location.KindRedis, activities.NameFlushSend, resyncRedisReplicas},
		{location.KindPostgres, activities.NameFlushReplay, pausePGReplay},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			account := "kill-" + tc.kind
			c, sa := storeCluster(ctx, t, tc.kind, account, 4)
			require.NoError(t, sa.WaitOnline(ctx, c))
			cfg := sa.Config(c)
			w := traffic.NewShards(cfg)
			require.NoError(t, w.Start(ctx))
			require.NoError(t, Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= 500, nil }))
			acct, err := c.Loc.Lookup(ctx, account)
			require.NoError(t, err)
			release := tc.stall(ctx, t, c, sa, acct)

			run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{Account: account,
				ToStamp: acct.Secondary, Reason: "worker kill", RequestedBy: t.Name(), Options: workflows.FailoverOptions{CatchUpTimeout: -1}})
			require.NoError(t, err)
			awaitRunning(ctx, t, c.Client, run.GetID(), run.GetID(), tc.activity)
			c.Worker.Kill()
			require.NoError(t, c.Worker.Restart())
			release()

			var res workflows.FailoverResult
			require.NoError(t, run.Get(ctx, &res))
			require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
			rep, err := traffic.AuditShards(ctx, cfg, w.Stop())
			require.NoError(t, err)
			require.NoError(t, rep.Err())
			require.Positive(t, retries(ctx, t, c.Client, run.GetID(), 0), "the killed worker's activity must have been retried")
		})
	}
}

// resyncRedisReplicas starts a full resync of every replica that waits
// 3 s on its primary: flush-send waits for it. It ends by itself.
func resyncRedisReplicas(ctx context.Context, t *testing.T, c *Cluster, sa *ShardAccount, acct location.Account) func() {
	t.Helper()
	for s := range acct.Partitions {
		primary, replica := redisCLI(t, c, acct.PrimaryEndpoints[s], sa.Password), redisCLI(t, c, acct.SecondaryEndpoints[s], sa.Password)
		require.NoError(t, primary.ConfigSet(ctx, "repl-diskless-sync-delay", "3").Err())
		require.NoError(t, replica.Do(ctx, "REPLICAOF", "NO", "ONE").Err())
		host, port, _ := strings.Cut(acct.PrimaryEndpoints[s], ":")
		require.NoError(t, replica.Do(ctx, "REPLICAOF", host, port).Err())
	}
	return func() {}
}

// pausePGReplay pauses replay on every standby (they go on receiving):
// flush-replay waits until release resumes it.
func pausePGReplay(ctx context.Context, t *testing.T, c *Cluster, sa *ShardAccount, acct location.Account) func() {
	t.Helper()
	exec := func(sql string) {
		for s := range acct.Partitions {
			db, err := PGPool(ctx, acct.SecondaryEndpoints[s], PGBatonRole, sa.Password, c.TLS)
			require.NoError(t, err)
			_, err = db.Exec(ctx, sql)
			db.Close()
			require.NoError(t, err, fmt.Sprintf("%s on %s", sql, acct.SecondaryEndpoints[s]))
		}
	}
	exec("SELECT pg_wal_replay_pause()")
	return func() { exec("SELECT pg_wal_replay_resume()") }
}

// redisCLI is a client of one of the cluster's Redis servers, as the
// tests' certificate.
func redisCLI(t *testing.T, c *Cluster, addr, password string) *redis.Client {
	t.Helper()
	r := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: c.TLS.Clone(), Password: password})
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// rejoinAndReprotect: the operator rejoins the old primaries (PostgreSQL:
// pg_rewind; Redis did it in the failover), and baton reprotect checks
// every shard's replica is online and records the account protected.
// Before the rejoin, a PostgreSQL account's reprotect refuses, naming the
// shard and what to do.
func rejoinAndReprotect(ctx context.Context, t *testing.T, c *Cluster, sa *ShardAccount) {
	t.Helper()
	if sa.Kind == location.KindPostgres {
		out, err := baton(ctx, t, c, "reprotect", sa.Name, "--wait")
		require.Error(t, err, out)
		require.Contains(t, out, "does not replicate the new one", out)
		require.Contains(t, out, "pg_rewind", out)
		diverged, err := sa.RejoinOnly(ctx, c)
		require.NoError(t, err)
		for s, d := range diverged {
			require.Zero(t, d.InsertedInto(PGTable), "shard %d: a planned failover leaves no committed write behind: %s", s, d)
		}
	}
	out, err := baton(ctx, t, c, "reprotect", sa.Name, "--wait")
	require.NoError(t, err, out)
	acct, err := c.Loc.Lookup(ctx, sa.Name)
	require.NoError(t, err)
	require.False(t, acct.Unprotected, out)
}

// TestPGUnplannedFailover is issue 16's unplanned failover of a PostgreSQL
// account of 3 shards. Under live writes the standbys of shards 0 and 1
// are cut off their primaries (which refuse replication from then on),
// those primaries go on acknowledging commits only they have, and then
// they are SIGKILLed; shard 2's primary lives on. `baton failover --mode
// unplanned` gives shards 0 and 1 up, replays what their standbys
// received, writes their data-loss ledger (where each standby's replay
// stopped) and promotes, while shard 2 is fenced and flushed as in a
// planned failover. The old primaries' rejoin reads their diverged WAL
// before pg_rewind throws it away: it forks where the ledger says, and the
// rows its committed transactions inserted are exactly the acknowledged
// writes the audit finds lost, shard by shard (none on shard 2). The
// account is reprotected and fails back with nothing lost.
func TestPGUnplannedFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const account = "crash-postgres"
	c, sa := storeCluster(ctx, t, location.KindPostgres, account, 3)
	require.NoError(t, sa.WaitOnline(ctx, c))
	siteA, siteB := Sites(location.KindPostgres)
	cfg := sa.Config(c)
	w := traffic.NewShards(cfg)
	require.NoError(t, w.Start(ctx))
	acked := func(n int64) {
		require.NoError(t, Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= n, nil }))
	}
	acked(500)
	crashed := sa.PG[:2]
	for _, sh := range crashed {
		require.NoError(t, sh.CutReplication(ctx, sa.Password, c.TLS))
	}
	committedOnPrimaries(ctx, t, c, sa, crashed, 100) // acknowledged by the primaries alone
	for _, sh := range crashed {
		sh.Primary.Kill()
	}

	out, err := baton(ctx, t, c, "failover", account, "--to", siteB, "--mode", "unplanned", "--approve",
		"--reason", "primaries crashed", "--wait", "-o", "json")
	require.NoError(t, err, out)
	var res workflows.FailoverResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome, out)
	require.ElementsMatch(t, []int{0, 1}, res.GivenUp, out)
	require.Len(t, res.Ledger, 2, out)
	text, err := baton(ctx, t, c, "result", account)
	require.NoError(t, err, text)
	require.Contains(t, text, "DATA LOSS on 2 shards", text)

	acks := w.Stop()
	diverged, err := sa.RejoinOnly(ctx, c)
	require.NoError(t, err)
	ledger := map[int]activities.LossEntry{}
	for _, e := range res.Ledger {
		ledger[e.Partition] = e
	}
	total := 0
	for s, d := range diverged {
		rep, err := traffic.AuditShards(ctx, cfg, onShard(acks, s))
		require.NoError(t, err)
		require.Zero(t, rep.Mismatched)
		require.Equal(t, rep.Lost, d.InsertedInto(PGTable), "shard %d: the diverged WAL's committed inserts are the audit's lost writes", s)
		e, givenUp := ledger[s]
		if !givenUp {
			require.Zero(t, rep.Lost, "shard %d: its primary lived: flushed, nothing lost", s)
			continue
		}
		t.Logf("shard %d: ledger from %s; rejoin: %s", s, e.From, d)
		require.Equal(t, e.FromLSN, d.From, "shard %d: the ledger and the new primary's history fork at the same WAL position", s)
		require.Positive(t, rep.Lost, "shard %d: the writes acknowledged while the standby received nothing", s)
		total += rep.Lost
	}
	t.Logf("unplanned: %d acknowledged writes, %d lost, all of them in the diverged WAL after the ledger's fork", len(acks), total)

	out, err = baton(ctx, t, c, "reprotect", account, "--wait")
	require.NoError(t, err, out)
	require.NoError(t, sa.WaitOnline(ctx, c))
	w = traffic.NewShards(cfg)
	require.NoError(t, w.Start(ctx))
	acked(500)
	out, err = baton(ctx, t, c, "failover", account, "--to", siteA, "--wait", "--reason", "failback")
	require.NoError(t, err, out)
	rep, err := traffic.AuditShards(ctx, cfg, w.Stop())
	require.NoError(t, err)
	require.NoError(t, rep.Err(), "the failback")
}

// committedOnPrimaries waits until the primary of each of shards has n
// more rows in PGTable than when it is called.
func committedOnPrimaries(ctx context.Context, t *testing.T, c *Cluster, sa *ShardAccount, shards []*PGShard, n int) {
	t.Helper()
	for _, sh := range shards {
		db, err := PGPool(ctx, sh.Primary.Addr, PGBatonRole, sa.Password, c.TLS)
		require.NoError(t, err)
		rows := func() (int, error) {
			var k int
			return k, db.QueryRow(ctx, "SELECT count(*) FROM "+PGTable).Scan(&k)
		}
		start, err := rows()
		require.NoError(t, err)
		require.NoError(t, Poll(ctx, 10*time.Millisecond, func() (bool, error) {
			k, err := rows()
			return k >= start+n, err
		}))
		db.Close()
	}
}

// onShard is the acknowledged writes of one shard.
func onShard(acks []traffic.Ack, shard int) []traffic.Ack {
	var out []traffic.Ack
	for _, a := range acks {
		if a.Partition == shard {
			out = append(out, a)
		}
	}
	return out
}
