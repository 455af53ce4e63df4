package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/workflows"
)

// reprotectFlags are baton reprotect's account and flags.
type reprotectFlags struct {
	req     workflows.ReprotectRequest
	account *accountArg
	wait    bool
}

// newReprotectCmd builds baton reprotect: it starts the account's
// Reprotect and, with --wait, prints its report.
func newReprotectCmd(g *globals) *cobra.Command {
	rf := &reprotectFlags{}
	cmd := &cobra.Command{
		Use:   "reprotect ACCOUNT",
		Short: "Make an account's old primary the replica of its new one, after a failover",
		Long: `After a failover the account is unprotected: its new primary takes
writes, but nothing replicates them, and it cannot fail over again. Reprotect
turns the old primary into the new one's replica: precheck (the new primary
is promoted, the old one answers, no failover runs), demote the old
primary's partitions (what they hold past the new primary's start moves to
the recovered area, never dropped: baton recovered ACCOUNT lists it), rewind
the keys that diverged, seed what the old primary lost from a snapshot,
start reverse replication, wait until it caught up, and mark the account
protected. Prints the workflow ID and its Web UI link; with --wait, waits
and prints the report.

Every step is idempotent: a reprotect that failed can be started again.
After it, failing back is a planned failover: baton failover ACCOUNT --to
OLD-PRIMARY. Only one reprotect per account runs at a time (workflow ID
reprotect-ACCOUNT); baton result ACCOUNT --reprotect prints its report.`,
		Example: `  baton reprotect acct-1 --wait
  baton reprotect acct-1 --reason "stamp-a is back" --requested-by alice`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req := rf.req
			req.Account, req.Trigger = rf.account.value, workflows.TriggerManual
			if req.CatchUpTimeout < 0 {
				return fmt.Errorf("--catch-up-timeout %s: must be positive", req.CatchUpTimeout)
			}
			return withClient(func(c client.Client) error {
				return startReprotect(cmd.Context(), cmd.OutOrStdout(), c, g, req, rf.wait)
			})
		},
	}
	rf.account = addAccountArg(cmd, "account to reprotect", false)
	f := cmd.Flags()
	f.StringVar(&rf.req.Reason, "reason", "manual reprotect", "why, recorded in the workflow")
	f.StringVar(&rf.req.RequestedBy, "requested-by", currentUser(), "who asks, recorded in the workflow")
	f.Uint64Var(&rf.req.LagBudgetOps, "lag-budget", 0,
		"protected once the replica is at most this many ops behind (default max(1000, 2 x partitions))")
	f.DurationVar(&rf.req.CatchUpTimeout, "catch-up-timeout", 0,
		"how long to wait for reverse replication to catch up; past it the reprotect fails, replication "+
			"runs on, and a new reprotect finishes (default 10m)")
	f.BoolVar(&rf.wait, "wait", false, "wait for the reprotect to finish and print its report")
	return cmd
}

// startReprotect starts the reprotect of req and prints its workflow ID and
// Web UI link; with wait, it waits and prints the report.
func startReprotect(ctx context.Context, out io.Writer, c client.Client, g *globals, req workflows.ReprotectRequest,
	wait bool) error {
	run, err := launch.Reprotect(ctx, c, g.taskQueue, req)
	if err != nil {
		return err
	}
	ui := uiLink(g.ui, run.GetID(), run.GetRunID())
	if !g.json() {
		fmt.Fprintf(out, "reprotect started: workflow %s run %s\n", run.GetID(), run.GetRunID())
		fmt.Fprintf(out, "web UI: %s\n", ui)
	}
	if !wait {
		if g.json() {
			return printJSON(out, map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID(), "ui": ui})
		}
		return nil
	}
	return waitAndReport(ctx, out, g, run, "reprotect", report.Reprotect)
}

// reprotectNext is the next step after a reprotect that did not complete.
func reprotectNext(ae *temporal.ApplicationError) string {
	var res workflows.ReprotectResult
	switch ae.Type() {
	case workflows.ErrTypeReprotectRefused, workflows.ErrTypeReprotectFailed:
		if ae.HasDetails() {
			_ = ae.Details(&res)
		}
	default:
		return ""
	}
	acct := orPlaceholder(res.Account, "ACCOUNT")
	if ae.Type() == workflows.ErrTypeReprotectRefused {
		return fmt.Sprintf("fix what the precheck found (`baton status %s` shows where the account is), "+
			"then `baton reprotect %s` again", acct, acct)
	}
	return fmt.Sprintf("every step of a reprotect is idempotent: fix the cause, then `baton reprotect %s` again; "+
		"`baton status %s` shows where the account stands", acct, acct)
}

