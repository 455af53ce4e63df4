// Package pgdriver drives PostgreSQL physical streaming replication for
// Baton's failover (driver.Store): an account is N PostgreSQL clusters
// (shards), each a primary with a streaming standby on the other site.
// Positions are WAL LSNs, in bytes.
//
//   - fence: the application's role loses LOGIN and its sessions are
//     terminated, until none is left: no transaction of the application
//     can commit after it (a session cannot undo it: it is gone, and a
//     new one is refused). A fence has no lease in PostgreSQL: it holds
//     until unfenced (LOGIN again) or the account moves.
//   - flush-send: the standby (a copy of this primary: the same system
//     identifier) having received the primary's WAL up to its insert
//     position (pg_last_wal_receive_lsn() >= pg_current_wal_insert_lsn());
//   - flush-replay: its pg_last_wal_replay_lsn() reaching it;
//   - promote: pg_promote(), then LOGIN again for the application's role
//     (the fence's NOLOGIN was replicated);
//   - rejoin: pg_rewind of the old primary against the new one and a
//     restart as its standby needs the old primary's host: this driver
//     answers that it cannot, and the account stays unprotected until an
//     operator rejoins it (docs/STORES.md).
//
// Connections use TLS (verify-full against the cluster's CA) and a
// password.
package pgdriver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/internal/clock"
)

// Options are how the driver reaches the servers.
type Options struct {
	// TLS is the client side (nil: sslmode=disable, for servers started so
	// in a test that proves it still works).
	TLS *tls.Config
	// User and Password of Baton's role on every server: a superuser (or
	// a role with pg_signal_backend, EXECUTE on pg_promote and the right to
	// ALTER the application's role).
	User, Password string
	// AppRole is the application's role, which a fence shuts out
	// (default "app").
	AppRole string
	// Poll is how often the waits look again (default 10ms).
	Poll time.Duration
}

// Driver is the PostgreSQL driver. It is safe for concurrent use.
type Driver struct {
	opts  Options
	mu    sync.Mutex
	pools map[string]*pgxpool.Pool
}

// New returns a driver calling with opts.
func New(opts Options) *Driver {
	if opts.Poll <= 0 {
		opts.Poll = 10 * time.Millisecond
	}
	if opts.AppRole == "" {
		opts.AppRole = "app"
	}
	return &Driver{opts: opts, pools: map[string]*pgxpool.Pool{}}
}

var _ driver.Store = (*Driver)(nil)

// Kind is driver.KindPostgres.
func (d *Driver) Kind() driver.Kind { return driver.KindPostgres }

// Close closes every connection.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for addr, p := range d.pools {
		p.Close()
		delete(d.pools, addr)
	}
	return nil
}

// pool is the (cached) connection pool of the server at addr.
func (d *Driver) pool(addr string) (*pgxpool.Pool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pools[addr]; ok {
		return p, nil
	}
	cfg, err := PoolConfig(addr, d.opts.User, d.opts.Password, d.opts.TLS)
	if err != nil {
		return nil, driver.Final(err)
	}
	cfg.MaxConns = 4
	p, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	d.pools[addr] = p
	return p, nil
}

// PoolConfig is a pool's config for user at addr (host:port), database
// postgres, over tlsCfg (verify-full; nil: plaintext).
func PoolConfig(addr, user, password string, tlsCfg *tls.Config) (*pgxpool.Config, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q is not host:port", addr)
	}
	mode := "disable"
	if tlsCfg != nil {
		mode = "require" // the TLS config below verifies the certificate and the host
	}
	cfg, err := pgxpool.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=postgres sslmode=%s connect_timeout=5",
		host, port, user, mode))
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.Password = password
	if tlsCfg != nil {
		t := tlsCfg.Clone()
		t.ServerName = host
		cfg.ConnConfig.TLSConfig = t
		cfg.ConnConfig.Fallbacks = nil
	}
	return cfg, nil
}

// Positions reads each shard's WAL positions.
func (d *Driver) Positions(ctx context.Context, side driver.Side, ps []int) []driver.Positions {
	out := make([]driver.Positions, len(ps))
	driver.Each(ps, func(i, p int) {
		out[i] = driver.Positions{Partition: p}
		st, err := d.state(ctx, side.Endpoint(p))
		if err != nil {
			out[i].Err = err
			return
		}
		out[i].Primary = !st.recovery
		out[i].Written, out[i].Acked, out[i].Replayed = st.written, st.acked, st.replayed
	})
	return out
}

