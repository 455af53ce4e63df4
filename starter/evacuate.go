package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/workflows"
)

// evacuationFlags are baton evacuate's stamp and flags.
type evacuationFlags struct {
	req                    workflows.EvacuationRequest
	planned, unplanned     bool
	approve, require, wait bool
	rows                   int
	stamp                  string
}

// evacuationNote is what the commands about an evacuation say of the
// grammar.
const evacuationNote = `With --evacuation the argument is a stamp and the command is about that
stamp's evacuation (workflow evacuate-STAMP), as --reprotect makes baton
result about an account's reprotect.`

// newEvacuateCmd builds baton evacuate: it starts the stamp's
// StampEvacuation and, with --wait, prints its report.
func newEvacuateCmd(g *globals) *cobra.Command {
	ef := &evacuationFlags{}
	cmd := &cobra.Command{
		Use:   "evacuate STAMP",
		Short: "Fail every account whose primary is a stamp over to its own secondary, as one durable evacuation",
		Long: `Evacuate a stamp: every account whose primary is STAMP (the location
service's listing) fails over to its own secondary, each as that account's
own failover (workflow failover-ACCOUNT: if one of an account is already
running, the evacuation waits for it instead of starting another). Prints
the workflow ID (evacuate-STAMP, one evacuation per stamp at a time) and its
Web UI link; with --wait, waits and prints the report, and exits non-zero if
any account was left on the stamp (the report is printed all the same).

Admission: at most --max-in-flight accounts fail over at once, and at most
--per-destination to any one destination stamp; lower tiers first (the
account label tier, 0 to 3; no tier comes last), then smaller accounts. A
refused or rolled-back account is tried again after --retry-delay x its
attempts, up to --attempts times, then reported; it never stops the others.

Planned (default) or unplanned (--unplanned: the stamp is down; each
account's unreachable partitions are given up on and the report sums the
accounts' data-loss ledgers). The approval policy applies once to the whole
evacuation: an unplanned one, or one with --require-approval, waits for one
baton approve --evacuation STAMP (or --approve approves it at start).

While it runs: baton watch --evacuation STAMP (progress), baton pause STAMP,
baton resume STAMP, baton limits STAMP --max-in-flight K, baton abort
--evacuation STAMP (no new account starts; those in flight finish or roll
back by their own rules), baton result --evacuation STAMP (the report).`,
		Example: `  baton evacuate stamp-a --reason "rack 7 power work" --wait
  baton evacuate stamp-a --max-in-flight 50 --per-destination 20
  baton evacuate stamp-a --unplanned --approve --reason "stamp-a is down"`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) > 1:
				return usageError{cmd: cmd, err: fmt.Errorf("%d arguments %q where one stamp was expected: %s",
					len(args), strings.Join(args, " "), useLine(cmd))}
			case len(args) == 0:
				return usageError{cmd: cmd, err: fmt.Errorf("no stamp: name the stamp to evacuate, %s", useLine(cmd))}
			}
			ef.stamp = args[0]
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := ef.request(cmd)
			if err != nil {
				return err
			}
			note, err := checkStamp(cmd.Context(), g, req.Stamp)
			if err != nil {
				return err
			}
			return withClient(func(c client.Client) error {
				return startEvacuation(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), c, g, req, note,
					ef.wait, ef.rows)
			})
		},
	}
	ef.register(cmd)
	return cmd
}

// register adds the flags to cmd.
func (ef *evacuationFlags) register(cmd *cobra.Command) {
	req := &ef.req
	f := cmd.Flags()
	f.BoolVar(&ef.planned, "planned", false, "planned (the default): the stamp answers; each account moves with "+
		"zero loss or stays where it is")
	f.BoolVar(&ef.unplanned, "unplanned", false, "the stamp is down: unreachable partitions are given up on "+
		"(may lose unreplicated writes); waits for an approval unless --approve")
	f.IntVar(&req.MaxInFlight, "max-in-flight", workflows.DefaultMaxInFlight,
		"at most this many accounts fail over at once (baton limits changes it while it runs)")
	f.IntVar(&req.PerDestination, "per-destination", 0,
		"at most this many accounts fail over to any one destination stamp at once (0 = no cap)")
	f.IntVar(&req.Attempts, "attempts", workflows.DefaultAttempts,
		"tries per account: a refused or rolled-back account is tried again up to this many times in all")
	f.DurationVar(&req.RetryDelay, "retry-delay", workflows.DefaultRetryDelay,
		"wait before trying an account again, times the attempts so far")
	f.DurationVar(&req.Options.FlushDeadline, "flush-deadline", 0,
		fmt.Sprintf("each account's bound on its fenced window before promote; past it its planned failover "+
			"rolls back (default %s)", workflows.DefaultFlushDeadline))
	f.BoolVar(&ef.require, "require-approval", false,
		"wait for one approval (baton approve --evacuation STAMP) before the first account, even if the policy "+
			"would not")
	f.BoolVar(&ef.approve, "approve", false,
		"approve at start (as --requested-by) an evacuation the policy would hold for approval")
	f.DurationVar(&req.Approval.Timeout, "approval-timeout", workflows.DefaultApprovalTimeout,
		"how long to wait at the approval gate; no decision by then ends the evacuation, nothing touched")
	f.StringVar(&req.Reason, "reason", "manual evacuation", "why, recorded in the evacuation and every account's failover")
	f.StringVar(&req.RequestedBy, "requested-by", currentUser(), "who asks, recorded in the workflow")
	f.BoolVar(&ef.wait, "wait", false, "wait for the evacuation to finish and print its report")
	f.IntVar(&ef.rows, "rows", evacuationRows,
		"accounts to list in the report: all if there are at most this many, else the ones left on the stamp (0 = all)")
}

