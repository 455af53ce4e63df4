package pgdriver_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/pgdriver"
	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/traffic"
)

// account is a PostgreSQL account of shards: site a's primaries, site b's
// standbys.
type account struct {
	shards   []*testsuite.PGShard
	a, b     driver.Side
	tls      *tls.Config
	password string
}

func startAccount(ctx context.Context, t *testing.T, shards int) *account {
	t.Helper()
	dir := t.TempDir()
	certs := dir + "/certs"
	require.NoError(t, auth.CreateCA(certs, auth.CALifetime))
	acct := &account{password: fmt.Sprintf("pw-%d", time.Now().UnixNano()), a: driver.Side{Account: "db"}, b: driver.Side{Account: "db"}}
	var err error
	acct.tls, err = auth.ClientTLS(auth.Files{CA: auth.NodeFiles(certs, "").CA})
	require.NoError(t, err)
	for s := range shards {
		sh, err := testsuite.StartPGShard(ctx, testsuite.PGShardOptions{Name: fmt.Sprintf("db-%d", s), Dir: dir,
			CertsDir: certs, Password: acct.password})
		require.NoError(t, err)
		t.Cleanup(sh.Stop)
		acct.shards = append(acct.shards, sh)
		acct.a.Endpoints = append(acct.a.Endpoints, sh.Primary.Addr)
		acct.b.Endpoints = append(acct.b.Endpoints, sh.Standby.Addr)
	}
	return acct
}

func (acct *account) driver(t *testing.T) *pgdriver.Driver {
	t.Helper()
	d := pgdriver.New(pgdriver.Options{TLS: acct.tls, User: testsuite.PGBatonRole, Password: acct.password})
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// route is where the writers send (no location service here).
type route struct{ v atomic.Value }

func (r *route) set(site string, side driver.Side) {
	r.v.Store(traffic.ShardRoute{Site: site, Endpoints: side.Endpoints})
}

func (r *route) resolve(context.Context) (traffic.ShardRoute, error) {
	return r.v.Load().(traffic.ShardRoute), nil
}

// TestPostgresFailoverAndFailBack: a 2-shard PostgreSQL account (four real
// servers, streaming replication, TLS) under live INSERTs as the
// application's role fails over by fence, flush-send, flush-replay and
// promote; the fence is proven by trying (an open transaction cannot
// commit, a new login is refused); every acknowledged INSERT is on the new
// primaries. The old primaries are rewound (pg_rewind) and rejoined as
// standbys, as an operator does, and the account fails back losing
// nothing.
func TestPostgresFailoverAndFailBack(t *testing.T) {
	testsuite.RequireStore(t, location.KindPostgres)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	acct := startAccount(ctx, t, 2)
	d := acct.driver(t)
	all := []int{0, 1}
	require.NoError(t, testsuite.WaitReplicasOnline(ctx, d, acct.a))
	rt := &route{}
	rt.set("a", acct.a)
	cfg := traffic.ShardConfig{Account: "db", Kind: location.KindPostgres, Resolve: rt.resolve, TLS: acct.tls,
		User: testsuite.PGAppRole, Password: acct.password}

	for i, move := range []struct {
		from, to driver.Side
		site     string
	}{{acct.a, acct.b, "b"}, {acct.b, acct.a, "a"}} {
		w := traffic.NewShards(cfg)
		require.NoError(t, w.Start(ctx))
		require.NoError(t, testsuite.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= 300, nil }))
		failOver(ctx, t, d, acct, move.from, move.to, all, func() { rt.set(move.site, move.to) })
		require.NoError(t, testsuite.Poll(ctx, 10*time.Millisecond, func() (bool, error) { return w.AckCount() >= 600, nil }))
		rep, err := traffic.AuditShards(ctx, cfg, w.Stop())
		require.NoError(t, err)
		require.NoError(t, rep.Err(), "move %d", i+1)
		t.Logf("move %d: %d acknowledged INSERTs, 0 lost", i+1, rep.Acks)

		// The operator's rejoin: the old primaries become standbys.
		for s, sh := range acct.shards {
			old, primary := sh.Primary, sh.Standby
			if i == 1 {
				old, primary = sh.Standby, sh.Primary
			}
			dv, err := old.RejoinAsStandbyOf(ctx, primary, acct.password, acct.tls)
			require.NoError(t, err, "shard %d", s)
			require.Zero(t, dv.InsertedInto(testsuite.PGTable), "shard %d: a planned failover leaves no committed write behind: %s", s, dv)
		}
		require.NoError(t, testsuite.WaitReplicasOnline(ctx, d, move.to))
	}
}

// failOver moves the account from the primaries of from to the standbys
// of to, proving the fence by trying.
func failOver(ctx context.Context, t *testing.T, d *pgdriver.Driver, acct *account, from, to driver.Side, all []int,
	repoint func()) {
	t.Helper()
	// An application session with a transaction open when the fence comes.
	app, err := testsuite.PGPool(ctx, from.Endpoints[0], testsuite.PGAppRole, acct.password, acct.tls)
	require.NoError(t, err)
	defer app.Close()
	tx, err := app.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, "INSERT INTO "+testsuite.PGTable+" (k, v) VALUES ('in-flight', 'x')")
	require.NoError(t, err)

	fenced := d.Fence(ctx, from, all, time.Minute)
	require.Empty(t, driver.Failed(fenced))
	require.Error(t, tx.Commit(ctx), "a transaction open at the fence committed")
	late, err := testsuite.PGPool(ctx, from.Endpoints[0], testsuite.PGAppRole, acct.password, acct.tls)
	require.NoError(t, err)
	_, err = late.Exec(ctx, "INSERT INTO "+testsuite.PGTable+" (k, v) VALUES ('after-fence', 'x')")
	late.Close()
	require.Error(t, err, "the application logged in after the fence")
	require.Contains(t, err.Error(), "not permitted to log in")

	sent := d.FlushSend(ctx, from, to, all)
	require.Empty(t, driver.Failed(sent))
	targets := map[int]uint64{}
	for i, r := range sent {
		require.GreaterOrEqual(t, r.Position, fenced[i].Position)
		targets[r.Partition] = r.Position
	}
	require.Empty(t, driver.Failed(d.FlushReplay(ctx, to, targets, nil)))
	require.Empty(t, driver.Failed(d.Promote(ctx, to, all)))
	repoint()
	for _, p := range d.Positions(ctx, to, all) {
		require.NoError(t, p.Err)
		require.True(t, p.Primary, "shard %d of the new site is not a primary", p.Partition)
	}
	rs := d.Rejoin(ctx, from, to, all)
	require.True(t, driver.IsFinal(rs[0].Err), "the driver says it cannot rejoin over SQL: %v", rs[0].Err)
	// Neither key is anywhere.
	for _, addr := range []string{to.Endpoints[0]} {
		db, err := testsuite.PGPool(ctx, addr, testsuite.PGBatonRole, acct.password, acct.tls)
		require.NoError(t, err)
		var n int
		require.NoError(t, db.QueryRow(ctx, "SELECT count(*) FROM "+testsuite.PGTable+" WHERE k IN ('in-flight', 'after-fence')").Scan(&n))
		db.Close()
		require.Zero(t, n, "a write the fence refused is on %s", addr)
	}
}
