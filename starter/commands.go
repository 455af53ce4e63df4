package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/cli"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/internal/readiness"
	"github.com/batonhq/baton/internal/readiness/probe"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/internal/temporalclient"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/workflows"
)

// globals are the flags every command shares.
type globals struct {
	location  string
	security  auth.ClientSecurity
	client    *location.Client // made by loc, once
	stderr    io.Writer
	ui        string
	taskQueue string
	timeout   time.Duration
	output    string
	verbose   bool
}

// json reports whether results are wanted as JSON (--output json).
func (g *globals) json() bool { return g.output == "json" }

func (g *globals) validate(stderr io.Writer) error {
	if g.output != "text" && g.output != "json" {
		return fmt.Errorf("--output %q: use text or json", g.output)
	}
	g.stderr = stderr
	return nil
}

// loc is a client of the location service (over TLS with the client
// certificate, given --certs-dir); its HTTP client serves for the stamps.
//
// Only the commands that call the location service or the stamps need a
// certificate (or --insecure): the others talk to Temporal alone.
func (g *globals) loc() (*location.Client, error) {
	if g.client == nil {
		cfg, err := g.security.Config(g.location, cli.Warner("baton", g.stderr))
		if err != nil {
			return nil, err
		}
		g.client = location.NewTLSClient(g.location, cfg)
	}
	return g.client, nil
}