// evacuationRows is the default of --rows for an evacuation's report.
const evacuationRows = 50

// request checks the flags and makes the evacuation request of them,
// defaulted and validated by the contract.
func (ef *evacuationFlags) request(cmd *cobra.Command) (workflows.EvacuationRequest, error) {
	req := ef.req
	req.Stamp, req.Trigger = ef.stamp, workflows.TriggerManual
	switch {
	case ef.planned && ef.unplanned:
		return req, usageError{cmd: cmd, err: errors.New("--planned and --unplanned: give one of them")}
	case ef.unplanned:
		req.Mode = workflows.ModeUnplanned
	default:
		req.Mode = workflows.ModePlanned
	}
	// A flag given as 0 must not quietly mean its default.
	changed := cmd.Flags().Changed
	switch {
	case req.MaxInFlight == 0:
		return req, fmt.Errorf("--max-in-flight 0: must be at least 1 (leave it out for the default, %d)",
			workflows.DefaultMaxInFlight)
	case req.Attempts == 0:
		return req, fmt.Errorf("--attempts 0: must be at least 1 (leave it out for the default, %d)",
			workflows.DefaultAttempts)
	case req.RetryDelay == 0:
		return req, fmt.Errorf("--retry-delay 0s: must be positive (leave it out for the default, %s)",
			workflows.DefaultRetryDelay)
	case req.Approval.Timeout <= 0:
		return req, fmt.Errorf("--approval-timeout %s: must be positive", req.Approval.Timeout)
	case changed("flush-deadline") && req.Options.FlushDeadline <= 0:
		return req, fmt.Errorf("--flush-deadline %s: must be positive (leave it out for the default, %s)",
			req.Options.FlushDeadline, workflows.DefaultFlushDeadline)
	}
	req.Approval.Required = ef.require
	if ef.approve {
		req.Approval.PreApproved = &workflows.Decision{By: req.RequestedBy, Reason: "approved at start: " + req.Reason}
	}
	req = req.WithDefaults()
	if err := req.Validate(); err != nil {
		return req, inEvacuationFlags(err)
	}
	return req, nil
}

// evacuationFlagOf names the evacuation request's fields as baton
// evacuate's flags.
var evacuationFlagOf = map[string]string{
	workflows.FieldStamp: "STAMP", workflows.FieldMaxInFlight: "--max-in-flight",
	workflows.FieldPerDestination: "--per-destination", workflows.FieldAttempts: "--attempts",
	workflows.FieldRetryDelay: "--retry-delay", workflows.FieldFlushDeadline: "--flush-deadline",
	workflows.FieldApprovalTimeout: "--approval-timeout",
}

// inEvacuationFlags says an evacuation request (or a change of limits)
// the contract refuses in the words of baton's flags.
func inEvacuationFlags(err error) error {
	var fe *workflows.FieldError
	if errors.As(err, &fe) {
		if flag, ok := evacuationFlagOf[fe.Field]; ok {
			return errors.New(fe.In(flag))
		}
	}
	return err
}

