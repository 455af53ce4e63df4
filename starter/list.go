package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/api/workflowservice/v1"
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
		Short:   "List failovers, newest first (all, or one account's)",
		Example: "  baton list\n  baton list acct-1 --output json",
		RunE: func(cmd *cobra.Command, _ []string) error {
			account := acct.value
			if limit <= 0 {
				return fmt.Errorf("--limit %d: must be positive", limit)
			}
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			q := fmt.Sprintf("WorkflowType = '%s'", workflows.NameAccountFailover)
			if account != "" {
				if strings.ContainsAny(account, `'"\`) {
					return fmt.Errorf("account %q: quotes are not part of an account name", account)
				}
				q += fmt.Sprintf(" AND %s = '%s'", workflows.SearchAccount.GetName(), account)
			}
			var out []listed
			var token []byte
			for len(out) < limit {
				resp, err := c.ListWorkflow(cmd.Context(), &workflowservice.ListWorkflowExecutionsRequest{Query: q, PageSize: int32(min(limit, 100)), NextPageToken: token})
				if err != nil {
					return fmt.Errorf("list failovers (%s): %w", q, err)
				}
				for _, e := range resp.GetExecutions() {
					l := listed{WorkflowID: e.GetExecution().GetWorkflowId(), RunID: e.GetExecution().GetRunId(),
						Status:  strings.ToLower(strings.TrimPrefix(e.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_")),
						Started: e.GetStartTime().AsTime()}
					if e.GetCloseTime() != nil {
						l.Closed = e.GetCloseTime().AsTime()
					}
					fields := e.GetSearchAttributes().GetIndexedFields()
					for name, dst := range map[string]*string{workflows.SearchAccount.GetName(): &l.Account, workflows.SearchPhase.GetName(): &l.Phase,
						workflows.SearchMode.GetName(): &l.Mode, workflows.SearchTrigger.GetName(): &l.Trigger} {
						if p, ok := fields[name]; ok {
							_ = converter.GetDefaultDataConverter().FromPayload(p, dst)
						}
					}
					out = append(out, l)
				}
				token = resp.GetNextPageToken()
				// Some visibility stores hand out a token even on the last
				// page: an empty page ends the listing too.
				if len(token) == 0 || len(resp.GetExecutions()) == 0 {
					break
				}
			}
			out = out[:min(len(out), limit)]
			w := cmd.OutOrStdout()
			if g.json() {
				return printJSON(w, out)
			}
			if len(out) == 0 {
				fmt.Fprintln(w, "no failovers found")
				return nil
			}
			fmt.Fprintf(w, "%-32s %-10s %-18s %-10s %-8s %s\n", "WORKFLOW", "STATUS", "PHASE", "MODE", "TRIGGER", "STARTED")
			for _, l := range out {
				fmt.Fprintf(w, "%-32s %-10s %-18s %-10s %-8s %s\n", l.WorkflowID, l.Status, l.Phase, l.Mode, l.Trigger, l.Started.Format(time.RFC3339))
			}
			return nil
		},
	}
	acct = addAccountArg(cmd, "only this account's failovers", true)
	cmd.Flags().IntVar(&limit, "limit", 20, "at most this many")
	return cmd
}
