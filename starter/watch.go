package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batonhq/baton/workflows"
)

func newWatchCmd(g *globals) *cobra.Command {
	var (
		rows    int
		every   time.Duration
		account *accountArg
	)
	cmd := &cobra.Command{
		Use:   "watch ACCOUNT",
		Short: "Show a failover's (or an evacuation's) live progress, then its report",
		Long: `Polls the failover's progress query and shows, per step, how many partitions
are through it (fence, flush-send, flush-replay, promote), the phase and the
elapsed time; when the failover ends, prints its report (with --output json,
only the report).

` + workflowIDNote + `

` + evacuationNote + ` It shows the accounts done, running,
waiting, retrying and failed, by tier (t0..t3, no-tier), the admission
limits, a pause or abort, and the slowest accounts running; then the report.`,
		Example: "  baton watch acct-1\n  baton watch --evacuation stamp-a",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if every <= 0 {
				return fmt.Errorf("--every %s: must be positive", every)
			}
			if account.evacuation && !cmd.Flags().Changed("rows") {
				rows = evacuationRows
			}
			return withClient(func(c client.Client) error {
				ctx, out := cmd.Context(), cmd.OutOrStdout()
				if account.evacuation {
					id, stamp := evacuationID(account.value)
					if err := watch(ctx, out, c, id, every, !g.json(), evacuationProgressLine); err != nil {
						return evacuationError{stamp: stamp, err: err}
					}
					return evacuationReport(ctx, out, g, c.GetWorkflow(ctx, id, ""), stamp, rows)
				}
				id := workflowID(account.value, workflows.FailoverWorkflowID)
				if err := watch(ctx, out, c, id, every, !g.json(), failoverProgressLine); err != nil {
					return err
				}
				return waitAndReport(ctx, out, g, c.GetWorkflow(ctx, id, ""), "failover", failoverReport(rows))
			})
		},
	}
	account = addAccountArg(cmd, "account whose failover to watch", false)
	account.addEvacuationFlag(cmd, "watch the stamp's evacuation")
	cmd.Flags().IntVar(&rows, "rows", 20, fmt.Sprintf(
		"partitions to list in the report, slowest first (0 = all); with --evacuation, accounts (default %d)",
		evacuationRows))
	cmd.Flags().DurationVar(&every, "every", 500*time.Millisecond, "how often to refresh")
	return cmd
}

// progressRenderer renders a progress query's answer as a line, and its
// key: the line without what changes at every poll (elapsed times).
type progressRenderer func(v converter.EncodedValue, now time.Time) (line, key string, ok bool)

// failoverProgressLine renders an account failover's progress.
func failoverProgressLine(v converter.EncodedValue, now time.Time) (string, string, bool) {
	var p workflows.Progress
	if v.Get(&p) != nil {
		return "", "", false
	}
	line := progressLine(p, now)
	return line, stripElapsed(line), true
}

// evacuationProgressLine renders a stamp evacuation's progress.
func evacuationProgressLine(v converter.EncodedValue, now time.Time) (string, string, bool) {
	var p workflows.EvacuationProgress
	if v.Get(&p) != nil {
		return "", "", false
	}
	line, key := evacuationLine(p, now)
	return line, key, true
}

// watch renders progress until the workflow closes. On a terminal it
// redraws one line; otherwise it prints a line whenever progress changes.
func watch(ctx context.Context, out io.Writer, c client.Client, id string, every time.Duration, show bool,
	render progressRenderer) error {
	tty := isTerminal(out)
	lastKey := ""
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		desc, err := c.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			return fmt.Errorf("describe %s: %w", id, err)
		}
		running := desc.GetWorkflowExecutionInfo().GetStatus() == enums.WORKFLOW_EXECUTION_STATUS_RUNNING
		if show {
			if v, err := c.QueryWorkflow(ctx, id, "", workflows.QueryProgress); err == nil {
				if line, key, ok := render(v, time.Now()); ok {
					switch {
					case tty:
						fmt.Fprintf(out, "\r\033[K%s", line)
					case key != lastKey:
						fmt.Fprintln(out, line)
					}
					lastKey = key
				}
			}
		}
		if !running {
			if show && tty {
				fmt.Fprintln(out)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// progressLine is one line: phase, elapsed, and a bar per step.
func progressLine(p workflows.Progress, now time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-18s %6.1fs", p.Phase, now.Sub(p.StartedAt).Seconds())
	if p.AwaitingApproval {
		fmt.Fprintf(&b, "  waiting for approval: %s (baton approve|reject)", p.ApprovalReason)
		return b.String()
	}
	steps := []string{workflows.StepFence, workflows.StepFlushSend, workflows.StepFlushReplay, workflows.StepPromote}
	for _, step := range steps {
		fmt.Fprintf(&b, "  %s %s %d/%d", step, bar(p.Done[step], p.Partitions, 10), p.Done[step], p.Partitions)
	}
	if p.GivenUp > 0 {
		fmt.Fprintf(&b, "  given up: %d", p.GivenUp)
	}
	return b.String()
}

func bar(done, total, width int) string {
	if total <= 0 {
		return "[" + strings.Repeat("-", width) + "]"
	}
	n := min(width, done*width/total)
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

// stripElapsed drops the elapsed time, so that a non-terminal prints a line
// only when something else changed.
func stripElapsed(line string) string {
	if len(line) < 26 {
		return line
	}
	return line[:18] + line[26:]
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
