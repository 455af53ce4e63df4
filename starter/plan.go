package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/planner"
	"github.com/batonhq/baton/workflows"
)

// planFlags are the flags that load and shape a plan.
type planFlags struct {
	set         []string
	strategy    string
	sourceSlots int
	targetSlots int
	width       int
}

func (pf *planFlags) register(cmd *cobra.Command, shaping bool) {
	f := cmd.Flags()
	f.StringArrayVar(&pf.set, "set", nil,
		"NAME=VALUE for ${NAME} in the plan (repeatable; the environment is used too)")
	if !shaping {
		return
	}
	f.StringVar(&pf.strategy, "strategy", "", "override the plan's strategy: overlap, sequential or barrier")
	f.IntVar(&pf.sourceSlots, "source-slots", 0,
		"override the plan's limit of offline steps at once on the source (0 = no limit)")
	f.IntVar(&pf.targetSlots, "target-slots", 0,
		"override the plan's limit of online steps at once on the target (0 = no limit)")
	f.IntVar(&pf.width, "width", 64, "width of the Gantt chart, in columns")
}

// load reads, expands, overrides and compiles the plan at path.
func (pf *planFlags) load(cmd *cobra.Command, path string) (planner.Plan, *planner.Graph, error) {
	vars := map[string]string{}
	for _, kv := range pf.set {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return planner.Plan{}, nil, fmt.Errorf("--set %q: write NAME=VALUE", kv)
		}
		vars[k] = v
	}
	lookup := func(k string) (string, bool) {
		if v, ok := vars[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	}
	p, err := planner.ParseFile(path, lookup)
	if err != nil {
		return p, nil, err
	}
	f := cmd.Flags()
	if f.Lookup("strategy") != nil {
		if f.Changed("strategy") {
			p.Strategy = planner.Strategy(pf.strategy)
		}
		if f.Changed("source-slots") {
			p.Concurrency.Source = pf.sourceSlots
		}
		if f.Changed("target-slots") {
			p.Concurrency.Target = pf.targetSlots
		}
		if pf.width < 20 {
			return p, nil, fmt.Errorf("--width %d: give at least 20 columns", pf.width)
		}
	}
	g, err := planner.Compile(p)
	if err != nil {
		return p, nil, fmt.Errorf("plan %s: %w", path, err)
	}
	return p, g, nil
}

func newPlanCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Validate, simulate and run dependency-aware application failover plans",
		Long: `An application failover plan lists an application's components, what each
depends on, and how to take each offline on the source and online on the
target (see docs/PLANS.md). Baton runs every step the moment the
dependencies allow: a component goes offline once everything that depends on
it is offline, and comes online on the target once it is offline on the
source and everything it depends on is online on the target. Independent
components overlap, so the failover takes the critical path of the graph.`,
	}
	cmd.AddCommand(newPlanValidateCmd(g), newPlanSimulateCmd(g), newPlanRunCmd(g), newPlanStatusCmd(g),
		newPlanAbortCmd(g))
	return cmd
}

func newPlanValidateCmd(g *globals) *cobra.Command {
	return planFileCmd(&cobra.Command{
		Use:   "validate FILE",
		Short: "Check a plan: names, dependencies (unknown, cycles), actions",
		Long: `Check a plan file (YAML or JSON) without running anything: unique names,
known dependencies, no cycles, an offline and an online action for every
component, well-formed actions. Prints warnings for things that work but are
probably unintended (no restore action, no expected duration). Exits non-zero
on an invalid plan.`,
		Example: "  baton plan validate examples/plans/patent.yaml",
	}, false, func(cmd *cobra.Command, _ *planFlags, p planner.Plan, gr *planner.Graph) error {
		warnings := planner.Lint(p)
		out := cmd.OutOrStdout()
		if g.json() {
			return printJSON(out, map[string]any{
				"plan":       p.Name,
				"valid":      true,
				"components": len(p.Components),
				"steps":      len(gr.Steps()),
				"warnings":   warnings,
			})
		}
		fmt.Fprintf(out, "plan %s is valid: %d components, %d steps\n", p.Name, len(p.Components), len(gr.Steps()))
		for _, w := range warnings {
			fmt.Fprintf(out, "warning: %s\n", w)
		}
		return nil
	})
}

