package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/internal/temporalx"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/workflows"
)

// globals are the flags every command shares.
type globals struct {
	location  string
	ui        string
	taskQueue string
	timeout   time.Duration
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "baton",
		Short: "Fail storage accounts over between stamps, as durable Temporal workflows",
		Long: `baton starts and follows Baton failovers.

Temporal connection settings come from the environment: TEMPORAL_ADDRESS
(default localhost:7233), TEMPORAL_NAMESPACE (default "default"),
TEMPORAL_TLS_*, TEMPORAL_API_KEY or a temporal.toml profile.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	pf := root.PersistentFlags()
	pf.StringVar(&g.location, "location", envOr("BATON_LOCATION", "http://127.0.0.1:7100"), "location service base URL (env BATON_LOCATION)")
	pf.StringVar(&g.ui, "ui", envOr("TEMPORAL_UI", "http://localhost:8233"), "Temporal Web UI base URL, for links (env TEMPORAL_UI)")
	pf.StringVar(&g.taskQueue, "task-queue", workflows.TaskQueue, "Temporal task queue of Baton's workers")
	pf.DurationVar(&g.timeout, "timeout", 30*time.Second, "timeout for calls that do not wait for a failover")
	root.AddCommand(newFailoverCmd(g), newStatusCmd(g), newResultCmd(g))
	return root
}

func newFailoverCmd(g *globals) *cobra.Command {
	var (
		req  workflows.FailoverRequest
		wait bool
		rows int
	)
	cmd := &cobra.Command{
		Use:   "failover --account A --to STAMP",
		Short: "Start a planned failover of an account to its secondary stamp",
		Long: `Start a planned failover: precheck, catch up replication, fence the source,
flush-send and flush-replay every partition, then promote the destination and
point the account at it. Prints the workflow ID and its Web UI link. With
--wait, waits and prints the report.

Only one failover per account runs at a time (the workflow ID is derived from
the account).`,
		Example: `  baton failover --account acct-1 --to stamp-b --reason "stamp-a maintenance" --wait`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if req.Account == "" || req.ToStamp == "" {
				return errors.New("--account and --to are required: name the account and the stamp to fail over to")
			}
			if req.FromStamp != "" && req.FromStamp == req.ToStamp {
				return fmt.Errorf("--from and --to are both %q: a failover needs two different stamps", req.ToStamp)
			}
			if req.Options.GroupSize < 0 {
				return fmt.Errorf("--group-size %d: must be positive (or 0 for the default)", req.Options.GroupSize)
			}
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			ctx := cmd.Context()
			run, err := temporalx.StartFailover(ctx, c, g.taskQueue, req)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "failover started: workflow %s run %s\n", run.GetID(), run.GetRunID())
			fmt.Fprintf(out, "web UI: %s\n", uiLink(g.ui, run.GetID(), run.GetRunID()))
			if !wait {
				return nil
			}
			var res workflows.FailoverResult
			if err := run.Get(ctx, &res); err != nil {
				return fmt.Errorf("failover of %s failed: %w", req.Account, err)
			}
			report.Failover(out, res, rows)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&req.Account, "account", "", "account to fail over (required)")
	f.StringVar(&req.ToStamp, "to", "", "stamp to fail over to: the account's secondary (required)")
	f.StringVar(&req.FromStamp, "from", "", "expected current primary; refused if it is not (default: accept the current one)")
	f.StringVar(&req.Reason, "reason", "manual failover", "why, recorded in the workflow")
	f.StringVar(&req.RequestedBy, "requested-by", currentUser(), "who asks, recorded in the workflow")
	f.IntVar(&req.Options.GroupSize, "group-size", 0, "partitions per child workflow (default 250)")
	f.BoolVar(&wait, "wait", false, "wait for the failover to finish and print its report")
	f.IntVar(&rows, "rows", 20, "partitions to list in the report, slowest first (0 = all)")
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	var account string
	cmd := &cobra.Command{
		Use:     "status --account A",
		Short:   "Show where an account's primary is, its epoch and replication lag",
		Example: `  baton status --account acct-1`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if account == "" {
				return errors.New("--account is required")
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), g.timeout)
			defer cancel()
			return printStatus(ctx, cmd.OutOrStdout(), location.NewClient(g.location, nil), account)
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "account to show (required)")
	return cmd
}

func printStatus(ctx context.Context, w io.Writer, loc *location.Client, account string) error {
	a, err := loc.Lookup(ctx, account)
	if location.IsNotFound(err) {
		return fmt.Errorf("account %s is not known to the location service at %s: check the name", account, loc.Base())
	}
	if err != nil {
		return fmt.Errorf("look up %s: %w", account, err)
	}
	fmt.Fprintf(w, "account %s: primary %s (%s) at epoch %d, secondary %s (%s), %d partitions\n",
		a.Account, a.Primary, a.PrimaryURL, a.Epoch, a.Secondary, a.SecondaryURL, a.Partitions)
	st, err := stamp.NewClient(a.PrimaryURL, nil).Status(ctx, account, nil)
	if err != nil {
		return fmt.Errorf("status of %s on primary %s: %w", account, a.Primary, err)
	}
	var written, acked uint64
	fenced := 0
	for _, p := range st.Partitions {
		written += p.LastWritten
		acked += min(p.LastAcked, p.LastWritten)
		if p.Fenced {
			fenced++
		}
	}
	fmt.Fprintf(w, "  on %s: %d writes, %d not yet acknowledged by the secondary, %d of %d partitions fenced\n",
		a.Primary, written, written-acked, fenced, len(st.Partitions))
	return nil
}

func newResultCmd(g *globals) *cobra.Command {
	var (
		account string
		rows    int
	)
	cmd := &cobra.Command{
		Use:   "result --account A",
		Short: "Wait for an account's latest failover and print its report",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if account == "" {
				return errors.New("--account is required")
			}
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			var res workflows.FailoverResult
			if err := c.GetWorkflow(cmd.Context(), workflows.FailoverWorkflowID(account), "").Get(cmd.Context(), &res); err != nil {
				return fmt.Errorf("failover of %s: %w", account, err)
			}
			report.Failover(cmd.OutOrStdout(), res, rows)
			return nil
		},
	}
	cmd.Flags().StringVar(&account, "account", "", "account whose failover to show (required)")
	cmd.Flags().IntVar(&rows, "rows", 20, "partitions to list, slowest first (0 = all)")
	return cmd
}

func dial() (client.Client, error) {
	zl, err := temporalx.NewLogger("console", "warn")
	if err != nil {
		return nil, err
	}
	return temporalx.Dial(zl.WithOptions(zap.IncreaseLevel(zap.WarnLevel)))
}

// uiLink is the Web UI page of a workflow run.
func uiLink(ui, id, runID string) string {
	ns := envOr("TEMPORAL_NAMESPACE", "default")
	return fmt.Sprintf("%s/namespaces/%s/workflows/%s/%s/history", ui, url.PathEscape(ns), url.PathEscape(id), url.PathEscape(runID))
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
