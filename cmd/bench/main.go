// Command bench measures Baton's failover on a real Temporal dev server and
// real stamps: total time and orchestration overhead per partition for
// accounts of several sizes with nothing pending, the largest workflow
// history, and two loaded scenarios (flush time against the slowest
// partition with real replication lag, and the write-unavailability window
// of 1,000 partitions each with a backlog under live traffic). Every
// target is printed met or MISSED; a missed one makes it exit non-zero.
//
//	go run ./cmd/bench                       # 1, 100, 1000, 10000 partitions + lag scenarios
//	go run ./cmd/bench --sizes 1000 --lag=false
//
// Whichever way it ends (Ctrl-C, SIGTERM, a closed terminal, the last
// scenario) it stops every process it started and removes its temporary
// directory; a failed run keeps its logs and prints "logs kept in DIR".
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/internal/cli"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

func main() { cli.Exit("bench", run(os.Args[1:], os.Stdout)) }

func run(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	sizes := fs.String("sizes", "1,100,1000,10000", "comma-separated partition counts")
	lag := fs.Bool("lag", true, "also run the replication-lag scenarios")
	reprotect := fs.Bool("reprotect", true, "also run the reprotect scenarios (1,000 partitions; seeding a wiped stamp)")
	stores := fs.Bool("stores", true, "also run the stores' scenarios (Redis 8 shards, PostgreSQL 1 and 4 shards, failed over and back under live writes)")
	evacuation := fs.Bool("evacuation", true, "also run the stamp-evacuation scenarios (1,000 x 16, 10,000 x 1, 200 x 64 loaded)")
	evacK := fs.Int("max-in-flight", 0, "K of the evacuations (0 = the workflow's default)")
	evacScale := fs.Float64("evacuation-scale", 1, "scale the evacuations' account counts (targets apply at 1 only)")
	evacOnly := fs.String("evacuations", "1000x16,10000x1,200x64", "the evacuation scenarios to run, of 1000x16, 10000x1 and 200x64 (loaded)")
	seedKeys := fs.Int("seed-keys", 1_000_000, "keys of the account the seeding scenario copies to a wiped stamp")
	durable := fs.Bool("durable", true, "stamps fsync to disk (false = memory mode)")
	dir := fs.String("dir", "", "logs and data, kept (default: a temporary directory, removed at the end unless something fails)")
	groupSize := fs.Int("group-size", 0, "partitions per child workflow (0 = the workflow's default)")
	timeline := fs.Bool("timeline", false, "print the parent workflow's event timeline of each run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var ps []int
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("--sizes: %q is not a positive partition count", s)
		}
		ps = append(ps, n)
	}
	// Ctrl-C, SIGTERM or a closed terminal stop everything and remove its
	// files; a failure keeps the logs and says where.
	return testsuite.RunCommand(out, "bench", *dir, func(ctx context.Context, rd *testsuite.RunDir) (err error) {
		fmt.Fprintf(out, "# baton bench, %s, %d CPUs, %s/%s, logs in %s\n", time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, rd)
		c, err := testsuite.Start(ctx, testsuite.Options{Dir: rd.Path, Durable: *durable, Progress: io.Discard})
		if err != nil {
			return err
		}
		defer c.Close()

		var t targets
		defer func() {
			if err == nil {
				err = t.err()
			}
		}()
		fmt.Fprintf(out, "\nSize: accounts with nothing pending (no traffic, nothing to replicate), so these measure the orchestration alone.\n")
		fmt.Fprintf(out, "\n| partitions | total (s) | in workflow (s) | overhead/partition (ms) | unavailable (ms) | largest history (events) | target |\n|---:|---:|---:|---:|---:|---:|---|\n")
		for _, p := range ps {
			m, err := failover(ctx, c, fmt.Sprintf("bench-%d", p), p, workflows.FailoverOptions{GroupSize: *groupSize})
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "| %d | %.2f | %.2f | %.2f | %d | %d | %s |\n", p, m.wall.Seconds(), float64(m.res.TotalMillis)/1000,
				float64(m.wall.Milliseconds())/float64(p), m.res.UnavailableMillis, m.maxEvents, t.size(p, m))
			if *timeline {
				if err := printTimeline(ctx, out, c.Client, workflows.FailoverWorkflowID(fmt.Sprintf("bench-%d", p))); err != nil {
					return err
				}
			}
		}
		if *lag {
			if err := lagScenarios(ctx, out, rd.Path, *durable, *groupSize, &t); err != nil {
				return err
			}
		}
		if *reprotect {
			if err := reprotectScenarios(ctx, out, rd.Path, *seedKeys, &t); err != nil {
				return err
			}
		}
		if *stores {
			if err := storeScenarios(ctx, out, rd.Path, &t); err != nil {
				return err
			}
		}
		if *evacuation {
			return evacuationScenarios(ctx, out, rd.Path, evacuationOptions{durable: *durable, scale: *evacScale,
				timeline: *timeline, maxInFlight: *evacK, only: strings.Split(*evacOnly, ",")}, &t)
		}
		return nil
	})
}

