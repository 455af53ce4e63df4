package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/batonhq/baton/workflows"
)

// Drill writes a drill's report: how it ended, each leg with its time (a
// failover leg's is its RTO), fenced window, lag after a reprotect and the
// canaries read back; a skipped drill says why, a failed one which leg
// failed, where that left the account and what to do.
func Drill(w io.Writer, res workflows.DrillResult) {
	fmt.Fprintln(w, drillHeadline(res))
	by := fmt.Sprintf("requested by %q", res.RequestedBy)
	if res.Schedule != "" {
		by = "started by schedule " + res.Schedule
	}
	fmt.Fprintf(w, "  reason: %q, %s, at %s\n", res.Reason, by, res.StartedAt.UTC().Format(time.RFC3339))
	switch res.Outcome {
	case workflows.OutcomeSkipped:
		fmt.Fprintf(w, "  skipped: %s\n", res.Why)
		return
	case workflows.OutcomeFailed:
		fmt.Fprintf(w, "  failed: %s\n", res.Why)
		if res.Next != "" {
			fmt.Fprintf(w, "  next: %s\n", res.Next)
		}
	}
	if res.Home != "" {
		fmt.Fprintf(w, "  home %s, away %s (%s); replication lag at the start %s (budget %d)\n",
			res.Home, res.Away, plural(res.Partitions, "partition"), plural(int(res.LagOpsAtStart), "op"), res.LagBudgetOps)
	}
	for i, l := range res.Legs {
		fmt.Fprintf(w, "  %d. %s\n", i+1, drillLeg(l))
	}
	if res.Outcome == workflows.OutcomeCompleted && res.CanaryCleanup != "" {
		fmt.Fprintf(w, "  canaries: %s\n", res.CanaryCleanup)
	}
}

func drillHeadline(res workflows.DrillResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "drill of %s: %s", res.Account, res.Outcome)
	switch res.Outcome {
	case workflows.OutcomeCompleted:
		fmt.Fprintf(&b, " in %s: RTO %s, fenced %s, %s written and read back, %d lost",
			FormatDuration(ms(res.TotalMillis)), FormatDuration(ms(res.RTOMillis)), FormatDuration(ms(res.FencedMillis)),
			plural(2*res.Canaries, "canary key"), res.CanariesLost)
	case workflows.OutcomeFailed:
		if res.FailedLeg != "" {
			fmt.Fprintf(&b, " at its %s leg", res.FailedLeg)
		}
		fmt.Fprintf(&b, " after %s", FormatDuration(ms(res.TotalMillis)))
	}
	return b.String()
}

// drillLeg is one leg on one line.
func drillLeg(l workflows.DrillLeg) string {
	var b strings.Builder
	outcome := string(l.Outcome)
	if outcome == "" {
		outcome = "not started"
	}
	switch l.Leg {
	case workflows.PhaseDrillFailover, workflows.PhaseDrillFailback:
		fmt.Fprintf(&b, "%-16s %s -> %s: %s in %s (RTO), fenced %s", l.Leg, l.From, l.To, outcome,
			FormatDuration(ms(l.Millis)), FormatDuration(ms(l.FencedMillis)))
		if l.Canaries > 0 {
			fmt.Fprintf(&b, ", canaries %d read back, %d lost", l.Canaries, len(l.LostCanaries))
		}
	default:
		fmt.Fprintf(&b, "%-16s %s replicates %s: %s in %s, lag at the end %s", l.Leg, l.From, l.To, outcome,
			FormatDuration(ms(l.Millis)), plural(int(l.LagOps), "op"))
		if l.RecoveredOps > 0 {
			fmt.Fprintf(&b, ", %s recovered", plural(int(l.RecoveredOps), "write"))
		}
	}
	if l.WorkflowID != "" {
		fmt.Fprintf(&b, " [%s]", l.WorkflowID)
	}
	if l.Error != "" {
		fmt.Fprintf(&b, "\n     error: %s", l.Error)
	}
	if len(l.LostCanaries) > 0 {
		fmt.Fprintf(&b, "\n     lost canaries: %s", strings.Join(l.LostCanaries[:min(5, len(l.LostCanaries))], ", "))
		if len(l.LostCanaries) > 5 {
			fmt.Fprintf(&b, " and %d more", len(l.LostCanaries)-5)
		}
	}
	return b.String()
}