// Fence shuts the application's role out of each primary: no LOGIN, its
// sessions terminated until none is left. Position: the flushed WAL.
// The lease is not used: PostgreSQL has no timed fence (package doc).
func (d *Driver) Fence(ctx context.Context, primary driver.Side, ps []int, _ time.Duration) []driver.Result {
	return d.onEach(ctx, primary, ps, func(ctx context.Context, db *pgxpool.Pool, addr string, _ int) (uint64, error) {
		if err := d.mustBe(ctx, db, addr, true, "fence"); err != nil {
			return 0, err
		}
		if _, err := db.Exec(ctx, "ALTER ROLE "+pgx.Identifier{d.opts.AppRole}.Sanitize()+" NOLOGIN"); err != nil {
			return 0, classify("fence "+addr, err)
		}
		// Terminate the application's sessions until two looks a poll
		// apart find none: a session that passed the login check just
		// before NOLOGIN committed shows up (its user name still unset
		// while it starts) a moment later. Sessions still starting are
		// terminated too, whoever they are.
		for quiet := 0; quiet < 2; {
			var left int
			err := db.QueryRow(ctx, `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
				WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
				  AND (usename = $1 OR usename IS NULL)`, d.opts.AppRole).Scan(&left)
			if err != nil {
				return 0, classify("fence "+addr, err)
			}
			if quiet = quiet + 1; left > 0 {
				quiet = 0
			}
			if !clock.Sleep(ctx, d.opts.Poll) {
				return 0, fmt.Errorf("fence %s: %d sessions of %s still there: %w", addr, left, d.opts.AppRole, ctx.Err())
			}
		}
		return d.lsn(ctx, db, addr, "pg_current_wal_insert_lsn()")
	})
}

// Unfence lets the application's role log in again (a rollback).
func (d *Driver) Unfence(ctx context.Context, primary driver.Side, ps []int) []driver.Result {
	return d.onEach(ctx, primary, ps, func(ctx context.Context, db *pgxpool.Pool, addr string, _ int) (uint64, error) {
		_, err := db.Exec(ctx, "ALTER ROLE "+pgx.Identifier{d.opts.AppRole}.Sanitize()+" LOGIN")
		return 0, classify("unfence "+addr, err)
	})
}

// FlushSend waits until each standby received and flushed its fenced
// primary's flushed WAL, read on the standby, and answers that LSN.
func (d *Driver) FlushSend(ctx context.Context, primary, replica driver.Side, ps []int) []driver.Result {
	return d.onEach(ctx, primary, ps, func(ctx context.Context, db *pgxpool.Pool, addr string, p int) (uint64, error) {
		if err := d.mustBe(ctx, db, addr, true, "flush-send"); err != nil {
			return 0, err
		}
		// The insert position: a commit acknowledged before its WAL was
		// flushed (synchronous_commit off) is below it.
		target, err := d.lsn(ctx, db, addr, "pg_current_wal_insert_lsn()")
		if err != nil {
			return 0, err
		}
		raddr := replica.Endpoint(p)
		if err := d.sameCluster(ctx, db, addr, raddr); err != nil {
			return 0, err
		}
		_, err = d.waitFor(ctx, raddr, "pg_last_wal_receive_lsn()", target, "flush-send "+addr+": its standby "+raddr+" received")
		return target, err
	})
}

// FlushReplay waits until each standby replayed its target (0: everything
// it received).
func (d *Driver) FlushReplay(ctx context.Context, replica driver.Side, targets map[int]uint64,
	progress func(p int)) []driver.Result {
	ps := make([]int, 0, len(targets))
	for p := range targets {
		ps = append(ps, p)
	}
	return d.onEach(ctx, replica, ps, func(ctx context.Context, db *pgxpool.Pool, addr string, p int) (uint64, error) {
		if err := d.mustBe(ctx, db, addr, false, "flush-replay"); err != nil {
			return 0, err
		}
		var at uint64
		var err error
		if targets[p] == 0 {
			at, err = d.replayReceived(ctx, db, addr)
		} else {
			at, err = d.waitFor(ctx, addr, "pg_last_wal_replay_lsn()", targets[p], "flush-replay "+addr+": replayed")
		}
		if err == nil && progress != nil {
			progress(p)
		}
		return at, err
	})
}

// Promote promotes each standby (pg_promote, waiting for it) and lets the
// application's role log in there; a server already promoted answers the
// same.
func (d *Driver) Promote(ctx context.Context, replica driver.Side, ps []int) []driver.Result {
	return d.onEach(ctx, replica, ps, func(ctx context.Context, db *pgxpool.Pool, addr string, _ int) (uint64, error) {
		st, err := d.state(ctx, addr)
		if err != nil {
			return 0, err
		}
		if st.recovery {
			var ok bool
			if err := db.QueryRow(ctx, "SELECT pg_promote(true, 60)").Scan(&ok); err != nil {
				return 0, classify("promote "+addr, err)
			}
			if !ok {
				return 0, fmt.Errorf("promote %s: not promoted within 60 s", addr)
			}
		}
		if _, err := db.Exec(ctx, "ALTER ROLE "+pgx.Identifier{d.opts.AppRole}.Sanitize()+" LOGIN"); err != nil {
			return 0, classify("promote "+addr+": let "+d.opts.AppRole+" in", err)
		}
		return d.lsn(ctx, db, addr, "pg_current_wal_lsn()")
	})
}

// Rejoin cannot be done over SQL (pg_rewind and a restart on the old
// primary's host): it answers so, final, for each partition.
func (d *Driver) Rejoin(_ context.Context, old, primary driver.Side, ps []int) []driver.Result {
	out := make([]driver.Result, len(ps))
	for i, p := range ps {
		out[i] = driver.Result{Partition: p, Err: driver.Finalf("rejoin %s as a standby of %s: pg_rewind and a restart "+
			"on its host, by hand (docs/STORES.md)", old.Endpoint(p), primary.Endpoint(p))}
	}
	return out
}

