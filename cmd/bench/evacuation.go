package main

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"go.temporal.io/api/enums/v1"
	"golang.org/x/sync/errgroup"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// Targets of the evacuation scenarios.
const (
	evac1000x16Target = 30 * time.Second
	evac10000x1Target = 180 * time.Second
	evacHistoryTarget = 10_000
	evacWindowTarget  = time.Second
	// loopAccounts is how many accounts the shell-loop shape fails over
	// (its rate is measured on them and applied to the scenario's count).
	loopAccounts = 100
	loopParallel = 20
)

// evacuationScenario is one stamp evacuation of the bench.
type evacuationScenario struct {
	name       string
	accounts   int
	partitions int
	target     time.Duration
	// loaded: every account has a replication backlog and live traffic.
	loaded bool
	// loop: also time the shell-loop shape on loopAccounts accounts.
	loop bool
	// timeline: print the event timeline of the median account's failover.
	timeline bool
	// maxInFlight is K (0 = the workflow's default).
	maxInFlight int
}

// evacuationOptions are the bench flags the evacuation scenarios follow.
type evacuationOptions struct {
	// only names the scenarios to run (1000x16, 10000x1, 200x64).
	only        []string
	durable     bool
	scale       float64
	timeline    bool
	maxInFlight int
}

// evacuationScenarios runs each evacuation on a cluster of its own.
func evacuationScenarios(ctx context.Context, out io.Writer, dir string, o evacuationOptions, t *targets) error {
	scenarios := []evacuationScenario{
		{name: "evac-1000x16", accounts: 1000, partitions: 16, target: evac1000x16Target, loop: true},
		{name: "evac-10000x1", accounts: 10000, partitions: 1, target: evac10000x1Target},
		{name: "evac-200x64", accounts: 200, partitions: 64, loaded: true},
	}
	scenarios = slices.DeleteFunc(scenarios, func(s evacuationScenario) bool {
		return !slices.Contains(o.only, strings.TrimPrefix(s.name, "evac-"))
	})
	if len(scenarios) == 0 {
		return fmt.Errorf("--evacuations %s: no such scenario: name 1000x16, 10000x1 or 200x64", strings.Join(o.only, ","))
	}
	k := o.maxInFlight
	if k == 0 {
		k = workflows.DefaultMaxInFlight
	}
	fmt.Fprintf(out, "\nStamp evacuation (StampEvacuation, K = %d in flight, all to stamp-b):\n", k)
	for _, s := range scenarios {
		s.accounts = max(1, int(float64(s.accounts)*o.scale))
		s.timeline, s.maxInFlight = o.timeline, o.maxInFlight
		if err := s.run(ctx, out, filepath.Join(dir, s.name), o.durable, t); err != nil {
			return fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return nil
}

func (s evacuationScenario) run(ctx context.Context, out io.Writer, dir string, durable bool, t *targets) error {
	c, err := testsuite.Start(ctx, testsuite.Options{Dir: dir, Durable: durable, Progress: io.Discard,
		ReplicationDelay: 20 * time.Millisecond})
	if err != nil {
		return err
	}
	defer c.Close()
	names := make([]string, s.accounts)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%05d", s.name, i)
	}
	t0 := time.Now()
	if err := provisionAll(ctx, c, names, s.partitions); err != nil {
		return err
	}
	fmt.Fprintf(out, "\n%d accounts x %d partitions (provisioned in %.1f s)", s.accounts, s.partitions, time.Since(t0).Seconds())
	var gens []*traffic.Generator
	if s.loaded {
		fmt.Fprintf(out, ", each with a replication backlog (2,000 ops) and under live traffic (20 writes/s each):\n")
		if gens, err = loadAll(ctx, c, names, s.partitions); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(out, ", nothing pending:\n")
	}
	before := cpuOf(c)
	res, wall, err := evacuate(ctx, c, s.maxInFlight)
	if err != nil {
		return err
	}
	cpu := cpuOf(c).perAccount(before, res.Table.Len(), wall)
	events, err := largestEvacuationHistory(ctx, c, res.Runs)
	if err != nil {
		return err
	}
	rate := float64(res.Table.Len()) / wall.Seconds()
	fmt.Fprintf(out, "  evacuation: %.2f s, %.1f accounts/s, %d runs (largest history %d events), slowest account %.2f s, "+
		"longest write-unavailability window %d ms, outcomes %v\n",
		wall.Seconds(), rate, res.Runs, events, slowestSeconds(res), res.MaxUnavailableMillis, res.ByOutcome)
	fmt.Fprintf(out, "  where the time goes: %s;\n    %s\n", whereTimeGoes(res), cpu)
	if err := printWorstWindow(ctx, out, c, res); err != nil {
		return err
	}
	if s.timeline {
		median := medianAccount(res)
		fmt.Fprintf(out, "  the median account's failover (%s):\n", median)
		if err := printTimeline(ctx, out, c.Client, workflows.FailoverWorkflowID(median)); err != nil {
			return err
		}
	}
	if s.target > 0 && s.accounts == fullSize(s) {
		fmt.Fprintf(out, "  target %s: %s\n", s.target, t.check(fmt.Sprintf("evacuation of %d x %d <= %s", s.accounts,
			s.partitions, s.target), wall <= s.target))
	}
	if s.partitions == 1 {
		fmt.Fprintf(out, "  history target < %d events: %s\n", evacHistoryTarget,
			t.check("evacuation history < 10,000 events", events < evacHistoryTarget))
	}
	if moved := countOutcome(res, workflows.OutcomeCompleted); moved != s.accounts {
		return fmt.Errorf("only %d of %d accounts moved: %v", moved, s.accounts, res.ByOutcome)
	}
	if s.loaded {
		if err := auditAll(ctx, out, c, gens, res, t); err != nil {
			return err
		}
	}
	if s.loop {
		if err := s.shellLoop(ctx, out, c, rate); err != nil {
			return err
		}
		return ceiling(ctx, out, c)
	}
	return nil
}

// ceiling measures what the Temporal server here does with workflows that
// do nothing: the most accounts per second any design with a workflow per
// account could reach on it.
func ceiling(ctx context.Context, out io.Writer, c *testsuite.Cluster) error {
	const n = 1000
	rate, perWorkflow, err := emptyWorkflowCeiling(ctx, c, n, loopParallel)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "  the ceiling: %d empty workflows (start, one workflow task, complete; %d at a time, worker in the "+
		"bench's process) ran at %.1f/s on this Temporal server, %.1f ms of its CPU each\n",
		n, loopParallel, rate, float64(perWorkflow.Microseconds())/1000)
	return nil
}

