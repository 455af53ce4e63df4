package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/redisdriver"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// redisWindowTarget bounds the longest time a shard's writer goes without
// an acknowledged write across a planned Redis failover of 8 shards.
const redisWindowTarget = 300 * time.Millisecond

// redisScenarios fails an 8-shard Redis account (16 redis-server
// processes, TLS, AOF with fsync every second: Redis's default, not
// fsync per write) over and back three times under live writes, through
// the failover workflow on the worker process, and measures what the
// clients saw: the longest time a shard went without an acknowledged write.
func redisScenarios(ctx context.Context, out io.Writer, dir string, t *targets) error {
	password, pwFile, err := testsuite.NewRedisPassword(filepath.Join(dir, "redis"))
	if err != nil {
		return err
	}
	c, err := testsuite.Start(ctx, testsuite.Options{Dir: filepath.Join(dir, "redis"), Progress: io.Discard,
		WorkerArgs: testsuite.RedisWorkerArgs(pwFile)})
	if err != nil {
		return err
	}
	defer c.Close()
	const account, shards = "bench-redis", 8
	ra, err := c.StartRedisAccount(ctx, account, shards, password)
	defer ra.Stop()
	if err != nil {
		return err
	}
	rc := traffic.ShardConfig{Kind: location.KindRedis, Account: account, Resolve: traffic.LocationRoute(c.Loc, account), TLS: c.TLS, Password: password}
	fmt.Fprintf(out, "\nRedis: a planned failover of an account of %d shards (primary and replica each a redis-server over TLS, "+
		"AOF fsync every second) under live SETs from one writer per shard that follow the location service; "+
		"the window is the longest time one shard's writer went without an acknowledged write.\n", shards)
	fmt.Fprintf(out, "\n| failover | writes acked | total (ms) | fence to promote (ms) | a shard's longest gap (ms) | lost | target |\n|---|---:|---:|---:|---:|---:|---|\n")
	for i, to := range []string{testsuite.SiteB, testsuite.SiteA, testsuite.SiteB} {
		row, err := redisFailover(ctx, c, rc, to, t)
		if err != nil {
			return fmt.Errorf("redis failover %d to %s: %w", i+1, to, err)
		}
		fmt.Fprintf(out, "| %d, to %s | %s |\n", i+1, to, row)
	}
	fmt.Fprintf(out, "\nWhat bounds it: the fence (CLIENT PAUSE WRITE) holds writes from the fence until the promote's rejoin "+
		"of the old primaries refuses them (READONLY) and the writers re-resolve; in between are four activities' round "+
		"trips through Temporal (fence, flush-send, flush-replay, promote with the location move), not the data: the "+
		"replicas are a few ms behind.\n")
	return nil
}

// redisFailover fails the account over to site under live writes and
// answers its table row.
func redisFailover(ctx context.Context, c *testsuite.Cluster, rc traffic.ShardConfig, site string, t *targets) (string, error) {
	d := redisdriver.New(redisdriver.Options{TLS: c.TLS, Password: rc.Password})
	defer d.Close()
	rt, err := rc.Resolve(ctx)
	if err != nil {
		return "", err
	}
	if err := testsuite.WaitReplicasOnline(ctx, d, driver.Side{Account: rc.Account, Endpoints: rt.Endpoints}); err != nil {
		return "", err
	}
	w := traffic.NewShards(rc)
	if err := w.Start(ctx); err != nil {
		return "", err
	}
	if err := testsuite.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= 2000, nil }); err != nil {
		w.Stop()
		return "", err
	}
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{Account: rc.Account,
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
	if perr := testsuite.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= after+2000, nil }); err == nil {
		err = perr
	}
	acks := w.Stop()
	if err != nil {
		return "", err
	}
	rep, err := traffic.AuditShards(ctx, rc, acks)
	if err != nil {
		return "", err
	}
	if err := rep.Err(); err != nil {
		return "", err
	}
	gap := longestShardGap(acks)
	what := fmt.Sprintf("Redis failover of 8 shards: a shard's longest gap <= %s", redisWindowTarget)
	return fmt.Sprintf("%d | %d | %d | %d | %d | %s", len(acks), res.TotalMillis, res.UnavailableMillis,
		gap.Milliseconds(), rep.Lost, t.check(what, gap <= redisWindowTarget)), nil
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
