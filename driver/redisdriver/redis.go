// Package redisdriver drives Redis replication for Baton's failover
// (driver.Store): an account is N Redis primaries (shards), each with a
// replica on the other site. It does by hand, under Baton's durable
// orchestration, what Redis's own FAILOVER command does for one pair:
//
//   - fence: CLIENT PAUSE lease WRITE on the primary: writes wait (reads
//     go on) until the pause ends; the lease bounds a fence nobody lifts;
//   - flush-send: WAIT 1 until the replica acknowledged the primary's
//     master_repl_offset (the position);
//   - flush-replay: the replica's slave_repl_offset reaching it;
//   - promote: REPLICAOF NO ONE on the replica;
//   - rejoin: REPLICAOF new-primary on the old one, then CLIENT UNPAUSE:
//     the writes its fence held are refused (READONLY), never applied.
//
// Connections use TLS with a client certificate and the account's password
// (secure by default); the servers' replication uses TLS too.
package redisdriver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/internal/clock"
)

// Options are how the driver reaches the servers.
type Options struct {
	// TLS is the client side (nil: plaintext, for servers started so in
	// a test that proves it still works).
	TLS *tls.Config
	// Username and Password authenticate (AUTH); Username "" is Redis's
	// default user.
	Username, Password string
	// Poll is how often flush-replay and rejoin look again (default 10ms).
	Poll time.Duration
}

// Driver is the Redis driver. It is safe for concurrent use.
type Driver struct {
	opts    Options
	mu      sync.Mutex
	clients map[string]*redis.Client
}

// New returns a driver calling with opts.
func New(opts Options) *Driver {
	if opts.Poll <= 0 {
		opts.Poll = 10 * time.Millisecond
	}
	return &Driver{opts: opts, clients: map[string]*redis.Client{}}
}

var _ driver.Store = (*Driver)(nil)

// Kind is driver.KindRedis.
func (d *Driver) Kind() driver.Kind { return driver.KindRedis }

// Close closes every connection.
func (d *Driver) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for addr, c := range d.clients {
		errs = append(errs, c.Close())
		delete(d.clients, addr)
	}
	return errors.Join(errs...)
}

// client is the (cached) client of the server at addr.
func (d *Driver) client(addr string) *redis.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.clients[addr]
	if !ok {
		var tlsCfg *tls.Config
		if d.opts.TLS != nil {
			tlsCfg = d.opts.TLS.Clone()
		}
		c = redis.NewClient(&redis.Options{
			Addr: addr, TLSConfig: tlsCfg, Username: d.opts.Username, Password: d.opts.Password,
			DialTimeout: 3 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
			MaxRetries: -1, // the activity retries; a command is sent once per call
		})
		d.clients[addr] = c
	}
	return c
}

// Positions reads each shard's replication state from INFO replication.
func (d *Driver) Positions(ctx context.Context, side driver.Side, ps []int) []driver.Positions {
	out := make([]driver.Positions, len(ps))
	driver.Each(ps, func(i, p int) {
		out[i] = driver.Positions{Partition: p}
		info, err := d.info(ctx, side.Endpoint(p))
		if err != nil {
			out[i].Err = err
			return
		}
		out[i].Primary = info.primary()
		if out[i].Primary {
			out[i].Written, out[i].Acked = info.masterOffset, info.replicaAck
		} else {
			out[i].Written, out[i].Replayed = info.received, info.replayed
		}
	})
	return out
}

// Fence pauses writes on each primary for lease and answers its offset.
// A server that is a replica is refused (final): fencing it would hide
// that the account is not where the caller thinks.
func (d *Driver) Fence(ctx context.Context, primary driver.Side, ps []int, lease time.Duration) []driver.Result {
	ms := max(lease.Milliseconds(), 1)
	return d.onEach(ctx, primary, ps, func(ctx context.Context, c *redis.Client, addr string, p int) (uint64, error) {
		info, err := d.info(ctx, addr)
		if err != nil {
			return 0, err
		}
		if !info.primary() {
			return 0, driver.Finalf("fence %s: it is a replica of %s, not a primary", addr, info.masterHost)
		}
		if err := c.Do(ctx, "CLIENT", "PAUSE", ms, "WRITE").Err(); err != nil {
			return 0, classify("fence "+addr, err)
		}
		// Read after the pause took hold: every write that committed is
		// at or below this offset.
		after, err := d.info(ctx, addr)
		if err != nil {
			return 0, err
		}
		return after.masterOffset, nil
	})
}