// printJSON writes v as indented JSON.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newRootWithGlobals builds the command tree and returns the flags every
// command shares, which main reads to print an error.
func newRootWithGlobals() (*cobra.Command, *globals) {
	g := &globals{}
	root := &cobra.Command{
		Use:   "baton",
		Short: "Fail storage accounts over between stamps, as durable Temporal workflows",
		Long: `baton starts and follows Baton failovers.

Temporal connection settings come from the environment: TEMPORAL_ADDRESS
(default localhost:7233), TEMPORAL_NAMESPACE (default "default"),
TEMPORAL_TLS_*, TEMPORAL_API_KEY or a temporal.toml profile.

Every command about one account takes the account as its argument:
baton failover|status|result|watch|approve|reject|abort|list|reprotect|recovered|drill ACCOUNT
(--account ACCOUNT is accepted too).

baton evacuate STAMP fails every account whose primary is the stamp over to
its own secondary, as one durable evacuation. The commands about an account
take --evacuation to be about a stamp's evacuation instead, the argument then
being the stamp: baton watch|result|approve|reject|abort --evacuation STAMP;
baton pause|resume|limits STAMP apply to evacuations only. baton maintenance
shows and sets the maintenance switches.

After a failover the account is unprotected until baton reprotect ACCOUNT
makes the old primary its replica; then failing back is a planned failover.
baton status ACCOUNT says whether the account is ready to fail over now.

A command that fails prints one line: the cause and what to do next. -v
adds the whole error chain; with --output json the failure is a JSON object
on stderr whose "chain" field holds it.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: func(c *cobra.Command, _ []string) error { return g.validate(c.ErrOrStderr()) },
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.location, "location", envOr("BATON_LOCATION", location.DefaultURL),
		"location service base URL (env BATON_LOCATION)")
	g.security.Flags(pf, "operator", "control and admin")
	pf.StringVar(&g.ui, "ui", envOr("TEMPORAL_UI", "http://localhost:8233"),
		"Temporal Web UI base URL, for links (env TEMPORAL_UI)")
	pf.StringVar(&g.taskQueue, "task-queue", workflows.TaskQueue, "Temporal task queue of Baton's workers")
	pf.DurationVar(&g.timeout, "timeout", 30*time.Second,
		"how long status and plan status wait for their answers (the other commands are not bounded by it)")
	pf.StringVarP(&g.output, "output", "o", "text", "output format: text or json")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "on failure, print the whole error chain too, not only the cause")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{cmd: c, err: err} })
	root.AddCommand(newFailoverCmd(g), newStatusCmd(g), newResultCmd(g), newWatchCmd(g), newListCmd(g),
		newDecisionCmd(g, workflows.UpdateApprove), newDecisionCmd(g, workflows.UpdateReject),
		newDecisionCmd(g, workflows.UpdateAbort))
	root.AddCommand(newReprotectCmd(g), newRecoveredCmd(g))
	root.AddCommand(newWebhookCmd(g))
	root.AddCommand(newPlanCmd(g))
	root.AddCommand(newDrillCmd(g))
	root.AddCommand(newEvacuateCmd(g), newControlCmd(g, workflows.UpdatePause), newControlCmd(g, workflows.UpdateResume),
		newLimitsCmd(g), newMaintenanceCmd(g))
	return root, g
}

// failoverFlags are baton failover's account and flags: the request's
// own fields and those that shape it.
type failoverFlags struct {
	req                    workflows.FailoverRequest
	account                *accountArg
	mode                   string
	wait, approve, require bool
	rows                   int
}

// newFailoverCmd builds baton failover; its flags are failoverFlags.
func newFailoverCmd(g *globals) *cobra.Command {
	ff := &failoverFlags{}
	cmd := &cobra.Command{
		Use:   "failover ACCOUNT --to STAMP",
		Short: "Fail an account over to its secondary stamp (planned, unless --mode unplanned)",
		Long: `Start a failover: precheck, approval (if the policy asks), catch up
replication, fence the source, flush-send and flush-replay every partition,
then promote the destination and point the account at it. Prints the
workflow ID and its Web UI link. With --wait, waits and prints the report;
with --dry-run, runs the precheck only and prints the plan.

Planned (default): the source must answer; zero data loss or refusal.
Unplanned (--mode unplanned): for a source that is down or partly down;
unreachable partitions are given up on and the report carries the data-loss
ledger.

The failover waits at its approval gate for baton approve (or baton reject)
when it is unplanned, when --require-approval is given, or when the
precheck's estimated loss exceeds --loss-budget; --approve approves it at
start. No decision within --approval-timeout ends it, nothing touched.

The fenced window before promote (fence, flush-send, flush-replay, counted
from the fence) is bounded by the flush deadline (--flush-deadline, default
` + workflows.DefaultFlushDeadline.String() + `): past it a planned failover rolls back and the source takes
writes again.

Only one failover per account runs at a time (the workflow ID is derived from
the account); until promote starts, baton abort stops it (and unfences the
source if it was fenced).`,
		Example: `  baton failover acct-1 --to stamp-b --reason "stamp-a maintenance" --wait
  baton failover acct-1 --to stamp-b --dry-run
  baton failover acct-1 --to stamp-b --flush-deadline 90s --wait
  baton failover acct-1 --to stamp-b --mode unplanned --approve --reason "stamp-a down"`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := ff.request(cmd)
			if err != nil {
				return err
			}
			return withClient(func(c client.Client) error {
				return startFailover(cmd.Context(), cmd.OutOrStdout(), c, g, req, ff.wait, ff.rows)
			})
		},
	}
	ff.account = addAccountArg(cmd, "account to fail over", false)
	ff.register(cmd)
	return cmd
}

// register adds the flags to cmd.
func (ff *failoverFlags) register(cmd *cobra.Command) {
	req := &ff.req
	f := cmd.Flags()
	f.StringVar(&req.ToStamp, "to", "", "stamp to fail over to: the account's secondary (required)")
	f.StringVar(&req.FromStamp, "from", "",
		"expected current primary; refused if it is not (default: accept the current one)")
	f.StringVar(&req.Reason, "reason", "manual failover", "why, recorded in the workflow")
	f.StringVar(&req.RequestedBy, "requested-by", currentUser(), "who asks, recorded in the workflow")
	f.IntVar(&req.Options.GroupSize, "group-size", 0,
		fmt.Sprintf("partitions per child workflow (default 250, raised to keep at most %d children)",
			workflows.MaxChildren))
	f.StringVar(&ff.mode, "mode", string(workflows.ModePlanned),
		"planned (source reachable, zero loss) or unplanned (source down: may lose unreplicated writes)")
	f.BoolVar(&req.DryRun, "dry-run", false, "run the precheck only and print the plan; nothing is touched")
	f.BoolVar(&ff.approve, "approve", false,
		"approve at start (as --requested-by) a failover the policy would hold for approval")
	f.BoolVar(&ff.require, "require-approval", false,
		"wait for an approval (baton approve) even if the policy would not")
	f.DurationVar(&req.Approval.Timeout, "approval-timeout", workflows.DefaultApprovalTimeout,
		"how long to wait at the approval gate; no decision by then ends the failover, nothing touched")
	f.Uint64Var(&req.Approval.LossBudgetOps, "loss-budget", 0,
		"ask for approval when the estimated loss exceeds this many ops (0 = no budget)")
	f.DurationVar(&req.Options.FlushDeadline, "flush-deadline", 0,
		fmt.Sprintf("bound on the fenced window before promote; past it a planned failover rolls back (default %s)",
			workflows.DefaultFlushDeadline))
	f.BoolVar(&ff.wait, "wait", false, "wait for the failover to finish and print its report")
	f.IntVar(&ff.rows, "rows", 20, "partitions to list in the report, slowest first (0 = all)")
}

// request checks the flags and makes the failover request of them,
// defaulted and validated by the contract.
func (ff *failoverFlags) request(cmd *cobra.Command) (workflows.FailoverRequest, error) {
	req := ff.req
	req.Account, req.Mode = ff.account.value, workflows.Mode(ff.mode)
	if req.ToStamp == "" {
		return req, usageError{cmd: cmd,
			err: errors.New("no destination: name the stamp to fail over to, baton failover ACCOUNT --to STAMP")}
	}
	// A flag given as 0 must not quietly mean the default.
	if req.Approval.Timeout <= 0 {
		return req, fmt.Errorf("--approval-timeout %s: must be positive", req.Approval.Timeout)
	}
	if cmd.Flags().Changed("flush-deadline") && req.Options.FlushDeadline <= 0 {
		return req, fmt.Errorf("--flush-deadline %s: must be positive (leave it out for the default, %s)",
			req.Options.FlushDeadline, workflows.DefaultFlushDeadline)
	}
	req.Trigger, req.Approval.Required = workflows.TriggerManual, ff.require
	if ff.approve {
		req.Approval.PreApproved = &workflows.Decision{By: req.RequestedBy, Reason: "approved at start: " + req.Reason}
	}
	req = req.WithDefaults()
	if err := req.Validate(); err != nil {
		return req, inFlags(err)
	}
	return req, nil
}

// startFailover starts the failover of req (or its dry run) and prints its
// workflow ID and Web UI link; with wait, it waits and prints the report.
func startFailover(ctx context.Context, out io.Writer, c client.Client, g *globals, req workflows.FailoverRequest,
	wait bool, rows int) error {
	if req.DryRun {
		return dryRun(ctx, out, c, g, req)
	}
	run, err := launch.Failover(ctx, c, g.taskQueue, req)
	if err != nil {
		return err
	}
	ui := uiLink(g.ui, run.GetID(), run.GetRunID())
	if !g.json() {
		fmt.Fprintf(out, "failover started: workflow %s run %s\n", run.GetID(), run.GetRunID())
		fmt.Fprintf(out, "web UI: %s\n", ui)
	}
	if !wait {
		if g.json() {
			return printJSON(out, map[string]string{
				"workflow_id": run.GetID(),
				"run_id":      run.GetRunID(),
				"ui":          ui,
			})
		}
		return nil
	}
	if err := waitAndReport(ctx, out, g, run, "failover", failoverReport(rows)); err != nil {
		return requestError{account: req.Account, to: req.ToStamp, err: err}
	}
	return nil
}

// flagOf names the failover request's fields as baton's flags.
var flagOf = map[string]string{
	workflows.FieldTo: "--to", workflows.FieldFrom: "--from", workflows.FieldMode: "--mode",
	workflows.FieldGroupSize: "--group-size", workflows.FieldApprovalTimeout: "--approval-timeout",
	workflows.FieldFlushDeadline: "--flush-deadline", workflows.FieldAccount: "ACCOUNT",
}

// inFlags says a request the contract refuses in the words of baton's
// flags.
func inFlags(err error) error {
	var fe *workflows.FieldError
	if errors.As(err, &fe) {
		if flag, ok := flagOf[fe.Field]; ok {
			return errors.New(fe.In(flag))
		}
	}
	return err
}

func newStatusCmd(g *globals) *cobra.Command {
	var (
		account *accountArg
		budget  readiness.Budget
	)
	cmd := &cobra.Command{
		Use:   "status ACCOUNT",
		Short: "Show where an account's primary is, its replication lag, and whether it is ready to fail over",
		Long: `Show where an account is (primary, secondary, epoch), what its primary holds,
and whether it is ready to fail over now, and why not. Ready means all of:

- protected: no reprotect pending (after a failover the account is
  unprotected until baton reprotect ACCOUNT);
- secondary healthy: the secondary answers healthy and holds every
  partition as the replica at the account's epoch;
- replication flowing: every primary partition answers, is not fenced,
  ships, and, if it has unacknowledged writes, was acknowledged within 30s;
- lag within budget: unacknowledged + unreplayed ops <= --max-lag;
- estimated RPO within budget: no partition with unacknowledged writes has
  gone longer than --max-rpo without an acknowledgement.

It also shows the maintenance switches that apply to the account's stamps
(the global one, the primary's and the secondary's) that are on.

A status is printed (exit 0) whatever the verdict; only an account the
location service does not know, or cannot be asked about, is an error. The
worker exports the same verdict as the gauge baton_account_ready.`,
		Example: "  baton status acct-1\n  baton status acct-1 --max-lag 500 --max-rpo 2s --output json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			loc, err := g.loc()
			if err != nil {
				return err
			}
			return printStatus(ctx, cmd.OutOrStdout(), g, loc, account.value, budget)
		},
	}
	account = addAccountArg(cmd, "account to show", false)
	cmd.Flags().Uint64Var(&budget.MaxLagOps, "max-lag", 0,
		"ready only if at most this many ops are unacknowledged or unreplayed (default max(1000, 2 x partitions))")
	cmd.Flags().DurationVar(&budget.MaxRPO, "max-rpo", readiness.DefaultMaxRPO,
		"ready only if no partition with unacknowledged writes has gone longer without an acknowledgement")
	return cmd
}

func printStatus(ctx context.Context, w io.Writer, g *globals, loc *location.Client, account string,
	budget readiness.Budget) error {
	in, v, err := probe.Check(ctx, loc, account, budget, loc.HTTPClient())
	if location.IsNotFound(err) {
		return fmt.Errorf("account %s is not known to the location service at %s: check the name", account, loc.Base())
	}
	if err != nil {
		return fmt.Errorf("look up %s: %w", account, err)
	}
	a := in.Account
	m, merr := loc.Maintenance(ctx)
	switches := maintenanceOf(m, a.Primary, a.Secondary)
	var written, unacked uint64
	fenced := 0
	for _, p := range in.Primary.Partitions {
		written += p.LastWritten
		unacked += p.SendLag()
		if p.Fenced {
			fenced++
		}
	}
	if g.json() {
		held := map[string]location.Switch{}
		for _, h := range switches {
			held[h.Scope()] = h.Switch
		}
		out := map[string]any{"location": a, "readiness": v, "maintenance": held}
		if merr != nil {
			out["maintenance_error"] = merr.Error()
		}
		if in.PrimaryErr != nil {
			out["primary_error"] = in.PrimaryErr.Error()
		} else {
			out["written"], out["unacknowledged"] = written, unacked
			out["fenced_partitions"], out["partitions"] = fenced, len(in.Primary.Partitions)
		}
		return printJSON(w, out)
	}
	fmt.Fprintf(w, "account %s: primary %s (%s) at epoch %d, secondary %s (%s), %d partitions\n",
		a.Account, a.Primary, a.PrimaryURL, a.Epoch, a.Secondary, a.SecondaryURL, a.Partitions)
	if in.PrimaryErr != nil {
		fmt.Fprintf(w, "  on %s: no answer: %v\n", a.Primary, in.PrimaryErr)
	} else {
		fmt.Fprintf(w, "  on %s: %d writes, %d not yet acknowledged by the secondary, %d of %d partitions fenced\n",
			a.Primary, written, unacked, fenced, len(in.Primary.Partitions))
	}
	if merr != nil {
		fmt.Fprintf(w, "  maintenance: unknown (the location service did not say: %v)\n", merr)
	} else {
		printMaintenanceOf(w, switches, a.Primary, a.Secondary)
	}
	printVerdict(w, v)
	return nil
}

// printVerdict writes whether the account is ready to fail over, one line
// per check.
func printVerdict(w io.Writer, v readiness.Verdict) {
	if v.Ready {
		fmt.Fprintln(w, "  ready to fail over: yes")
	} else {
		fmt.Fprintln(w, "  ready to fail over: NO")
	}
	for _, c := range v.Checks {
		mark := "ok"
		if !c.OK {
			mark = "NO"
		}
		fmt.Fprintf(w, "    %-2s  %s: %s\n", mark, c.Name, c.Detail)
	}
}

func newResultCmd(g *globals) *cobra.Command {
	var (
		rows      int
		reprotect bool
		account   *accountArg
	)
	cmd := &cobra.Command{
		Use: "result ACCOUNT",
		Short: "Wait for an account's latest failover (or, with --reprotect, reprotect; with --evacuation, " +
			"a stamp's evacuation) and print its report",
		Long: "Wait for an account's latest failover and print its report; with --reprotect, its latest\n" +
			"reprotect's.\n\n" + workflowIDNote + "\nA reprotect's workflow ID (reprotect-ACCOUNT) is taken too, without --reprotect.\n\n" +
			evacuationNote + " The report lists every account if there are at most --rows\n(default " +
			fmt.Sprint(evacuationRows) + "), else the accounts left on the stamp and a count of the rest. An evacuation's\n" +
			"workflow ID (evacuate-STAMP) is taken too, without --evacuation. It exits non-zero if the\n" +
			"evacuation left accounts on the stamp.",
		Example: "  baton result acct-1\n  baton result acct-1 --output json\n  baton result acct-1 --reprotect\n" +
			"  baton result --evacuation stamp-a\n  baton result --evacuation stamp-a --rows 0",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if reprotect && account.evacuation {
				return usageError{cmd: cmd, err: errors.New("--reprotect and --evacuation: give one of them")}
			}
			return withClient(func(c client.Client) error {
				ctx := cmd.Context()
				if account.evacuation || workflowID(account.value, workflows.EvacuationWorkflowID) == account.value {
					if !cmd.Flags().Changed("rows") {
						rows = evacuationRows
					}
					id, stamp := evacuationID(account.value)
					return evacuationReport(ctx, cmd.OutOrStdout(), g, c.GetWorkflow(ctx, id, ""), stamp, rows)
				}
				if reprotect || workflowID(account.value, workflows.ReprotectWorkflowID) == account.value {
					run := c.GetWorkflow(ctx, workflowID(account.value, workflows.ReprotectWorkflowID), "")
					return waitAndReport(ctx, cmd.OutOrStdout(), g, run, "reprotect", report.Reprotect)
				}
				run := c.GetWorkflow(ctx, workflowID(account.value, workflows.FailoverWorkflowID), "")
				return waitAndReport(ctx, cmd.OutOrStdout(), g, run, "failover", failoverReport(rows))
			})
		},
	}
	account = addAccountArg(cmd, "account whose failover to report", false)
	account.addEvacuationFlag(cmd, "the stamp's latest evacuation")
	cmd.Flags().IntVar(&rows, "rows", 20, fmt.Sprintf(
		"partitions to list, slowest first (0 = all); with --evacuation, accounts (default %d)", evacuationRows))
	cmd.Flags().BoolVar(&reprotect, "reprotect", false, "the account's latest reprotect, not its failover")
	return cmd
}

// workflowIDNote is the help of the commands that also take a workflow ID.
const workflowIDNote = "ACCOUNT may also be a failover's workflow ID (failover-ACCOUNT, as baton list shows it)."

// workflowID is the workflow ID a command's argument names: arg itself if
// it is one already, else idOf(arg), the ID derived from an account
// (workflows.FailoverWorkflowID) or a plan (workflows.AppFailoverWorkflowID).
// idOf("") is the prefix of the IDs it derives.
func workflowID(arg string, idOf func(name string) string) string {
	if strings.HasPrefix(arg, idOf("")) {
		return arg
	}
	return idOf(arg)
}

// waitAndReport waits for a failover (what names its kind) and prints its
// report, as text (printText) or JSON, also for one that did not complete:
// Baton's workflows carry their result in the error's details.
func waitAndReport[R any](ctx context.Context, out io.Writer, g *globals, run client.WorkflowRun, what string,
	printText func(io.Writer, R)) error {
	var res R
	ended, err := waitResult(ctx, run, &res)
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, run.GetID(), err)
	}
	if g.json() {
		if err := printJSON(out, res); err != nil {
			return err
		}
	} else {
		printText(out, res)
	}
	// The error's message names the account (or plan) and says what
	// happened (and baton prints its root cause): no wrapping here.
	return ended
}

// failoverReport prints an account failover's report with at most rows
// partitions (0: all).
func failoverReport(rows int) func(io.Writer, workflows.FailoverResult) {
	return func(w io.Writer, res workflows.FailoverResult) { report.Failover(w, res, rows) }
}

// waitResult waits for run and decodes its result into res, also from a
// run that failed: Baton's failovers carry their result in the error's
// details. ended is the run's error; err is set when there is no result to
// show.
func waitResult(ctx context.Context, run client.WorkflowRun, res any) (ended, err error) {
	ended = run.Get(ctx, res)
	if ended == nil {
		return nil, nil
	}
	var ae *temporal.ApplicationError
	if !errors.As(ended, &ae) || !ae.HasDetails() || ae.Details(res) != nil {
		return ended, ended
	}
	return ended, nil
}

// dryRun runs the precheck in a throw-away workflow (the worker has the
// network access) and prints the plan.
func dryRun(ctx context.Context, out io.Writer, c client.Client, g *globals, req workflows.FailoverRequest) error {
	opts := launch.FailoverOptions(g.taskQueue, req)
	opts.ID = workflows.FailoverWorkflowID(req.Account) + "-dry-run-" + uuid.NewString()[:8]
	opts.StaticSummary = "dry run: " + opts.StaticSummary
	run, err := c.ExecuteWorkflow(ctx, opts, workflows.AccountFailover, req)
	if err != nil {
		return fmt.Errorf("start dry run for %s: %w", req.Account, err)
	}
	var res workflows.FailoverResult
	if err := run.Get(ctx, &res); err != nil {
		return fmt.Errorf("dry run for %s: %w", req.Account, err)
	}
	if g.json() {
		return printJSON(out, res)
	}
	report.Plan(out, res)
	return nil
}

// withClient connects to Temporal (settings from the environment, the
// SDK's own logs at warn and above), runs do with the client and closes it.
func withClient(do func(c client.Client) error) error {
	c, err := dial()
	if err != nil {
		return err
	}
	defer c.Close()
	return do(c)
}

func dial() (client.Client, error) {
	zl, err := logging.NewLogger("console", "warn")
	if err != nil {
		return nil, err
	}
	return temporalclient.Dial(zl.WithOptions(zap.IncreaseLevel(zap.WarnLevel)))
}

// uiLink is the Web UI page of a workflow run.
func uiLink(ui, id, runID string) string {
	ns := envOr("TEMPORAL_NAMESPACE", "default")
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history",
		ui, url.PathEscape(ns), url.PathEscape(id), url.PathEscape(runID))
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return envOr("USER", "unknown")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
