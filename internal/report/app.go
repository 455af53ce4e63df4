package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/batonhq/baton/planner"
	"github.com/batonhq/baton/workflows"
)

// ms is a duration in milliseconds.
func ms(v int64) time.Duration { return time.Duration(v) * time.Millisecond }

// versus compares a baseline with the overlapped time ("2.10x, 1m30s more").
func versus(baseline, overlap time.Duration) string {
	if overlap <= 0 {
		return ""
	}
	return fmt.Sprintf("%.2fx the overlapped schedule (%s more)",
		float64(baseline)/float64(overlap), FormatDuration(baseline-overlap))
}

func limits(c planner.Concurrency) string {
	f := func(n int) string {
		if n == 0 {
			return "no limit"
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("source %s, target %s", f(c.Source), f(c.Target))
}

// AppPlan writes a plan's simulation: the Gantt chart of the predicted
// schedule, the critical path, and the predicted time against the
// sequential and barrier baselines.
func AppPlan(w io.Writer, g *planner.Graph, pr planner.Prediction, width int) {
	p := g.Plan()
	fmt.Fprintf(w, "plan %s: %d components, %d steps; strategy %s; concurrency: %s\n\n",
		p.Name, len(p.Components), len(g.Steps()), g.Strategy(), limits(g.Concurrency()))
	gantt(w, bars(pr.Schedule.Slots), width)
	steps := make([]string, len(pr.CriticalPath))
	for i, s := range pr.CriticalPath {
		steps[i] = s.String()
	}
	fmt.Fprintf(w, "\ncritical path (%s): %s\n\n",
		FormatDuration(pr.CriticalPathTime), strings.Join(steps, " -> "))
	line := func(label string, d time.Duration, note string) {
		fmt.Fprintln(w, strings.TrimRight(fmt.Sprintf("%-24s %9s  %s", label, FormatDuration(d), note), " "))
	}
	line(fmt.Sprintf("predicted (%s):", g.Strategy()), pr.Schedule.Makespan, "")
	if g.Strategy() != planner.StrategyOverlap {
		line("overlap (this planner):", pr.Overlap, "")
	}
	line("sequential baseline:", pr.Sequential, versus(pr.Sequential, pr.Overlap))
	line("barrier-group baseline:", pr.Barrier, versus(pr.Barrier, pr.Overlap))
}

// AppFailover writes an application failover's report: outcome, measured
// time against the prediction and the baselines, the executed Gantt chart
// and every step's result.
func AppFailover(w io.Writer, res workflows.AppFailoverResult, width int) {
	fmt.Fprintf(w, "application failover %s: %s in %s (strategy %s; concurrency: %s)\n",
		res.Plan, strings.ToUpper(res.Outcome), FormatDuration(ms(res.TotalMillis)),
		res.Strategy, limits(res.Concurrency))
	if res.Abort != nil {
		fmt.Fprintf(w, "  aborted by %s: %s\n", res.Abort.By, res.Abort.Reason)
	}
	fmt.Fprintf(w, "  measured %s; predicted %s; critical path %s; sequential baseline %s; barrier baseline %s\n\n",
		FormatDuration(ms(res.TotalMillis)), FormatDuration(ms(res.PredictedMillis)),
		FormatDuration(ms(res.CriticalPathMillis)), FormatDuration(ms(res.SequentialMillis)),
		FormatDuration(ms(res.BarrierMillis)))
	if executed := bars(res.Slots()); len(executed) > 0 {
		gantt(w, executed, width)
		fmt.Fprintln(w)
	}
	for _, s := range res.Steps {
		line := fmt.Sprintf("  %-8s %-22s %-8s %8s  %s",
			s.Phase, s.Component, s.Status, FormatDuration(ms(s.Millis)), s.Action)
		if s.Output != "" {
			line += "  -> " + s.Output
		}
		if s.Error != "" {
			line += "  ERROR: " + s.Error
		}
		fmt.Fprintln(w, line)
	}
	for _, r := range res.Refusals {
		fmt.Fprintf(w, "  refused: %s\n", r)
	}
}

// AppProgress writes one line per step of a running application failover.
func AppProgress(w io.Writer, p workflows.AppProgress, now time.Time) {
	fmt.Fprintf(w, "application failover %s: %s, %d of %d steps done, running %s, predicted %s\n",
		p.Plan, p.Phase, p.Done, p.Total, FormatDuration(now.Sub(p.StartedAt)), FormatDuration(ms(p.PredictedMillis)))
	for _, s := range p.Steps {
		fmt.Fprintf(w, "  %-8s %-22s %-8s %s\n", s.Phase, s.Component, s.Status, s.Action)
	}
}