// checkStamp refuses a stamp the location service does not know: an
// evacuation of a mistyped name would complete at once, having moved
// nothing. A location service that does not answer is not a refusal (the
// workers may reach it when this host cannot): note says so, to print once
// the evacuation started.
func checkStamp(ctx context.Context, g *globals, name string) (note string, err error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	loc, err := g.loc()
	if err != nil {
		return fmt.Sprintf("note: could not check that %s is a registered stamp: %v", name, err), nil
	}
	stamps, err := loc.Stamps(ctx)
	if err != nil {
		return fmt.Sprintf("note: could not check that %s is a registered stamp (location service at %s: %v)",
			name, loc.Base(), err), nil
	}
	if slices.ContainsFunc(stamps, func(s location.Stamp) bool { return s.Name == name }) {
		return "", nil
	}
	return "", fmt.Errorf("no stamp %q is registered with the location service at %s (it knows %s): check the name",
		name, loc.Base(), orPlaceholder(stampNames(stamps), "none"))
}

// startEvacuation starts the evacuation of req and prints its workflow ID
// and Web UI link (and note, if any, on errw); with wait, it waits and
// prints the report.
func startEvacuation(ctx context.Context, out, errw io.Writer, c client.Client, g *globals,
	req workflows.EvacuationRequest, note string, wait bool, rows int) error {
	run, err := launch.Evacuation(ctx, c, g.taskQueue, req)
	if err != nil {
		return err
	}
	ui := uiLink(g.ui, run.GetID(), run.GetRunID())
	if !g.json() {
		fmt.Fprintf(out, "evacuation started: workflow %s run %s\n", run.GetID(), run.GetRunID())
		fmt.Fprintf(out, "web UI: %s\n", ui)
	}
	if note != "" {
		fmt.Fprintln(errw, note)
	}
	if !wait {
		if g.json() {
			return printJSON(out, map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID(), "ui": ui})
		}
		return nil
	}
	return evacuationReport(ctx, out, g, run, req.Stamp, rows)
}

// evacuationReport waits for an evacuation and prints its report; its
// error, if it did not complete, carries the stamp for the next step.
func evacuationReport(ctx context.Context, out io.Writer, g *globals, run client.WorkflowRun, stamp string,
	rows int) error {
	err := waitAndReport(ctx, out, g, run, "evacuation", func(w io.Writer, res workflows.EvacuationResult) {
		report.Evacuation(w, res, rows)
	})
	if err != nil {
		return evacuationError{stamp: stamp, err: err}
	}
	return nil
}

// evacuationID is the workflow ID of the evacuation a command names: the
// stamp's (or the workflow ID itself), and the stamp.
func evacuationID(arg string) (id, stamp string) {
	id = workflowID(arg, workflows.EvacuationWorkflowID)
	return id, strings.TrimPrefix(id, workflows.EvacuationWorkflowID(""))
}

// evacuationThen is what happens after a decision on an evacuation, for
// the text output.
func evacuationThen(update, stamp string) string {
	switch update {
	case workflows.UpdateApprove:
		return fmt.Sprintf("the evacuation starts its accounts (baton watch --evacuation %s)", stamp)
	case workflows.UpdateReject:
		return "the evacuation ends; nothing was touched"
	case workflows.UpdateAbort:
		return fmt.Sprintf("no new account starts; those in flight finish or roll back by their own rules "+
			"(baton watch --evacuation %s)", stamp)
	case workflows.UpdatePause:
		return fmt.Sprintf("no new account starts until baton resume %s; those in flight go on", stamp)
	case workflows.UpdateResume:
		return "accounts start again"
	}
	return ""
}

// controlShort is the one-line help of pause and resume.
var controlShort = map[string]string{
	workflows.UpdatePause:  "Pause a stamp's evacuation: no new account starts; those in flight go on",
	workflows.UpdateResume: "Resume a paused evacuation: accounts start again",
}

// newControlCmd builds pause and resume: each sends the same-named update
// to a stamp's running evacuation.
func newControlCmd(g *globals, update string) *cobra.Command {
	var d workflows.Decision
	short := controlShort[update]
	long := short + `.

The workflow records who and why (the report lists every pause and resume).
A pause that lasts longer than the evacuation's maximum (24h) ends it as
aborted. The same control can be sent from the Temporal Web UI as a signal
named "` + update + `" with the JSON {"By": "...", "Reason": "..."}.

` + update + ` applies to evacuations only: its argument is the stamp (or the
workflow ID, evacuate-STAMP); --evacuation, which the commands about an
account or an evacuation take, may be given and changes nothing.`
	cmd := &cobra.Command{
		Use:     update + " STAMP --reason WHY",
		Short:   short,
		Long:    long,
		Example: fmt.Sprintf("  baton %s stamp-a --reason \"destination stamp-b is hot\"", update),
	}
	stamp := addStampArg(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		id, name := evacuationID(stamp.value)
		return evacuationControl(sendDecision(cmd, g, id, update, d, evacuationThen(update, name)), name)
	}
	addDecisionFlags(cmd, &d)
	return cmd
}

