// Command demo is Baton's main job: on a machine with only Go, it starts a
// Temporal dev server with its Web UI, a location service, two stamps, a
// worker and live traffic on an account, runs a planned failover under that
// traffic, prints the failover's report and the traffic tool's audit, and
// leaves the Web UI up until Ctrl-C. Whichever way it ends (Ctrl-C,
// SIGTERM, a closed terminal, --exit) it stops every process it started and
// removes its temporary directory; a failed run keeps its logs and prints
// "logs kept in DIR".
//
//	go run ./cmd/demo
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/batonhq/baton/internal/cli"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

func main() { cli.Exit("demo", run(os.Args[1:], os.Stdout)) }

// demoWorkerArgs: the demo's worker logs human-readable console lines
// (its worker.log is read by people); in production the worker logs JSON.
var demoWorkerArgs = []string{"--log-format", "console"}

// options are the demo's flags.
type options struct {
	store, account       string
	partitions, uiPort   int
	rate, replayRate     float64
	warmup, after, delay time.Duration
	dir                  string
	exit                 bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.StringVar(&o.store, "store", "stamp", "what the account lives in: stamp (Baton's reference stamps), redis "+
		"(Redis shards, Debian's redis-server) or postgres (PostgreSQL shards with streaming standbys, Debian's postgresql)")
	fs.StringVar(&o.account, "account", "demo-account", "account to create and fail over")
	fs.IntVar(&o.partitions, "partitions", 256, "partitions of the account (with --store redis: shards, default 8; postgres: 4)")
	fs.Float64Var(&o.rate, "rate", 2000, "live traffic, writes per second (stamps; Redis writers go as fast as they can)")
	fs.DurationVar(&o.warmup, "warmup", 5*time.Second, "traffic before the failover")
	fs.DurationVar(&o.after, "after", 3*time.Second, "traffic after the failover, on the new primary")
	fs.DurationVar(&o.delay, "replication-delay", 50*time.Millisecond, "stamps' added WAN delay per shipment")
	fs.Float64Var(&o.replayRate, "replay-rate", 2000, "secondary replay rate, ops/s per partition (0 = unthrottled)")
	fs.IntVar(&o.uiPort, "ui-port", 8233, "Temporal Web UI port (0 = any free port)")
	fs.StringVar(&o.dir, "dir", "", "where logs and data go, kept (default: a new temporary directory, removed at the end unless something fails)")
	fs.BoolVar(&o.exit, "exit", false, "exit after the report instead of keeping the UI up until Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if !flagGiven(fs, "partitions") {
		o.partitions = map[string]int{"stamp": 256, location.KindRedis: 8, location.KindPostgres: 4}[o.store]
	}
	switch {
	case o.store != "stamp" && o.store != location.KindRedis && o.store != location.KindPostgres:
		return o, fmt.Errorf("--store %q: use stamp, redis or postgres", o.store)
	case o.partitions < 1 || o.rate < 0 || o.warmup < 0 || o.after < 0:
		return o, errors.New("--partitions must be >= 1, and --rate, --warmup and --after must not be negative")
	}
	return o, nil
}

func flagGiven(fs *flag.FlagSet, name string) (given bool) {
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

func run(args []string, out io.Writer) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	// Ctrl-C, SIGTERM or a closed terminal stop everything and remove its
	// files; a failure keeps the logs and says where.
	return testsuite.RunCommand(out, "demo", o.dir, func(ctx context.Context, rd *testsuite.RunDir) (err error) {
		fmt.Fprintf(out, "baton demo: logs and data in %s\n", rd)
		c, w, err := start(ctx, out, rd, o)
		if c != nil {
			defer c.Close()
		}
		if w != nil {
			defer w.stop()
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "baton: live traffic for %s before the failover\n", o.warmup)
		if err := pause(ctx, o.warmup); err != nil {
			return err
		}
		if err := failOver(ctx, out, c, o, w.destination()); err != nil {
			return err
		}
		fmt.Fprintf(out, "\nbaton: traffic goes on for %s on the new primary\n", o.after)
		if err := pause(ctx, o.after); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		if err := w.audit(actx, out); err != nil {
			return err
		}
		if o.exit {
			return nil
		}
		fmt.Fprintf(out, "\nbaton: the Temporal Web UI stays up at %s — Ctrl-C to stop everything\n", c.Temporal.UIURL)
		<-ctx.Done()
		return nil // the way this run ends: not a failure
	})
}

// start starts the cluster (the usual UI port may be taken: then any
// free one), the account and its live traffic.
func start(ctx context.Context, out io.Writer, rd *testsuite.RunDir, o options) (*testsuite.Cluster, workload, error) {
	workerArgs := demoWorkerArgs
	var password string
	if o.store != "stamp" {
		pw, file, err := testsuite.NewPassword(filepath.Join(rd.Path, o.store), o.store)
		if err != nil {
			return nil, nil, err
		}
		password, workerArgs = pw, append(slices.Clone(workerArgs), testsuite.WorkerArgs(o.store, file)...)
	}
	opts := testsuite.Options{Dir: rd.Path, UI: true, UIPort: o.uiPort, Durable: true,
		ReplicationDelay: o.delay, ReplayRate: o.replayRate, Progress: out, WorkerArgs: workerArgs}
	c, err := testsuite.Start(ctx, opts)
	if err != nil && o.uiPort != 0 {
		fmt.Fprintf(out, "baton: %v; retrying with a free UI port\n", err)
		opts.Dir, opts.UIPort = filepath.Join(rd.Path, "retry"), 0
		c, err = testsuite.Start(ctx, opts)
	}
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(out, "baton: Temporal Web UI at %s\n", c.Temporal.UIURL)
	var w workload
	if o.store != "stamp" {
		w, err = startShards(ctx, out, c, o, password)
	} else {
		w, err = startStamps(ctx, out, c, o)
	}
	return c, w, err
}