// planFileCmd completes cmd as a plan subcommand about one plan FILE: it
// loads and compiles the plan (with the flags that shape it if shaping)
// and hands it to do.
func planFileCmd(cmd *cobra.Command, shaping bool,
	do func(cmd *cobra.Command, pf *planFlags, p planner.Plan, gr *planner.Graph) error) *cobra.Command {
	pf := &planFlags{}
	cmd.Args = oneArg
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		p, gr, err := pf.load(cmd, args[0])
		if err != nil {
			return err
		}
		return do(cmd, pf, p, gr)
	}
	pf.register(cmd, shaping)
	return cmd
}

// simulation is what plan simulate prints with --output json.
type simulation struct {
	Plan               string
	Strategy           planner.Strategy
	Concurrency        planner.Concurrency
	Steps              []simulatedStep
	CriticalPath       []string
	CriticalPathMillis int64
	PredictedMillis    int64
	OverlapMillis      int64
	SequentialMillis   int64
	BarrierMillis      int64
}

type simulatedStep struct {
	Step        string
	StartMillis int64
	EndMillis   int64
}

func newPlanSimulateCmd(g *globals) *cobra.Command {
	return planFileCmd(&cobra.Command{
		Use:   "simulate FILE",
		Short: "Print a plan's predicted schedule, critical path and baselines",
		Long: `Simulate a plan over its actions' expected durations, with exactly the rules
the AppFailover workflow follows: prints the schedule as a text Gantt chart,
the critical path, and the predicted time against the two baselines of
today's DR tools: fully sequential (everything offline, then everything
online) and barrier groups (dependency levels one group at a time).`,
		Example: "  baton plan simulate examples/plans/patent.yaml\n" +
			"  baton plan simulate examples/plans/patent.yaml --source-slots 1 --target-slots 1",
	}, true, func(cmd *cobra.Command, pf *planFlags, p planner.Plan, gr *planner.Graph) error {
		pr, err := gr.Predict()
		if err != nil {
			return fmt.Errorf("simulate %s: %w", p.Name, err)
		}
		if g.json() {
			return printJSON(cmd.OutOrStdout(), toSimulation(gr, pr))
		}
		report.AppPlan(cmd.OutOrStdout(), gr, pr, pf.width)
		return nil
	})
}

func toSimulation(gr *planner.Graph, pr planner.Prediction) simulation {
	s := simulation{
		Plan:               gr.Plan().Name,
		Strategy:           gr.Strategy(),
		Concurrency:        gr.Concurrency(),
		CriticalPathMillis: pr.CriticalPathTime.Milliseconds(),
		PredictedMillis:    pr.Schedule.Makespan.Milliseconds(),
		OverlapMillis:      pr.Overlap.Milliseconds(),
		SequentialMillis:   pr.Sequential.Milliseconds(),
		BarrierMillis:      pr.Barrier.Milliseconds(),
	}
	for _, sl := range pr.Schedule.Slots {
		s.Steps = append(s.Steps, simulatedStep{
			Step:        sl.Step.String(),
			StartMillis: sl.Start.Milliseconds(),
			EndMillis:   sl.End.Milliseconds(),
		})
	}
	for _, st := range pr.CriticalPath {
		s.CriticalPath = append(s.CriticalPath, st.String())
	}
	return s
}