// evacuationControl carries the stamp in a control's error, for the next
// step.
func evacuationControl(err error, stamp string) error {
	if err == nil {
		return nil
	}
	return evacuationError{stamp: stamp, err: err}
}

// newLimitsCmd builds baton limits: a change of an evacuation's admission
// while it runs.
func newLimitsCmd(g *globals) *cobra.Command {
	var l workflows.EvacuationLimits
	var perDest int
	cmd := &cobra.Command{
		Use:   "limits STAMP --max-in-flight K [--per-destination N]",
		Short: "Change how many accounts a stamp's evacuation fails over at once, while it runs",
		Long: `Change a running evacuation's admission: at most --max-in-flight accounts at
once, and at most --per-destination to any one destination stamp (0 removes
that cap). Give one or both; the other stays. The next account to start
follows the new limits; accounts already in flight go on (lowering K starts
none until fewer than K run). The change is recorded in the report.

limits applies to evacuations only: its argument is the stamp (or the
workflow ID, evacuate-STAMP); --evacuation may be given and changes nothing.`,
		Example: "  baton limits stamp-a --max-in-flight 50\n  baton limits stamp-a --per-destination 0",
	}
	stamp := addStampArg(cmd)
	f := cmd.Flags()
	f.IntVar(&l.MaxInFlight, "max-in-flight", 0, "at most this many accounts fail over at once")
	f.IntVar(&perDest, "per-destination", 0,
		"at most this many accounts fail over to any one destination stamp at once (0 removes the cap)")
	f.StringVar(&l.By, "by", currentUser(), "who changes them, recorded in the workflow")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		changed := cmd.Flags().Changed
		switch {
		case !changed("max-in-flight") && !changed("per-destination"):
			return usageError{cmd: cmd, err: errors.New("nothing to change: give --max-in-flight, --per-destination or both")}
		case changed("max-in-flight") && l.MaxInFlight == 0:
			return errors.New("--max-in-flight 0: must be at least 1 (baton pause stops new accounts)")
		case l.By == "":
			return errors.New("--by is empty: say who you are")
		}
		if changed("per-destination") {
			l.PerDestination = &perDest
		}
		if err := l.Validate(); err != nil {
			return inEvacuationFlags(err)
		}
		id, name := evacuationID(stamp.value)
		return evacuationControl(setLimits(cmd, g, id, l), name)
	}
	return cmd
}