// fullSize is the scenario's account count as the issue states it (the
// target applies at that size only).
func fullSize(s evacuationScenario) int {
	switch s.name {
	case "evac-1000x16":
		return 1000
	case "evac-10000x1":
		return 10000
	}
	return s.accounts
}

// provisionAll provisions the accounts (tiers 0..3 by turn) 16 at a time.
func provisionAll(ctx context.Context, c *testsuite.Cluster, names []string, partitions int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, name := range names {
		g.Go(func() error {
			if _, err := c.Provision(ctx, name, partitions); err != nil {
				return err
			}
			_, err := c.Loc.SetLabels(ctx, name, map[string]string{location.LabelTier: fmt.Sprint(i % 4)})
			return err
		})
	}
	return g.Wait()
}

// loadAll gives every account a backlog and starts its live traffic.
func loadAll(ctx context.Context, c *testsuite.Cluster, names []string, partitions int) ([]*traffic.Generator, error) {
	for _, name := range names {
		if err := backlog(ctx, c, name, partitions, 2000, nil); err != nil {
			return nil, err
		}
	}
	gens := make([]*traffic.Generator, len(names))
	for i, name := range names {
		gens[i] = traffic.New(traffic.Config{Location: c.Loc, Account: name, Rate: 20, Workers: 2})
		if err := gens[i].Start(ctx); err != nil {
			return nil, err
		}
	}
	return gens, nil
}