// sameCluster refuses (final) a standby that is not a copy of the primary
// at addr (another cluster's system identifier): its LSNs would say
// nothing about this primary's writes.
func (d *Driver) sameCluster(ctx context.Context, primary *pgxpool.Pool, addr, raddr string) error {
	standby, err := d.pool(raddr)
	if err != nil {
		return err
	}
	var a, b int64
	if err := primary.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&a); err != nil {
		return classify("system identifier of "+addr, err)
	}
	if err := standby.QueryRow(ctx, "SELECT system_identifier FROM pg_control_system()").Scan(&b); err != nil {
		return classify("system identifier of "+raddr, err)
	}
	if a != b {
		return driver.Finalf("flush-send %s: %s is another cluster's server (system identifier %d, not %d): "+
			"check the account's endpoints", addr, raddr, b, a)
	}
	return nil
}

// state is a server's role and WAL positions.
type state struct {
	recovery                 bool
	written, acked, replayed uint64
}

func (d *Driver) state(ctx context.Context, addr string) (state, error) {
	db, err := d.pool(addr)
	if err != nil {
		return state{}, err
	}
	var st state
	err = db.QueryRow(ctx, `SELECT pg_is_in_recovery(),
		CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_receive_lsn() - '0/0', 0)
		     ELSE pg_current_wal_flush_lsn() - '0/0' END::bigint,
		CASE WHEN pg_is_in_recovery() THEN 0
		     ELSE coalesce((SELECT max(flush_lsn) - '0/0' FROM pg_stat_replication), 0) END::bigint,
		CASE WHEN pg_is_in_recovery() THEN coalesce(pg_last_wal_replay_lsn() - '0/0', 0)
		     ELSE coalesce((SELECT max(replay_lsn) - '0/0' FROM pg_stat_replication), 0) END::bigint`).
		Scan(&st.recovery, &st.written, &st.acked, &st.replayed)
	if err != nil {
		return state{}, classify("state of "+addr, err)
	}
	return st, nil
}

// mustBe refuses (final) a server that is not a primary (or a standby).
func (d *Driver) mustBe(ctx context.Context, db *pgxpool.Pool, addr string, primary bool, what string) error {
	var recovery bool
	if err := db.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&recovery); err != nil {
		return classify(what+" "+addr, err)
	}
	switch {
	case primary && recovery:
		return driver.Finalf("%s %s: it is a standby, not a primary", what, addr)
	case !primary && !recovery:
		return driver.Finalf("%s %s: it is a primary, not a standby", what, addr)
	}
	return nil
}

// lsn is the value of a WAL position function, in bytes.
func (d *Driver) lsn(ctx context.Context, db *pgxpool.Pool, addr, fn string) (uint64, error) {
	var n int64
	if err := db.QueryRow(ctx, "SELECT ("+fn+" - '0/0')::bigint").Scan(&n); err != nil {
		return 0, classify(fn+" on "+addr, err)
	}
	return uint64(n), nil
}

// waitFor polls fn on the server at addr until it reaches target.
func (d *Driver) waitFor(ctx context.Context, addr, fn string, target uint64, what string) (uint64, error) {
	db, err := d.pool(addr)
	if err != nil {
		return 0, err
	}
	for {
		var n *int64
		if err := db.QueryRow(ctx, "SELECT ("+fn+" - '0/0')::bigint").Scan(&n); err != nil {
			return 0, classify(what, err)
		}
		at := uint64(0)
		if n != nil {
			at = uint64(*n)
		}
		if at >= target {
			return at, nil
		}
		if !clock.Sleep(ctx, d.opts.Poll) {
			return 0, fmt.Errorf("%s %d of %d: %w", what, at, target, ctx.Err())
		}
	}
}

// onEach runs call on the server of each partition at once (shards are
// independent) and answers each.
func (d *Driver) onEach(ctx context.Context, side driver.Side, ps []int,
	call func(ctx context.Context, db *pgxpool.Pool, addr string, p int) (uint64, error)) []driver.Result {
	out := make([]driver.Result, len(ps))
	driver.Each(ps, func(i, p int) {
		addr := side.Endpoint(p)
		out[i] = driver.Result{Partition: p}
		db, err := d.pool(addr)
		if err != nil {
			out[i].Err = err
			return
		}
		out[i].Position, out[i].Err = call(ctx, db, addr, p)
	})
	return out
}

// classify says which of PostgreSQL's answers are final: bad credentials
// (28xxx), insufficient privilege (42501), an unknown role or object
// (42704, 42883), a read-only transaction (25006: a standby asked to
// write). A connection that failed may come back.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) && (strings.HasPrefix(pe.Code, "28") || pe.Code == "42501" || pe.Code == "42704" ||
		pe.Code == "42883" || pe.Code == "25006") {
		return driver.Finalf("%s: %w", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