// recoveredLine is one recovered write as baton recovered prints it: a
// JSON line.
type recoveredLine struct {
	Key         string    `json:"key"`
	Value       string    `json:"value"`
	LSN         uint64    `json:"lsn"`
	Partition   int       `json:"partition"`
	Epoch       uint64    `json:"epoch"`
	Op          stamp.Op  `json:"op"`
	RecoveredAt time.Time `json:"recovered_at"`
}

// newRecoveredCmd builds baton recovered: the account's recovered writes,
// as JSON lines, from the stamp that holds them.
func newRecoveredCmd(g *globals) *cobra.Command {
	var (
		account   *accountArg
		stampName string
	)
	cmd := &cobra.Command{
		Use:   "recovered ACCOUNT",
		Short: "Print an account's recovered writes (set aside by a reprotect) as JSON lines",
		Long: `Print the writes a reprotect set aside in the account's recovered area,
one JSON object a line: key, value, lsn, partition, epoch, op, recovered_at.
They are the writes the old primary acknowledged past what the new primary
replayed (after an unplanned failover): the reprotect moved them out of the
account's data instead of dropping them. Nothing replays them: they are
for whoever owns the data to look at, and to write again if they should.

The recovered area is on the stamp that was demoted: the old primary, which
after the failover is the account's secondary in the location service. That
is where baton recovered reads by default; --stamp NAME reads another
registered stamp (after a failback the demoted stamp is the primary again).
A count goes to stderr, so stdout is only the JSON lines.`,
		Example: `  baton recovered acct-1 > acct-1.recovered.jsonl
  baton recovered acct-1 --stamp stamp-a`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			loc, err := g.loc()
			if err != nil {
				return err
			}
			return printRecovered(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), loc, account.value, stampName)
		},
	}
	account = addAccountArg(cmd, "account whose recovered writes to print", false)
	cmd.Flags().StringVar(&stampName, "stamp", "",
		"the stamp to read, by its registered name (default: the account's secondary, the old primary after a failover)")
	return cmd
}

// printRecovered streams the account's recovered writes from the stamp
// named (default: the account's secondary) as JSON lines on out, and their
// count on errw.
func printRecovered(ctx context.Context, out, errw io.Writer, loc *location.Client, account, stampName string) error {
	a, err := loc.Lookup(ctx, account)
	if location.IsNotFound(err) {
		return fmt.Errorf("account %s is not known to the location service at %s: check the name", account, loc.Base())
	}
	if err != nil {
		return fmt.Errorf("look up %s: %w", account, err)
	}
	name, url, role := a.Secondary, a.SecondaryURL, "the secondary"
	switch stampName {
	case "", a.Secondary:
	case a.Primary:
		name, url, role = a.Primary, a.PrimaryURL, "the primary"
	default:
		stamps, err := loc.Stamps(ctx)
		if err != nil {
			return fmt.Errorf("list the stamps: %w", err)
		}
		url = ""
		for _, s := range stamps {
			if s.Name == stampName {
				url = s.URL
			}
		}
		if url == "" {
			return fmt.Errorf("no stamp %q is registered with the location service at %s", stampName, loc.Base())
		}
		name, role = stampName, "not one of the account's stamps"
	}
	enc := json.NewEncoder(out)
	n := 0
	err = stamp.NewClient(url, loc.HTTPClient()).Recovered(ctx, account, func(e stamp.RecoveredEntry) error {
		n++
		return enc.Encode(recoveredLine{Key: e.Key, Value: e.Value, LSN: e.LSN, Partition: e.Partition,
			Epoch: e.Epoch, Op: e.Op, RecoveredAt: e.RecoveredAt})
	})
	switch {
	case stamp.IsCode(err, stamp.CodeNotFound):
		return fmt.Errorf("%s (%s) does not hold account %s: no recovered writes there", name, role, account)
	case err != nil:
		return fmt.Errorf("recovered writes of %s on %s: %w", account, name, err)
	}
	fmt.Fprintf(errw, "%s of %s on %s (%s)\n", countOf(n, "recovered write"), account, name, role)
	if n == 0 && stampName == "" {
		fmt.Fprintf(errw, "(they stay on the stamp that was demoted: after a failback, try --stamp %s)\n", a.Primary)
	}
	return nil
}

// countOf writes n and the noun, singular for 1.
func countOf(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