// evacuate runs the stamp-a evacuation and waits for its report.
func evacuate(ctx context.Context, c *testsuite.Cluster, k int) (workflows.EvacuationResult, time.Duration, error) {
	var res workflows.EvacuationResult
	t0 := time.Now()
	run, err := launch.Evacuation(ctx, c.Client, workflows.TaskQueue, workflows.EvacuationRequest{
		Stamp: testsuite.StampA, Reason: "bench", RequestedBy: "bench", MaxInFlight: k})
	if err != nil {
		return res, 0, err
	}
	if err := run.Get(ctx, &res); err != nil {
		return res, 0, fmt.Errorf("evacuation: %w", err)
	}
	return res, time.Since(t0), nil
}

// largestEvacuationHistory is the longest history among the evacuation's
// runs (each run continues as new).
func largestEvacuationHistory(ctx context.Context, c *testsuite.Cluster, runs int) (int, error) {
	id := workflows.EvacuationWorkflowID(testsuite.StampA)
	largest := 0
	desc, err := c.Client.DescribeWorkflowExecution(ctx, id, "")
	if err != nil {
		return 0, err
	}
	runID := desc.GetWorkflowExecutionInfo().GetExecution().GetRunId()
	// Walk back through the chain of runs from the last.
	for range runs {
		n, first, err := historyLength(ctx, c, id, runID)
		if err != nil {
			return 0, err
		}
		largest = max(largest, n)
		if first == "" {
			break
		}
		runID = first
	}
	return largest, nil
}

func slowestSeconds(res workflows.EvacuationResult) float64 {
	if len(res.Slowest) == 0 {
		return 0
	}
	return float64(res.Slowest[0].Millis) / 1000
}

func countOutcome(res workflows.EvacuationResult, o workflows.Outcome) int {
	for _, c := range res.ByOutcome {
		if c.Outcome == o {
			return c.Accounts
		}
	}
	return 0
}

// whereTimeGoes sums the accounts' own time and write-unavailability
// windows against the evacuation's wall time and K.
func whereTimeGoes(res workflows.EvacuationResult) string {
	var own, unavailable int64
	for i := range res.Table.Len() {
		own += res.Table.Millis[i]
		unavailable += res.Table.UnavailableMillis[i]
	}
	n := max(1, int64(res.Table.Len()))
	ms := slices.Clone(res.Table.Millis)
	slices.Sort(ms)
	return fmt.Sprintf("an account's failover takes %d ms on average (median %d ms), of which %d ms fenced; "+
		"%d in flight cover %.0f%% of the wall time with failovers",
		own/n, ms[len(ms)/2], unavailable/n, res.MaxInFlight,
		100*float64(own)/float64(int64(res.MaxInFlight)*max(1, res.TotalMillis)))
}

// auditAll stops the traffic and audits every account: 0 lost, and every
// account's window within the target.
func auditAll(ctx context.Context, out io.Writer, c *testsuite.Cluster, gens []*traffic.Generator,
	res workflows.EvacuationResult, t *targets) error {
	var acks, lost int
	for _, g := range gens {
		g.Stop()
	}
	for _, g := range gens {
		a := g.Acked()
		rep, err := traffic.Audit(ctx, c.Loc, a[0].Account, a, traffic.AuditConfig{})
		if err != nil {
			return err
		}
		acks += len(a)
		lost += rep.Lost
	}
	fmt.Fprintf(out, "  traffic: %d writes acknowledged over %d accounts; audit of every account: %d lost\n",
		acks, len(gens), lost)
	fmt.Fprintf(out, "  every account's write-unavailability window <= %s (longest %d ms): %s\n", evacWindowTarget,
		res.MaxUnavailableMillis, t.check("loaded evacuation: every account's window <= 1 s",
			res.MaxUnavailableMillis <= evacWindowTarget.Milliseconds()))
	if lost > 0 {
		return fmt.Errorf("%d acknowledged writes lost", lost)
	}
	return nil
}