func newPlanRunCmd(g *globals) *cobra.Command {
	var (
		req  workflows.AppFailoverRequest
		wait bool
	)
	cmd := planFileCmd(&cobra.Command{
		Use:   "run FILE",
		Short: "Fail an application over by its plan",
		Long: `Start the AppFailover workflow for a plan. Prints the workflow ID and its Web
UI link; with --wait, waits and prints the report (measured time against the
prediction and the baselines, the executed Gantt chart, every step).

Only one failover of a plan runs at a time (the workflow ID is
app-failover-<plan name>). Until the first online step starts it can be
aborted (baton plan abort): its running offline steps are cancelled and the
components taken offline come back online on the source by their restore
actions.`,
		Example: `  baton plan run examples/plans/patent.yaml --wait
  STAMP_A_URL=http://127.0.0.1:7201 baton plan run examples/plans/shop.yaml --set ACCOUNT=acct-1`,
	}, true, func(cmd *cobra.Command, pf *planFlags, p planner.Plan, _ *planner.Graph) error {
		req.Plan = p
		return withClient(func(c client.Client) error {
			return startAppFailover(cmd.Context(), cmd.OutOrStdout(), c, g, req, wait, pf.width)
		})
	})
	f := cmd.Flags()
	f.StringVar(&req.Reason, "reason", "application failover", "why, recorded in the workflow")
	f.StringVar(&req.RequestedBy, "requested-by", currentUser(), "who asks, recorded in the workflow")
	f.BoolVar(&wait, "wait", false, "wait for the failover to finish and print its report")
	return cmd
}

// startAppFailover starts the failover of req.Plan and prints its workflow
// ID and Web UI link; with wait, it waits and prints the report, its Gantt
// chart width columns wide.
func startAppFailover(ctx context.Context, out io.Writer, c client.Client, g *globals, req workflows.AppFailoverRequest,
	wait bool, width int) error {
	run, err := launch.AppFailover(ctx, c, g.taskQueue, req)
	if err != nil {
		return err
	}
	if !g.json() {
		fmt.Fprintf(out, "application failover started: workflow %s run %s\n", run.GetID(), run.GetRunID())
		fmt.Fprintf(out, "web UI: %s\n", uiLink(g.ui, run.GetID(), run.GetRunID()))
	}
	if !wait {
		if g.json() {
			return printJSON(out, map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID()})
		}
		return nil
	}
	return waitAndReport(ctx, out, g, run, "application failover",
		func(w io.Writer, res workflows.AppFailoverResult) { report.AppFailover(w, res, width) })
}

func newPlanStatusCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:     "status PLAN|WORKFLOW-ID",
		Short:   "Show the progress of a plan's latest failover, step by step",
		Example: "  baton plan status shop",
		Args:    oneArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withClient(func(c client.Client) error {
				ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
				defer cancel()
				id := workflowID(args[0], workflows.AppFailoverWorkflowID)
				return printAppProgress(ctx, cmd.OutOrStdout(), c, g, id)
			})
		},
	}
}

// printAppProgress asks application failover id for its progress and
// prints it.
func printAppProgress(ctx context.Context, out io.Writer, c client.Client, g *globals, id string) error {
	v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryProgress)
	if err != nil {
		return fmt.Errorf("progress of %s: %w", id, err)
	}
	var p workflows.AppProgress
	if err := v.Get(&p); err != nil {
		return fmt.Errorf("progress of %s: %w", id, err)
	}
	if g.json() {
		return printJSON(out, p)
	}
	report.AppProgress(out, p, time.Now())
	return nil
}

func newPlanAbortCmd(g *globals) *cobra.Command {
	var d workflows.Decision
	cmd := &cobra.Command{
		Use:   "abort PLAN|WORKFLOW-ID --reason WHY",
		Short: "Abort an application failover before its first online step",
		Long: `Abort an application failover. Refused once an online step has started (the
point of no return). Running offline steps are cancelled (not left to
finish) and no new step starts; every component taken offline, or being
taken offline, is brought back online on the source by its restore action,
dependencies first (a component whose plan gives no restore action stays
offline). The same decision can be sent from the Temporal Web UI as a signal
named "abort" with the JSON {"By": "...", "Reason": "..."}.`,
		Example: `  baton plan abort shop --reason "drill over"`,
		Args:    oneArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			id := workflowID(args[0], workflows.AppFailoverWorkflowID)
			return sendDecision(cmd, g, id, workflows.UpdateAbort, d,
				"components taken offline are being restored on the source")
		},
	}
	addDecisionFlags(cmd, &d)
	return cmd
}