// Unfence lifts the pause of each primary (a rollback).
func (d *Driver) Unfence(ctx context.Context, primary driver.Side, ps []int) []driver.Result {
	return d.onEach(ctx, primary, ps, func(ctx context.Context, c *redis.Client, addr string, p int) (uint64, error) {
		if err := c.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
			return 0, classify("unfence "+addr, err)
		}
		return 0, nil
	})
}

// FlushSend waits until each fenced primary's replica received its
// offset, read on the replica itself (slave_read_repl_offset: a replica
// acknowledges only once a second, and Redis 7.0 sends no GETACK while
// writes are paused), and answers that offset.
func (d *Driver) FlushSend(ctx context.Context, primary, replica driver.Side, ps []int) []driver.Result {
	return d.onEach(ctx, primary, ps, func(ctx context.Context, c *redis.Client, addr string, p int) (uint64, error) {
		info, err := d.info(ctx, addr)
		if err != nil {
			return 0, err
		}
		if !info.primary() {
			return 0, driver.Finalf("flush-send %s: it is a replica, not the fenced primary", addr)
		}
		target, raddr := info.masterOffset, replica.Endpoint(p)
		for {
			r, err := d.info(ctx, raddr)
			if err != nil {
				return 0, err
			}
			// Linked, the same replication ID: it follows this primary,
			// whatever address it knows it by. Not linked yet (a sync in
			// progress), its offsets say nothing: wait.
			linked := r.linkStatus == "up"
			switch {
			case r.primary() || (linked && r.replid != info.replid):
				return 0, driver.Finalf("flush-send %s: %s does not replicate from it (role %s, primary %s, "+
					"replication ID %s, not %s)", addr, raddr, r.role, r.masterAddr(), r.replid, info.replid)
			case linked && r.received >= target:
				return target, nil
			}
			if !clock.Sleep(ctx, d.opts.Poll) {
				return 0, fmt.Errorf("flush-send %s: its replica %s received offset %d of %d (link %s): %w",
					addr, raddr, r.received, target, r.linkStatus, ctx.Err())
			}
		}
	})
}

// FlushReplay waits until each replica processed its target offset.
func (d *Driver) FlushReplay(ctx context.Context, replica driver.Side, targets map[int]uint64,
	progress func(p int)) []driver.Result {
	ps := make([]int, 0, len(targets))
	for p := range targets {
		ps = append(ps, p)
	}
	return d.onEach(ctx, replica, ps, func(ctx context.Context, c *redis.Client, addr string, p int) (uint64, error) {
		for {
			info, err := d.info(ctx, addr)
			if err != nil {
				return 0, err
			}
			if info.primary() {
				return 0, driver.Finalf("flush-replay %s: it is a primary, not a replica", addr)
			}
			if info.replayed >= targets[p] {
				if progress != nil {
					progress(p)
				}
				return info.replayed, nil
			}
			if !clock.Sleep(ctx, d.opts.Poll) {
				return 0, fmt.Errorf("flush-replay %s: replayed offset %d of %d (link %s): %w",
					addr, info.replayed, targets[p], info.linkStatus, ctx.Err())
			}
		}
	})
}

// Promote makes each replica a primary (REPLICAOF NO ONE); a server that
// is already one answers its offset.
func (d *Driver) Promote(ctx context.Context, replica driver.Side, ps []int) []driver.Result {
	return d.onEach(ctx, replica, ps, func(ctx context.Context, c *redis.Client, addr string, p int) (uint64, error) {
		if err := c.Do(ctx, "REPLICAOF", "NO", "ONE").Err(); err != nil {
			return 0, classify("promote "+addr, err)
		}
		info, err := d.info(ctx, addr)
		if err != nil {
			return 0, err
		}
		return info.masterOffset, nil
	})
}