// targets collects what each run was held to, so the bench fails (exits
// non-zero) when any target is missed.
type targets struct{ missed []string }

// check records one target and says how it went.
func (t *targets) check(what string, ok bool) string {
	if ok {
		return "met"
	}
	t.missed = append(t.missed, what)
	return "MISSED"
}

// sizeTargets: partitions -> (wall time bound, largest history bound, and
// a bound on the write-unavailability window, fence to promote, if any),
// for accounts with nothing pending.
var sizeTargets = map[int]struct {
	wall   time.Duration
	events int
	window time.Duration
}{
	1000:  {3 * time.Second, 10_000, 250 * time.Millisecond},
	10000: {30 * time.Second, 10_000, 0},
}

func (t *targets) size(partitions int, m measure) string {
	st, ok := sizeTargets[partitions]
	if !ok {
		return ""
	}
	what := fmt.Sprintf("%d partitions: total <= %s and largest history < %d events", partitions, st.wall, st.events)
	met := m.wall <= st.wall && m.maxEvents < st.events
	if st.window > 0 {
		what += fmt.Sprintf(" and fenced <= %s", st.window)
		met = met && time.Duration(m.res.UnavailableMillis)*time.Millisecond <= st.window
	}
	return what + ": " + t.check(what, met)
}

func (t *targets) err() error {
	if len(t.missed) == 0 {
		return nil
	}
	return fmt.Errorf("%d targets missed: %s", len(t.missed), strings.Join(t.missed, "; "))
}

type measure struct {
	wall      time.Duration
	res       workflows.FailoverResult
	maxEvents int
}

// failover provisions account and fails it over, measuring wall time (start
// request to result) and the largest history among the parent and children.
func failover(ctx context.Context, c *testsuite.Cluster, account string, partitions int, opts workflows.FailoverOptions) (measure, error) {
	var m measure
	if _, err := c.Provision(ctx, account, partitions); err != nil {
		return m, fmt.Errorf("provision %s: %w", account, err)
	}
	t0 := time.Now()
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: testsuite.StampA, ToStamp: testsuite.StampB, Reason: "bench", RequestedBy: "bench", Options: opts,
	})
	if err != nil {
		return m, err
	}
	if err := run.Get(ctx, &m.res); err != nil {
		return m, fmt.Errorf("failover of %s: %w", account, err)
	}
	m.wall = time.Since(t0)
	children := m.res.Groups
	if m.res.Inline {
		children = 0
	}
	m.maxEvents, err = largestHistory(ctx, c.Client, run.GetID(), run.GetRunID(), children)
	return m, err
}

