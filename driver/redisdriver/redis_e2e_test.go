package redisdriver_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/redisdriver"
	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/traffic"
)

// account is a Redis account of shards: site a's primaries, site b's
// replicas, over TLS with a password.
type account struct {
	a, b     driver.Side
	servers  map[string]*testsuite.Redis // by address
	certs    string
	password string
}

func startAccount(ctx context.Context, t *testing.T, shards int) *account {
	t.Helper()
	dir := t.TempDir()
	acct := &account{certs: dir + "/certs", password: "pw-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		servers: map[string]*testsuite.Redis{}, a: driver.Side{Account: "cache"}, b: driver.Side{Account: "cache"}}
	require.NoError(t, auth.CreateCA(acct.certs, auth.CALifetime))
	require.NoError(t, auth.CreateNode(acct.certs, "baton", nil, auth.CertLifetime))
	for s := range shards {
		p, err := testsuite.StartRedis(ctx, testsuite.RedisOptions{Name: fmt.Sprintf("a%d", s), Dir: dir,
			CertsDir: acct.certs, Password: acct.password})
		require.NoError(t, err)
		t.Cleanup(func() { p.Stop(10 * time.Second) })
		r, err := testsuite.StartRedis(ctx, testsuite.RedisOptions{Name: fmt.Sprintf("b%d", s), Dir: dir,
			CertsDir: acct.certs, Password: acct.password, ReplicaOf: p.Addr})
		require.NoError(t, err)
		t.Cleanup(func() { r.Stop(10 * time.Second) })
		acct.a.Endpoints = append(acct.a.Endpoints, p.Addr)
		acct.b.Endpoints = append(acct.b.Endpoints, r.Addr)
		acct.servers[p.Addr], acct.servers[r.Addr] = p, r
	}
	return acct
}

func (acct *account) driver(t *testing.T) *redisdriver.Driver {
	t.Helper()
	cfg, err := auth.ClientTLS(auth.NodeFiles(acct.certs, "baton"))
	require.NoError(t, err)
	d := redisdriver.New(redisdriver.Options{TLS: cfg, Password: acct.password})
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func (acct *account) client(t *testing.T, addr string) *redis.Client {
	t.Helper()
	cfg, err := auth.ClientTLS(auth.NodeFiles(acct.certs, "baton"))
	require.NoError(t, err)
	// Long reads: a write held by a fence waits for its answer.
	c := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: cfg, Password: acct.password,
		ReadTimeout: time.Minute, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// route is where the test's writers send: the site whose servers are
// primaries (a test without a location service points them by hand).
type route struct{ v atomic.Value }

func newRoute(site string, side driver.Side) *route {
	r := &route{}
	r.set(site, side)
	return r
}

func (r *route) set(site string, side driver.Side) {
	r.v.Store(traffic.ShardRoute{Site: site, Endpoints: side.Endpoints})
}

func (r *route) resolve(context.Context) (traffic.ShardRoute, error) {
	return r.v.Load().(traffic.ShardRoute), nil
}

// writeTo starts live writes to the account through rt.
func writeTo(ctx context.Context, t *testing.T, acct *account, rt *route) (*traffic.ShardWriter, traffic.ShardConfig) {
	t.Helper()
	cfg, err := auth.ClientTLS(auth.NodeFiles(acct.certs, "baton"))
	require.NoError(t, err)
	rc := traffic.ShardConfig{Kind: location.KindRedis, Account: "cache", Resolve: rt.resolve, TLS: cfg, Password: acct.password}
	w := traffic.NewShards(rc)
	require.NoError(t, w.Start(ctx))
	require.NoError(t, testsuite.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= 200, nil }))
	return w, rc
}

// audit stops w and checks every acknowledged write where rc resolves.
func audit(ctx context.Context, t *testing.T, w *traffic.ShardWriter, rc traffic.ShardConfig) {
	t.Helper()
	rep, err := traffic.AuditShards(ctx, rc, w.Stop())
	require.NoError(t, err)
	require.NoError(t, rep.Err())
}

// TestRedisFailoverAndFailBack: an 8-shard Redis account (sixteen real
// redis-server processes over TLS) under live writes fails over from site a
// to site b by fence, flush-send, flush-replay, promote and rejoin; every
// acknowledged write is on the new primaries, a write sent after the fence
// is refused (READONLY), never applied; then it fails back the same way,
// again losing nothing.
func TestRedisFailoverAndFailBack(t *testing.T) {
	testsuite.RequireStore(t, location.KindRedis)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const shards = 8
	acct := startAccount(ctx, t, shards)
	d := acct.driver(t)
	all := make([]int, shards)
	for i := range all {
		all[i] = i
	}
	waitOnline(ctx, t, d, acct.a)

	rt := newRoute("a", acct.a)
	w, rc := writeTo(ctx, t, acct, rt)
	failOver(ctx, t, d, acct.a, acct.b, all, acct, func() { rt.set("b", acct.b) })
	audit(ctx, t, w, rc)

	// Fail back: site a rejoined as the replica; the same steps, back.
	waitOnline(ctx, t, d, acct.b)
	w, rc = writeTo(ctx, t, acct, rt)
	failOver(ctx, t, d, acct.b, acct.a, all, acct, func() { rt.set("a", acct.a) })
	audit(ctx, t, w, rc)
}

// failOver moves the account from the primaries of from to the replicas of
// to (repoint tells the writers once they are promoted), proving the fence
// by a write sent after it.
func failOver(ctx context.Context, t *testing.T, d *redisdriver.Driver, from, to driver.Side, all []int,
	acct *account, repoint func()) {
	t.Helper()
	fenced := d.Fence(ctx, from, all, time.Minute)
	require.Empty(t, driver.Failed(fenced))
	probe := make(chan error, 1)
	go func() { probe <- acct.client(t, from.Endpoints[0]).Set(ctx, "after-fence", "x", 0).Err() }()

	sent := d.FlushSend(ctx, from, to, all)
	require.Empty(t, driver.Failed(sent))
	targets := map[int]uint64{}
	for i, r := range sent {
		require.GreaterOrEqual(t, r.Position, fenced[i].Position, "partition %d confirmed less than it wrote", r.Partition)
		targets[r.Partition] = r.Position
	}
	var replayed atomic.Int32
	require.Empty(t, driver.Failed(d.FlushReplay(ctx, to, targets, func(int) { replayed.Add(1) })))
	require.EqualValues(t, len(all), replayed.Load())
	require.Empty(t, driver.Failed(d.Promote(ctx, to, all)))
	repoint()
	require.Empty(t, driver.Failed(d.Rejoin(ctx, from, to, all)))

	err := <-probe
	require.Error(t, err, "a write sent after the fence was acknowledged")
	require.Contains(t, err.Error(), "READONLY")
	for _, addr := range []string{from.Endpoints[0], to.Endpoints[0]} {
		n, err := acct.client(t, addr).Exists(ctx, "after-fence").Result()
		require.NoError(t, err)
		require.Zero(t, n, "the write held by the fence was applied on %s", addr)
	}
	for _, p := range d.Positions(ctx, to, all) {
		require.NoError(t, p.Err)
		require.True(t, p.Primary, "shard %d of the new site is not a primary", p.Partition)
	}
}

// waitOnline waits until every primary of side has its replica online.
func waitOnline(ctx context.Context, t *testing.T, d *redisdriver.Driver, side driver.Side) {
	t.Helper()
	require.NoError(t, testsuite.WaitReplicasOnline(ctx, d, side))
}

// TestRedisFinalAnswers: a fence of a replica, and calls with a wrong
// password, are final (no retry changes them) and change nothing.
func TestRedisFinalAnswers(t *testing.T) {
	testsuite.RequireStore(t, location.KindRedis)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acct := startAccount(ctx, t, 1)
	d := acct.driver(t)
	rs := d.Fence(ctx, acct.b, []int{0}, time.Minute)
	require.True(t, driver.IsFinal(rs[0].Err), "%v", rs[0].Err)
	require.Contains(t, rs[0].Err.Error(), "replica")

	cfg, err := auth.ClientTLS(auth.NodeFiles(acct.certs, "baton"))
	require.NoError(t, err)
	bad := redisdriver.New(redisdriver.Options{TLS: cfg, Password: "wrong"})
	defer bad.Close()
	rs = bad.Fence(ctx, acct.a, []int{0}, time.Minute)
	require.True(t, driver.IsFinal(rs[0].Err), "%v", rs[0].Err)
	var fe *driver.FinalError
	require.True(t, errors.As(rs[0].Err, &fe))
	// The primary still takes writes: nothing was fenced.
	require.NoError(t, acct.client(t, acct.a.Endpoints[0]).Set(ctx, "still-writable", "1", 0).Err())
}
