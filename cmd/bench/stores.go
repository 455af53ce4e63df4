package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// Targets of the stores' failovers: the longest time a shard's writer goes
// without an acknowledged write.
const (
	redisWindowTarget = 300 * time.Millisecond
	pgWindowTarget    = 2 * time.Second
)

// storeScenarios fail accounts of Redis and PostgreSQL shards over and
// back under live writes (one writer per shard, following the location
// service), through the failover workflow on the worker process, and
// measure what the clients saw: the longest time a shard went without an
// acknowledged write. Redis: 8 shards, AOF fsync every second (Redis's
// default, not an fsync per write). PostgreSQL: 1 and 4 shards, each a
// primary with a streaming standby, PostgreSQL's durable defaults
// (fsync, synchronous_commit on); failing back needs the operator's rejoin
// (pg_rewind) first, which is not in the figures.
func storeScenarios(ctx context.Context, out io.Writer, dir string, t *targets) error {
	dir = filepath.Join(dir, "stores")
	args := []string{}
	passwords := map[string]string{}
	for _, kind := range []string{location.KindRedis, location.KindPostgres} {
		pw, file, err := testsuite.NewPassword(dir, kind)
		if err != nil {
			return err
		}
		passwords[kind], args = pw, append(args, testsuite.WorkerArgs(kind, file)...)
	}
	c, err := testsuite.Start(ctx, testsuite.Options{Dir: dir, Progress: io.Discard, WorkerArgs: args})
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(out, "\nStores: planned failovers of accounts of shards under live writes, one writer per shard following "+
		"the location service (Redis SETs; PostgreSQL INSERTs, each its own transaction, as the application's role); the "+
		"window is the longest time one shard's writer went without an acknowledged write.\n")
	fmt.Fprintf(out, "\n| account | failover | writes acked | total (ms) | fence to promote (ms) | a shard's longest gap (ms) | lost | target |\n|---|---|---:|---:|---:|---:|---:|---|\n")
	accounts := []struct {
		kind   string
		shards int
		target time.Duration
	}{{location.KindRedis, 8, redisWindowTarget}, {location.KindPostgres, 1, pgWindowTarget}, {location.KindPostgres, 4, pgWindowTarget}}
	for _, a := range accounts {
		if err := storeAccount(ctx, out, c, a.kind, a.shards, passwords[a.kind], a.target, t); err != nil {
			return err
		}
	}
	fmt.Fprintf(out, "\nWhat bounds it. Redis: the fence (CLIENT PAUSE WRITE) holds writes until the promote's rejoin of the old "+
		"primaries refuses them (READONLY) and the writers re-resolve; in between are four activities' round trips through "+
		"Temporal and the location move, not the data. PostgreSQL: the fence terminates the application's sessions and "+
		"refuses its logins until the location service points at the promoted standby; pg_promote (its end-of-recovery "+
		"record and the new timeline) and the writers' new connections (TLS, SCRAM) are most of it.\n")
	return nil
}

// storeAccount starts an account of kind and fails it over to the
// second site and back, one table row each.
func storeAccount(ctx context.Context, out io.Writer, c *testsuite.Cluster, kind string, shards int, password string,
	target time.Duration, t *targets) error {
	start := c.StartRedisAccount
	if kind == location.KindPostgres {
		start = c.StartPGAccount
	}
	name := fmt.Sprintf("bench-%s-%d", kind, shards)
	sa, err := start(ctx, name, shards, password)
	defer sa.Stop()
	if err != nil {
		return err
	}
	siteA, siteB := testsuite.Sites(kind)
	for i, to := range []string{siteB, siteA} {
		if err := sa.WaitOnline(ctx, c); err != nil {
			return err
		}
		row, err := storeFailover(ctx, c, sa, to, target, t)
		if err != nil {
			return fmt.Errorf("%s failover %d to %s: %w", name, i+1, to, err)
		}
		fmt.Fprintf(out, "| %s, %d shards | %d, to %s | %s |\n", kind, shards, i+1, to, row)
		if err := sa.Rejoin(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// storeFailover fails the account over to site under live writes and
// answers its table row.
func storeFailover(ctx context.Context, c *testsuite.Cluster, sa *testsuite.ShardAccount, site string, target time.Duration,
	t *targets) (string, error) {
	cfg := sa.Config(c)
	w := traffic.NewShards(cfg)
	if err := w.Start(ctx); err != nil {
		return "", err
	}
	if err := testsuite.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= 1000, nil }); err != nil {
		w.Stop()
		return "", err
	}
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{Account: sa.Name,
		ToStamp: site, Reason: "bench", RequestedBy: "bench"})
	if err != nil {
		w.Stop()
		return "", err
	}
	var res workflows.FailoverResult
	err = run.Get(ctx, &res)
	// Writes go on a while on the new primaries, so that the gap is closed
	// by a write after the failover, not by the end of the run.
	after := w.AckCount()
	if perr := testsuite.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= after+1000, nil }); err == nil {
		err = perr
	}
	acks := w.Stop()
	if err != nil {
		return "", err
	}
	rep, err := traffic.AuditShards(ctx, cfg, acks)
	if err != nil {
		return "", err
	}
	if err := rep.Err(); err != nil {
		return "", err
	}
	gap := longestShardGap(acks)
	what := fmt.Sprintf("%s failover of %d shards: a shard's longest gap <= %s", sa.Kind, len(res.Table.Partition), target)
	return fmt.Sprintf("%d | %d | %d | %d | %d | %s", len(acks), res.TotalMillis, res.UnavailableMillis,
		gap.Milliseconds(), rep.Lost, t.check(what, gap <= target)), nil
}

// longestShardGap is the longest time any one shard's writer went without
// an acknowledged write.
func longestShardGap(acks []traffic.Ack) time.Duration {
	byShard := map[int][]traffic.Ack{}
	for _, a := range acks {
		byShard[a.Partition] = append(byShard[a.Partition], a)
	}
	var gap time.Duration
	for _, as := range byShard {
		gap = max(gap, traffic.LongestGap(as))
	}
	return gap
}
