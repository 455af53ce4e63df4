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
	"time"

	"github.com/batonhq/baton/internal/cli"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

func main() { cli.Exit("demo", run(os.Args[1:], os.Stdout)) }

// demoWorkerArgs: the demo's worker logs human-readable console lines
// (its worker.log is read by people); in production the worker logs JSON.
var demoWorkerArgs = []string{"--log-format", "console"}

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	account := fs.String("account", "demo-account", "account to create and fail over")
	partitions := fs.Int("partitions", 256, "partitions of the account")
	rate := fs.Float64("rate", 2000, "live traffic, writes per second")
	warmup := fs.Duration("warmup", 5*time.Second, "traffic before the failover")
	after := fs.Duration("after", 3*time.Second, "traffic after the failover, on the new primary")
	delay := fs.Duration("replication-delay", 50*time.Millisecond, "stamps' added WAN delay per shipment")
	replayRate := fs.Float64("replay-rate", 2000, "secondary replay rate, ops/s per partition (0 = unthrottled)")
	uiPort := fs.Int("ui-port", 8233, "Temporal Web UI port (0 = any free port)")
	dir := fs.String("dir", "", "where logs and data go, kept (default: a new temporary directory, removed at the end unless something fails)")
	exit := fs.Bool("exit", false, "exit after the report instead of keeping the UI up until Ctrl-C")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *partitions < 1 || *rate < 0 || *warmup < 0 || *after < 0 {
		return errors.New("--partitions must be >= 1, and --rate, --warmup and --after must not be negative")
	}
	// Ctrl-C, SIGTERM or a closed terminal stop everything and remove its
	// files; a failure keeps the logs and says where.
	return testsuite.RunCommand(out, "demo", *dir, func(ctx context.Context, rd *testsuite.RunDir) (err error) {
		fmt.Fprintf(out, "baton demo: logs and data in %s\n", rd)

		c, err := testsuite.Start(ctx, testsuite.Options{
			Dir: rd.Path, UI: true, UIPort: *uiPort, Durable: true,
			ReplicationDelay: *delay, ReplayRate: *replayRate, Progress: out, WorkerArgs: demoWorkerArgs,
		})
		if err != nil && *uiPort != 0 {
			// The usual UI port may be taken; any free one will do.
			fmt.Fprintf(out, "baton: %v; retrying with a free UI port\n", err)
			c, err = testsuite.Start(ctx, testsuite.Options{
				Dir: filepath.Join(rd.Path, "retry"), UI: true, Durable: true,
				ReplicationDelay: *delay, ReplayRate: *replayRate, Progress: out, WorkerArgs: demoWorkerArgs,
			})
		}
		if err != nil {
			return err
		}
		defer c.Close()
		fmt.Fprintf(out, "baton: Temporal Web UI at %s\n", c.Temporal.UIURL)

		if _, err := c.Provision(ctx, *account, *partitions); err != nil {
			return fmt.Errorf("provision %s: %w", *account, err)
		}
		fmt.Fprintf(out, "baton: account %s with %d partitions, primary %s replicating to %s\n", *account, *partitions, testsuite.StampA, testsuite.StampB)

		gen := traffic.New(traffic.Config{Location: c.Loc, Account: *account, Rate: *rate, Workers: 16})
		if err := gen.Start(ctx); err != nil {
			return fmt.Errorf("start traffic: %w", err)
		}
		defer gen.Stop()
		fmt.Fprintf(out, "baton: live traffic at %.0f writes/s for %s before the failover\n", *rate, *warmup)
		if err := pause(ctx, *warmup); err != nil {
			return err
		}

		run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
			Account: *account, FromStamp: testsuite.StampA, ToStamp: testsuite.StampB,
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

		fmt.Fprintf(out, "\nbaton: traffic goes on for %s on the new primary\n", *after)
		if err := pause(ctx, *after); err != nil {
			return err
		}
		st := gen.Stop()
		if err := gen.Err(); err != nil {
			return fmt.Errorf("traffic: %w", err)
		}
		fmt.Fprintf(out, "traffic: %d writes acknowledged (%v by stamp), %d retries %v, %d redirects\n",
			st.Acks, st.AcksByStamp, sum(st.Retries), st.Retries, st.Redirects)
		actx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		rep, err := traffic.Audit(actx, c.Loc, *account, gen.Acked(), traffic.AuditConfig{})
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		fmt.Fprint(out, rep.String())
		if err := rep.Err(); err != nil {
			return err
		}
		if *exit {
			return nil
		}
		fmt.Fprintf(out, "\nbaton: the Temporal Web UI stays up at %s — Ctrl-C to stop everything\n", c.Temporal.UIURL)
		<-ctx.Done()
		return nil // the way this run ends: not a failure
	})
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
