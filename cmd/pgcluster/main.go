// Command pgcluster runs Baton the way production does, on this machine:
// PostgreSQL (Debian's server binaries, initdb into a temporary directory),
// Temporal's schema made by temporal-sql-tool, the real Temporal server
// (go.temporal.io/server, pinned, built from the Go module proxy on first
// use) with all services in one process, the location service, two stamps
// and several Baton workers on the same task queue, everything on
// 127.0.0.1. It then fails an account over under live traffic, SIGKILLs
// the worker that runs a flush activity in the middle of the flush, and
// audits every acknowledged write. PostgreSQL runs with its durable
// defaults (fsync, full_page_writes, synchronous_commit on), as production
// does; --non-durable turns them off for a quicker experiment and says so
// in its output. Whichever way it ends (Ctrl-C, SIGTERM, a closed terminal,
// --exit) it stops every process it started and removes its temporary
// directory and PostgreSQL's data; a failed run keeps its logs and prints
// "logs kept in DIR". scripts/pg-cluster.sh installs PostgreSQL first if
// needed. Run "go run ./cmd/pgcluster --help".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/cli"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

func main() { cli.Exit("pgcluster", run(os.Args[1:], os.Stdout)) }

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("pgcluster", flag.ContinueOnError)
	dir := fs.String("dir", "", "where logs, configs and data go, kept (default: a new temporary directory, removed at the end unless something fails; PostgreSQL's data directory is a temporary one, always removed)")
	workers := fs.Int("workers", 2, "Baton worker processes on the task queue")
	account := fs.String("account", "pg-acct", "account to create and fail over")
	partitions := fs.Int("partitions", 1000, "partitions of the account")
	rate := fs.Float64("rate", 500, "live traffic, writes per second")
	kill := fs.Bool("kill-worker", true, "SIGKILL the worker running a flush activity in the middle of the flush")
	latency := fs.Duration("flush-latency", 2*time.Second, "added latency of each flush-replay call on the destination stamp (a slow destination, so the flush lasts long enough to kill a worker in it); 0 = none")
	failover := fs.Bool("failover", true, "run the failover; false = only start the cluster")
	exit := fs.Bool("exit", false, "exit after the audit instead of keeping the cluster up until Ctrl-C")
	nonDurable := fs.Bool("non-durable", false, "run PostgreSQL with fsync, full_page_writes and synchronous_commit off: quicker, NON-DURABLE, not how production runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	if *workers < 1 || *partitions < 1 || *rate < 0 {
		return errors.New("--workers and --partitions must be >= 1 and --rate not negative")
	}
	if *kill && *workers < 2 {
		return errors.New("--kill-worker needs --workers >= 2: the other workers finish the failover")
	}
	// Ctrl-C, SIGTERM or a closed terminal stop everything and remove its
	// files; a failure keeps the logs and says where.
	return testsuite.RunCommand(out, "pgcluster", *dir, func(ctx context.Context, rd *testsuite.RunDir) (err error) {
		fmt.Fprintf(out, "pgcluster: logs and configs in %s\n", rd)

		began := time.Now()
		c, err := testsuite.Start(ctx, testsuite.Options{
			Dir: rd.Path, Backend: testsuite.BackendPostgres, PostgresNonDurable: *nonDurable, Workers: *workers, WorkerMetrics: true,
			Durable: true, ReplicationDelay: 20 * time.Millisecond, ReplayRate: 3000, Progress: out,
		})
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(out, "pgcluster: up in %v (PostgreSQL %s)\n", time.Since(began).Round(time.Millisecond), c.Postgres.Mode())
		fmt.Fprintf(out, "  postgresql       %s (user %s, data %s), %s\n", c.Postgres.Addr(), c.Postgres.User, c.Postgres.DataDir, c.Postgres.Mode())
		fmt.Fprintf(out, "  temporal server  %s %s (config %s, metrics %s)\n", testsuite.TemporalServerVersion, c.Server.HostPort, c.Server.ConfigFile, c.Server.MetricsURL)
		fmt.Fprintf(out, "  location         %s\n", c.LocationURL)
		for _, name := range []string{testsuite.StampA, testsuite.StampB} {
			fmt.Fprintf(out, "  %-16s %s\n", name, c.StampURLs[name])
		}
		for i, w := range c.Workers {
			fmt.Fprintf(out, "  %-16s pid %d, metrics %s\n", w.Name, w.PID(), c.WorkerMetricsURLs[i])
		}
		fmt.Fprintf(out, "the baton CLI against it (over mutual TLS, as the operator):\n  export %s\n",
			strings.Join(c.CLIEnv(), " "))

		if *failover {
			if err := failoverUnderTraffic(ctx, out, c, *account, *partitions, *rate, *latency, *kill); err != nil {
				return err
			}
		}
		if *exit {
			return nil
		}
		fmt.Fprintln(out, "\npgcluster: the cluster stays up — Ctrl-C to stop everything")
		<-ctx.Done()
		return nil // the way this run ends: not a failure
	})
}