// Rejoin makes each old primary a replica of the new one, then lifts its
// fence (the writes it held are refused: it is read-only now), and waits
// until the replication link is up.
func (d *Driver) Rejoin(ctx context.Context, old, primary driver.Side, ps []int) []driver.Result {
	return d.onEach(ctx, old, ps, func(ctx context.Context, c *redis.Client, addr string, p int) (uint64, error) {
		newAddr := primary.Endpoint(p)
		host, port, err := net.SplitHostPort(newAddr)
		if err != nil {
			return 0, driver.Finalf("rejoin %s: new primary %q is not host:port", addr, newAddr)
		}
		if err := c.Do(ctx, "REPLICAOF", host, port).Err(); err != nil {
			return 0, classify("rejoin "+addr, err)
		}
		if err := c.Do(ctx, "CLIENT", "UNPAUSE").Err(); err != nil {
			return 0, classify("rejoin "+addr, err)
		}
		for {
			info, err := d.info(ctx, addr)
			if err != nil {
				return 0, err
			}
			if info.linkStatus == "up" {
				return info.replayed, nil
			}
			if !clock.Sleep(ctx, d.opts.Poll) {
				return 0, fmt.Errorf("rejoin %s: replication link to %s is %s: %w", addr, newAddr, info.linkStatus, ctx.Err())
			}
		}
	})
}

// onEach runs call on the server of each partition at once (shards are
// independent) and answers each.
func (d *Driver) onEach(ctx context.Context, side driver.Side, ps []int,
	call func(ctx context.Context, c *redis.Client, addr string, p int) (uint64, error)) []driver.Result {
	out := make([]driver.Result, len(ps))
	driver.Each(ps, func(i, p int) {
		addr := side.Endpoint(p)
		pos, err := call(ctx, d.client(addr), addr, p)
		out[i] = driver.Result{Partition: p, Position: pos, Err: err}
	})
	return out
}

// replication is a server's INFO replication, the fields Baton reads.
type replication struct {
	role                   string
	masterHost, masterPort string
	linkStatus             string
	masterOffset, replayed uint64
	received               uint64 // a replica's offset read from its primary
	replid                 string // the replication history it is on
	replicaAck             uint64 // the first replica's acknowledged offset (primary)
}

func (r replication) primary() bool { return r.role == "master" }

// masterAddr is a replica's primary as host:port.
func (r replication) masterAddr() string { return net.JoinHostPort(r.masterHost, r.masterPort) }

// info reads INFO replication of the server at addr.
func (d *Driver) info(ctx context.Context, addr string) (replication, error) {
	s, err := d.client(addr).Info(ctx, "replication").Result()
	if err != nil {
		return replication{}, classify("INFO replication of "+addr, err)
	}
	return parseReplication(s), nil
}

// parseReplication reads INFO replication's text.
func parseReplication(s string) replication {
	var r replication
	for _, line := range strings.Split(s, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch k {
		case "role":
			r.role = v
		case "master_host":
			r.masterHost = v
		case "master_port":
			r.masterPort = v
		case "master_replid":
			r.replid = v
		case "slave_read_repl_offset":
			r.received = parseOffset(v)
		case "master_link_status":
			r.linkStatus = v
		case "master_repl_offset":
			r.masterOffset = parseOffset(v)
		case "slave_repl_offset":
			r.replayed = parseOffset(v)
		case "slave0": // ip=...,port=...,state=online,offset=N,lag=0
			for _, f := range strings.Split(v, ",") {
				if fv, ok := strings.CutPrefix(f, "offset="); ok {
					r.replicaAck = parseOffset(fv)
				}
			}
		}
	}
	return r
}

func parseOffset(v string) uint64 {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return uint64(n)
}

// classify says which of Redis's answers are final: bad credentials,
// permissions, unknown commands and a read-only replica asked to write
// do not change on a retry; a connection that failed or timed out may.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	for _, final := range []string{"NOAUTH", "WRONGPASS", "NOPERM", "ERR unknown command", "READONLY",
		"ERR syntax error", "ERR wrong number of arguments"} {
		if strings.HasPrefix(msg, final) {
			return driver.Finalf("%s: %w", what, err)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}