// setLimits sends the limits update and says what the evacuation answered.
func setLimits(cmd *cobra.Command, g *globals, id string, l workflows.EvacuationLimits) error {
	var p workflows.EvacuationProgress
	err := withClient(func(c client.Client) error {
		h, err := c.UpdateWorkflow(cmd.Context(), client.UpdateWorkflowOptions{
			WorkflowID:   id,
			UpdateName:   workflows.UpdateLimits,
			Args:         []any{l},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(cmd.Context(), &p)
		}
		if err != nil {
			return fmt.Errorf("%s %s refused: %w", workflows.UpdateLimits, id, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if g.json() {
		return printJSON(out, map[string]any{
			"workflow_id":     id,
			"update":          workflows.UpdateLimits,
			"by":              l.By,
			"result":          "accepted",
			"max_in_flight":   p.MaxInFlight,
			"per_destination": p.PerDestination,
			"running":         p.Running,
		})
	}
	fmt.Fprintf(out, "limits of %s accepted (by %s): %s; %d running now\n", id, l.By, admission(p), p.Running)
	return nil
}

// admission is "at most 20 in flight, 5 per destination".
func admission(p workflows.EvacuationProgress) string {
	s := fmt.Sprintf("at most %d in flight", p.MaxInFlight)
	if p.PerDestination > 0 {
		s += fmt.Sprintf(", %d per destination", p.PerDestination)
	}
	return s
}

// evacuationLine is baton watch's line for an evacuation: phase, elapsed,
// accounts by where they stand, by tier, the slowest running. key is the
// line without its times (a non-terminal prints a line when key changes).
func evacuationLine(p workflows.EvacuationProgress, now time.Time) (line, key string) {
	var b, times strings.Builder
	fmt.Fprintf(&b, "%-12s", p.Phase)
	if slices.Contains([]workflows.Phase{workflows.PhaseDone, workflows.PhaseIncomplete, workflows.PhaseAborted,
		workflows.PhaseRejected, workflows.PhaseFailed}, p.Phase) && !p.PhaseAt.IsZero() {
		now = p.PhaseAt // it ended then
	}
	fmt.Fprintf(&times, " %6.1fs", now.Sub(p.StartedAt).Seconds())
	head := b.String()
	b.Reset()
	switch {
	case p.Phase == workflows.PhaseApproval:
		fmt.Fprintf(&b, "  waiting for approval (baton approve|reject --evacuation %s)", p.Stamp)
		return head + times.String() + b.String(), head + b.String()
	case p.Abort != nil:
		fmt.Fprintf(&b, "  ABORTED by %s (%s): no new account starts", p.Abort.By, p.Abort.Reason)
	case p.Paused != nil:
		fmt.Fprintf(&b, "  PAUSED by %s (%s): baton resume %s", p.Paused.By, p.Paused.Reason, p.Stamp)
	}
	total := max(p.OnStamp, p.Done+p.Running+p.Waiting+p.Retrying+p.Failed)
	fmt.Fprintf(&b, "  done %s %d/%d  running %d  waiting %d  retrying %d  failed %d  (%s)",
		bar(p.Done, total, 10), p.Done, total, p.Running, p.Waiting, p.Retrying, p.Failed, admission(p))
	var tiers []string
	for _, t := range p.Tiers {
		n := report.Counts(report.Count{N: t.Done, What: "done"}, report.Count{N: t.Running, What: "running"},
			report.Count{N: t.Waiting, What: "retrying"}, report.Count{N: t.Failed, What: "failed"})
		if len(n) > 0 {
			tiers = append(tiers, tierName(t.Tier)+" "+strings.Join(n, " "))
		}
	}
	if len(tiers) > 0 {
		fmt.Fprintf(&b, "  by tier: %s", strings.Join(tiers, ", "))
	}
	stable := b.String()
	var slow, slowKey []string
	for _, a := range p.SlowestRunning[:min(3, len(p.SlowestRunning))] {
		slow = append(slow, fmt.Sprintf("%s %s", a.Account, report.FormatDuration(time.Duration(a.Millis)*time.Millisecond)))
		slowKey = append(slowKey, a.Account)
	}
	line, key = head+times.String()+stable, head+stable
	if len(slow) > 0 {
		line += "  slowest running: " + strings.Join(slow, ", ")
		key += "  slowest running: " + strings.Join(slowKey, ", ")
	}
	return line, key
}

// tierName is "t0".."t3", or "no-tier".
func tierName(t int) string {
	if t >= activities.NoTier {
		return "no-tier"
	}
	return fmt.Sprintf("t%d", t)
}

// evacuationError is the error of a command about a stamp's evacuation:
// the stamp, for the next step.
type evacuationError struct {
	stamp string
	err   error
}

func (e evacuationError) Error() string { return e.err.Error() }
func (e evacuationError) Unwrap() error { return e.err }

// evacuationNext is the next step after a command about an evacuation
// failed ("" when the kind of failure says nothing of the evacuation).
func evacuationNext(err error, stamp string) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		typ := ae.Type()
		if res, ok := workflows.EvacuationOutcomeOf(err); ok && res.Stamp != "" {
			stamp = res.Stamp
		}
		switch typ {
		case workflows.ErrTypeEvacuationIncomplete:
			return fmt.Sprintf("the report names the accounts left on %s and why; fix the causes, then "+
				"`baton evacuate %s` again: it takes only the accounts still on the stamp", stamp, stamp)
		case workflows.ErrTypeEvacuationAborted:
			return fmt.Sprintf("the accounts moved stay moved; those not started are still on %s: "+
				"`baton evacuate %s` takes them", stamp, stamp)
		case workflows.ErrTypeRejected, workflows.ErrTypeTimedOut:
			return fmt.Sprintf("nothing was touched; if the evacuation is still wanted, start it again: "+
				"`baton evacuate %s`", stamp)
		case workflows.ErrTypeRefused:
			return fmt.Sprintf("nothing was touched: fix the request, then `baton evacuate %s` again", stamp)
		case workflows.ErrTypeFailed:
			return fmt.Sprintf("the accounts moved stay moved: fix the cause, then `baton evacuate %s` again "+
				"takes the rest", stamp)
		}
	}
	var nf *serviceerror.NotFound
	switch {
	case errors.As(err, &nf) && strings.Contains(nf.Message, "already completed"):
		return fmt.Sprintf("the evacuation has already ended: `baton result --evacuation %s` shows how", stamp)
	case errors.As(err, &nf):
		return fmt.Sprintf("no evacuation of %s (yet): `baton evacuate %s` starts one", stamp, stamp)
	}
	return ""
}