func failoverUnderTraffic(ctx context.Context, out io.Writer, c *testsuite.Cluster, account string, partitions int, rate float64, latency time.Duration, kill bool) error {
	if _, err := c.Provision(ctx, account, partitions); err != nil {
		return fmt.Errorf("provision %s: %w", account, err)
	}
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: rate, Workers: 8})
	if err := gen.Start(ctx); err != nil {
		return fmt.Errorf("start traffic: %w", err)
	}
	defer gen.Stop()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := testsuite.Poll(wctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= int64(rate), gen.Err() }); err != nil {
		return fmt.Errorf("traffic before the failover: %w", err)
	}
	fmt.Fprintf(out, "\npgcluster: account %s, %d partitions, live traffic at %.0f writes/s\n", account, partitions, rate)
	if latency > 0 {
		if err := c.StampClient(testsuite.StampB).AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFlushReplay, LatencyMillis: int(latency.Milliseconds())}); err != nil {
			return fmt.Errorf("slow down flush-replay on %s: %w", testsuite.StampB, err)
		}
		defer func() { _ = c.StampClient(testsuite.StampB).ClearFaults(context.Background()) }()
	}
	start := time.Now()
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: testsuite.StampA, ToStamp: testsuite.StampB,
		Reason: "pgcluster: planned failover on Temporal on PostgreSQL", RequestedBy: "pgcluster",
		Options: workflows.FailoverOptions{HeartbeatTimeout: 6 * time.Second},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "pgcluster: failover started, workflow %s\n", run.GetID())
	if kill {
		var held testsuite.HeldActivity
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		err := testsuite.Poll(wctx, 20*time.Millisecond, func() (bool, error) {
			var ok bool
			held, ok = c.MidFlush(wctx, run.GetID(), activities.NameFlushReplay, latency/2)
			return ok, nil
		})
		if err != nil {
			return fmt.Errorf("waiting for the failover to be mid-flush: %w", err)
		}
		w := c.Workers[held.Worker]
		w.Kill()
		fmt.Fprintf(out, "pgcluster: SIGKILLed %s (pid %d) at %v, mid-flush: it ran %s %s of %s\n",
			w.Name, w.PID(), time.Since(start).Round(time.Millisecond), held.Activity, held.ActivityID, held.WorkflowID)
	}
	var res workflows.FailoverResult
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("failover: %w", err)
	}
	took := time.Since(start)
	fmt.Fprintln(out)
	report.Failover(out, res, 10)
	fmt.Fprintf(out, "\npgcluster: failover done in %v (PostgreSQL %s)\n", took.Round(time.Millisecond), c.Postgres.Mode())

	acks := gen.AckCount()
	wctx2, cancel2 := context.WithTimeout(ctx, time.Minute)
	defer cancel2()
	if err := testsuite.Poll(wctx2, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= acks+int64(rate/2), gen.Err() }); err != nil {
		return fmt.Errorf("traffic after the failover: %w", err)
	}
	st := gen.Stop()
	fmt.Fprintf(out, "traffic: %d writes acknowledged (%v by stamp)\n", st.Acks, st.AcksByStamp)
	actx, cancel3 := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel3()
	rep, err := traffic.Audit(actx, c.Loc, account, gen.Acked(), traffic.AuditConfig{})
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	fmt.Fprint(out, rep.String())
	if err := rep.Err(); err != nil {
		return err
	}
	alive := []string{}
	for _, w := range c.Workers {
		if w.Running() {
			alive = append(alive, w.Name)
		}
	}
	fmt.Fprintf(out, "pgcluster: workers still running: %s\n", strings.Join(alive, ", "))
	return nil
}
