package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	workflowpb "go.temporal.io/api/workflow/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batonhq/baton/workflows"
)

// listed is one failover in baton list.
type listed struct {
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	Status     string    `json:"status"`
	Account    string    `json:"account"`
	Phase      string    `json:"phase"`
	Mode       string    `json:"mode"`
	Trigger    string    `json:"trigger"`
	Started    time.Time `json:"started"`
	Closed     time.Time `json:"closed,omitzero"`
}

func newListCmd(g *globals) *cobra.Command {
	var (
		acct  *accountArg
		limit int
	)
	cmd := &cobra.Command{
		Use:     "list [ACCOUNT]",
		Short:   "List failovers, running ones first, then the latest to end (all, or one account's)",
		Example: "  baton list\n  baton list acct-1 --output json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if limit <= 0 {
				return fmt.Errorf("--limit %d: must be positive", limit)
			}
			return withClient(func(c client.Client) error {
				out, err := listFailovers(cmd.Context(), c, acct.value, limit)
				if err != nil {
					return err
				}
				return printListed(cmd.OutOrStdout(), g, out)
			})
		},
	}
	acct = addAccountArg(cmd, "only this account's failovers", true)
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many")
	return cmd
}

// listFailovers asks Temporal's visibility for at most limit account
// failovers, all or account's ("" for all), in visibility's order: running
// ones first, then by close time, latest first.
func listFailovers(ctx context.Context, c client.Client, account string, limit int) ([]listed, error) {
	q := fmt.Sprintf("WorkflowType = '%s'", workflows.NameAccountFailover)
	if account != "" {
		if strings.ContainsAny(account, `'"\`) {
			return nil, fmt.Errorf("account %q: quotes are not part of an account name", account)
		}
		q += fmt.Sprintf(" AND %s = '%s'", workflows.SearchAccount.GetName(), account)
	}
	var out []listed
	var token []byte
	for len(out) < limit {
		resp, err := c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query:         q,
			PageSize:      int32(min(limit, 100)),
			NextPageToken: token,
		})
		if err != nil {
			return nil, fmt.Errorf("list failovers (%s): %w", q, err)
		}
		for _, e := range resp.GetExecutions() {
			out = append(out, toListed(e))
		}
		token = resp.GetNextPageToken()
		// Some visibility stores hand out a token even on the last
		// page: an empty page ends the listing too.
		if len(token) == 0 || len(resp.GetExecutions()) == 0 {
			break
		}
	}
	return out[:min(len(out), limit)], nil
}

// toListed reads one failover from its visibility record.
func toListed(e *workflowpb.WorkflowExecutionInfo) listed {
	l := listed{
		WorkflowID: e.GetExecution().GetWorkflowId(),
		RunID:      e.GetExecution().GetRunId(),
		Status:     strings.ToLower(strings.TrimPrefix(e.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_")),
		Started:    e.GetStartTime().AsTime(),
	}
	if e.GetCloseTime() != nil {
		l.Closed = e.GetCloseTime().AsTime()
	}
	fields := e.GetSearchAttributes().GetIndexedFields()
	for name, dst := range map[string]*string{
		workflows.SearchAccount.GetName(): &l.Account,
		workflows.SearchPhase.GetName():   &l.Phase,
		workflows.SearchMode.GetName():    &l.Mode,
		workflows.SearchTrigger.GetName(): &l.Trigger,
	} {
		if p, ok := fields[name]; ok {
			_ = converter.GetDefaultDataConverter().FromPayload(p, dst)
		}
	}
	return l
}

// printListed prints the failovers as a table, or as JSON.
func printListed(w io.Writer, g *globals, out []listed) error {
	if g.json() {
		return printJSON(w, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(w, "no failovers found")
		return nil
	}
	const row = "%-32s %-10s %-18s %-10s %-8s %s\n"
	fmt.Fprintf(w, row, "WORKFLOW", "STATUS", "PHASE", "MODE", "TRIGGER", "STARTED")
	for _, l := range out {
		fmt.Fprintf(w, row, l.WorkflowID, l.Status, l.Phase, l.Mode, l.Trigger, l.Started.Format(time.RFC3339))
	}
	return nil
}