func largestHistory(ctx context.Context, c client.Client, id, runID string, groups int) (int, error) {
	count := func(id, runID string) (int, error) {
		it := c.GetWorkflowHistory(ctx, id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
		n := 0
		for it.HasNext() {
			if _, err := it.Next(); err != nil {
				return 0, fmt.Errorf("history of %s: %w", id, err)
			}
			n++
		}
		return n, nil
	}
	largest, err := count(id, runID)
	if err != nil {
		return 0, err
	}
	for i := range groups {
		n, err := count(fmt.Sprintf("%s/group-%04d", id, i), "")
		if err != nil {
			return 0, err
		}
		largest = max(largest, n)
	}
	return largest, nil
}

// lagScenarios runs on a cluster whose secondary replays at a limited rate.
func lagScenarios(ctx context.Context, out io.Writer, dir string, durable bool, groupSize int, t *targets) error {
	const replayRate = 2000 // ops/s per partition
	c, err := testsuite.Start(ctx, testsuite.Options{Dir: dir + "/lag", Durable: durable, ReplayRate: replayRate,
		ReplicationDelay: 50 * time.Millisecond, Progress: io.Discard})
	if err != nil {
		return err
	}
	defer c.Close()

	// 1. Flush time: no catch-up, a backlog in every partition, one partition
	// far behind; the failover should take about the slowest partition.
	const acct1, p1 = "lag-flush", 100
	if _, err := c.Provision(ctx, acct1, p1); err != nil {
		return err
	}
	if err := backlog(ctx, c, acct1, p1, 100_000, map[int]int{7: 6000}); err != nil {
		return err
	}
	m, err := failover(ctx, c, acct1, p1, workflows.FailoverOptions{CatchUpTimeout: -1, GroupSize: groupSize})
	if err != nil {
		return err
	}
	slowest := time.Duration(m.res.SlowestFlushMillis) * time.Millisecond
	fmt.Fprintf(out, "\nflush with real lag (%d partitions, 100,000 ops + 6,000 on partition 7 held back, replay %d ops/s/partition, no catch-up):\n", p1, replayRate)
	fmt.Fprintf(out, "  total %.2f s, slowest partition flush %.2f s, bound 1.2 x slowest + 1 s = %.2f s: %s\n",
		m.wall.Seconds(), slowest.Seconds(), (1.2*slowest.Seconds())+1,
		t.check("flush with real lag: total <= 1.2 x the slowest partition's flush + 1 s", m.wall.Seconds() <= 1.2*slowest.Seconds()+1))

	// 2. Unavailability window: 100,000 ops of backlog over 1,000 partitions;
	// catch-up drains it while writes flow, then fence and flush the rest.
	const acct2, p2 = "lag-window", 1000
	if _, err := c.Provision(ctx, acct2, p2); err != nil {
		return err
	}
	if err := backlog(ctx, c, acct2, p2, 100_000, nil); err != nil {
		return err
	}
	// Live traffic keeps writing during catch-up, as it would in production.
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: acct2, Rate: 2000, Workers: 16})
	if err := gen.Start(ctx); err != nil {
		return err
	}
	defer gen.Stop()
	m, err = failover(ctx, c, acct2, p2, workflows.FailoverOptions{GroupSize: groupSize})
	if err != nil {
		return err
	}
	st := gen.Stop()
	rep, err := traffic.Audit(ctx, c.Loc, acct2, gen.Acked(), traffic.AuditConfig{})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nloaded: %d partitions, each with a backlog (100,000 ops behind in all at start), under 2,000 writes/s of live traffic, with catch-up:\n", p2)
	fmt.Fprintf(out, "  total %.2f s, catch-up %.2f s, write unavailability %d ms (target <= 1000 ms): %s\n",
		m.wall.Seconds(), float64(m.res.CatchUpMillis)/1000, m.res.UnavailableMillis,
		t.check("loaded 1,000 partitions: write unavailability <= 1 s", m.res.UnavailableMillis <= 1000))
	fmt.Fprintf(out, "  traffic: %d writes acknowledged, longest gap between acknowledgements %s; audit: %d lost\n",
		st.Acks, traffic.LongestGap(gen.Acked()).Round(time.Millisecond), rep.Lost)
	if err := rep.Err(); err != nil {
		return fmt.Errorf("after the backlog failover: %w\n%s", err, rep)
	}
	return nil
}

// backlog writes n ops spread over the account's partitions (plus extra ops
// on chosen partitions) while replication to the secondary is cut, so they
// all wait to be shipped and replayed; then it restores replication.
func backlog(ctx context.Context, c *testsuite.Cluster, account string, partitions, n int, extra map[int]int) error {
	dst, src := c.StampClient(testsuite.StampB), c.StampClient(testsuite.StampA)
	if err := dst.AddFault(ctx, stamp.Fault{Scope: "replication", ErrorRate: 1}); err != nil {
		return fmt.Errorf("cut replication: %w", err)
	}
	perPartition := make([]int, partitions)
	for i := range n {
		perPartition[i%partitions]++
	}
	for p, k := range extra {
		perPartition[p] += k
	}
	// Keys are generated until each partition has its share.
	const batch = 2000
	var ops []stamp.BatchOp
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		if _, err := src.Batch(ctx, account, ops, 0); err != nil {
			return fmt.Errorf("write backlog: %w", err)
		}
		ops = ops[:0]
		return nil
	}
	left := 0
	for _, k := range perPartition {
		left += k
	}
	for i := 0; left > 0; i++ {
		key := fmt.Sprintf("backlog-%d", i)
		p := stamp.PartitionOf(key, partitions)
		if perPartition[p] == 0 {
			continue
		}
		perPartition[p]--
		left--
		ops = append(ops, stamp.BatchOp{Op: stamp.OpPut, Key: key, Value: "v"})
		if len(ops) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := flush(); err != nil {
		return err
	}
	if err := dst.ClearFaults(ctx); err != nil {
		return fmt.Errorf("restore replication: %w", err)
	}
	return nil
}

// printTimeline prints each event of a workflow's history with its offset
// from the first, to see where a failover spends its time.
func printTimeline(ctx context.Context, out io.Writer, c client.Client, id string) error {
	it := c.GetWorkflowHistory(ctx, id, "", false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var t0 time.Time
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return fmt.Errorf("history of %s: %w", id, err)
		}
		t := ev.GetEventTime().AsTime()
		if t0.IsZero() {
			t0 = t
		}
		fmt.Fprintf(out, "    %6d ms  %s\n", t.Sub(t0).Milliseconds(), ev.GetEventType())
	}
	return nil
}