// shellLoop is the shape of an evacuation without Baton's: one `baton
// failover --wait` process per account, loopParallel at a time, on
// loopAccounts fresh accounts; its rate is set beside the evacuation's.
func (s evacuationScenario) shellLoop(ctx context.Context, out io.Writer, c *testsuite.Cluster, evacRate float64) error {
	names := make([]string, loopAccounts)
	for i := range names {
		names[i] = fmt.Sprintf("loop-%05d", i)
	}
	if err := provisionAll(ctx, c, names, s.partitions); err != nil {
		return err
	}
	t0 := time.Now()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(loopParallel)
	var mu sync.Mutex
	var failed []string
	for _, name := range names {
		g.Go(func() error {
			cmd := exec.CommandContext(gctx, c.Bin.Baton, "failover", name, "--to", testsuite.StampB, "--wait",
				"--reason", "shell loop", "--output", "json")
			cmd.Env = append(cmd.Environ(), c.CLIEnv()...)
			if b, err := cmd.CombinedOutput(); err != nil {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("%s: %v: %s", name, err, b))
				mu.Unlock()
			}
			return nil
		})
	}
	_ = g.Wait()
	wall := time.Since(t0)
	if len(failed) > 0 {
		return fmt.Errorf("shell loop: %d failovers failed; first: %s", len(failed), failed[0])
	}
	rate := float64(loopAccounts) / wall.Seconds()
	full := fullSize(s)
	fmt.Fprintf(out, "  the shell-loop shape (one `baton failover --wait` per account, %d at a time) on %d accounts: "+
		"%.2f s, %.1f accounts/s, so %d accounts would take %.0f s; the evacuation went %.1fx faster\n",
		loopParallel, loopAccounts, wall.Seconds(), rate, full, float64(full)/rate, evacRate/rate)
	return nil
}

// historyLength counts the events of one run and returns the run it
// continued from ("" for the first).
func historyLength(ctx context.Context, c *testsuite.Cluster, id, runID string) (int, string, error) {
	it := c.Client.GetWorkflowHistory(ctx, id, runID, false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n, prev := 0, ""
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return 0, "", fmt.Errorf("history of %s run %s: %w", id, runID, err)
		}
		if n == 0 {
			prev = ev.GetWorkflowExecutionStartedEventAttributes().GetContinuedExecutionRunId()
		}
		n++
	}
	return n, prev, nil
}

// medianAccount is the account whose failover took the median time.
func medianAccount(res workflows.EvacuationResult) string {
	rows := make([]int, res.Table.Len())
	for i := range rows {
		rows[i] = i
	}
	slices.SortFunc(rows, func(a, b int) int { return int(res.Table.Millis[a] - res.Table.Millis[b]) })
	return res.Table.Account[rows[len(rows)/2]]
}

// printWorstWindow breaks down the longest write-unavailability window of
// the evacuation by phase, from that account's failover report.
func printWorstWindow(ctx context.Context, out io.Writer, c *testsuite.Cluster, res workflows.EvacuationResult) error {
	worst := -1
	for i := range res.Table.Len() {
		if worst < 0 || res.Table.UnavailableMillis[i] > res.Table.UnavailableMillis[worst] {
			worst = i
		}
	}
	if worst < 0 {
		return nil
	}
	account := res.Table.Account[worst]
	var fr workflows.FailoverResult
	if err := c.Client.GetWorkflow(ctx, workflows.FailoverWorkflowID(account), "").Get(ctx, &fr); err != nil {
		return fmt.Errorf("report of %s: %w", account, err)
	}
	var parts []string
	for _, w := range fr.Window {
		parts = append(parts, fmt.Sprintf("%s %d ms (%d waiting)", w.Phase, w.Millis, w.WaitMillis))
	}
	fmt.Fprintf(out, "    the longest window, %s's %d ms (%d ops behind at the fence): %s\n", account,
		fr.UnavailableMillis, fr.LagAtFenceOps, strings.Join(parts, ", "))
	return nil
}