// failOver runs the planned failover to destination and prints its report.
func failOver(ctx context.Context, out io.Writer, c *testsuite.Cluster, o options, destination string) error {
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: o.account, ToStamp: destination,
		Reason: "demo: planned failover under live traffic", RequestedBy: "baton demo",
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "baton: failover started, workflow %s\n        %s/namespaces/default/workflows/%s/%s/history\n",
		run.GetID(), c.Temporal.UIURL, run.GetID(), run.GetRunID())
	var res workflows.FailoverResult
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	fmt.Fprintln(out)
	report.Failover(out, res, 10)
	return nil
}

// workload is the account's live traffic: where the failover goes, and the
// audit of every acknowledged write at the end.
type workload interface {
	destination() string
	audit(ctx context.Context, out io.Writer) error
	stop()
}

// stampWorkload: an account on the reference stamps.
type stampWorkload struct {
	account string
	loc     *location.Client
	gen     *traffic.Generator
}

func startStamps(ctx context.Context, out io.Writer, c *testsuite.Cluster, o options) (workload, error) {
	if _, err := c.Provision(ctx, o.account, o.partitions); err != nil {
		return nil, fmt.Errorf("provision %s: %w", o.account, err)
	}
	fmt.Fprintf(out, "baton: account %s with %d partitions, primary %s replicating to %s\n", o.account, o.partitions,
		testsuite.StampA, testsuite.StampB)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: o.account, Rate: o.rate, Workers: 16})
	if err := gen.Start(ctx); err != nil {
		return nil, fmt.Errorf("start traffic: %w", err)
	}
	fmt.Fprintf(out, "baton: live traffic at %.0f writes/s\n", o.rate)
	return &stampWorkload{account: o.account, loc: c.Loc, gen: gen}, nil
}

func (w *stampWorkload) destination() string { return testsuite.StampB }
func (w *stampWorkload) stop()               { w.gen.Stop() }

func (w *stampWorkload) audit(ctx context.Context, out io.Writer) error {
	st := w.gen.Stop()
	if err := w.gen.Err(); err != nil {
		return fmt.Errorf("traffic: %w", err)
	}
	fmt.Fprintf(out, "traffic: %d writes acknowledged (%v by stamp), %d retries %v, %d redirects\n",
		st.Acks, st.AcksByStamp, sum(st.Retries), st.Retries, st.Redirects)
	rep, err := traffic.Audit(ctx, w.loc, w.account, w.gen.Acked(), traffic.AuditConfig{})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	fmt.Fprint(out, rep.String())
	return rep.Err()
}

// shardWorkload: an account of Redis or PostgreSQL shards
// (docs/STORES.md).
type shardWorkload struct {
	sa   *testsuite.ShardAccount
	cfg  traffic.ShardConfig
	w    *traffic.ShardWriter
	done bool // w stopped
}

func startShards(ctx context.Context, out io.Writer, c *testsuite.Cluster, o options, password string) (workload, error) {
	start, what := c.StartRedisAccount, "a redis-server"
	if o.store == location.KindPostgres {
		start, what = c.StartPGAccount, "a PostgreSQL"
	}
	sa, err := start(ctx, o.account, o.partitions, password)
	w := &shardWorkload{sa: sa}
	if err != nil {
		return w, fmt.Errorf("%s account %s: %w", o.store, o.account, err)
	}
	siteA, siteB := testsuite.Sites(sa.Kind)
	fmt.Fprintf(out, "baton: %s account %s: %d shards, each %s primary on %s replicating to one on %s\n",
		o.store, o.account, o.partitions, what, siteA, siteB)
	if err := sa.WaitOnline(ctx, c); err != nil {
		return w, err
	}
	w.cfg = sa.Config(c)
	w.w = traffic.NewShards(w.cfg)
	if err := w.w.Start(ctx); err != nil {
		return w, err
	}
	fmt.Fprintf(out, "baton: live writes, one writer per shard, following the location service\n")
	return w, nil
}

func (w *shardWorkload) destination() string {
	_, b := testsuite.Sites(w.sa.Kind)
	return b
}

func (w *shardWorkload) stop() {
	if w.w != nil && !w.done {
		w.w.Stop()
		w.done = true
	}
	w.sa.Stop()
}

func (w *shardWorkload) audit(ctx context.Context, out io.Writer) error {
	acks := w.w.Stop()
	w.done = true
	fmt.Fprintf(out, "traffic: %d writes acknowledged\n", len(acks))
	rep, err := traffic.AuditShards(ctx, w.cfg, acks)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	fmt.Fprint(out, rep.String())
	return rep.Err()
}

// pause waits d or until ctx ends (the demo's own pacing, not a test wait).
func pause(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func sum(m map[string]int64) (n int64) {
	for _, v := range m {
		n += v
	}
	return n
}
