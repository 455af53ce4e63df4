package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/workflows"
)

// newDecisionCmd builds approve, reject and abort: each sends the
// same-named update to a running failover and reports whether the
// workflow took it.
func newDecisionCmd(g *globals, update string) *cobra.Command {
	var (
		d       workflows.Decision
		account *accountArg
	)
	short := map[string]string{
		workflows.UpdateApprove: "Approve a failover waiting at its approval gate",
		workflows.UpdateReject:  "Reject a failover waiting at its approval gate (nothing is touched)",
		workflows.UpdateAbort:   "Abort a failover before promote: in-flight work stops and the source is unfenced",
	}[update]
	cmd := &cobra.Command{
		Use:   update + " ACCOUNT --reason WHY",
		Short: short,
		Long: short + ".\n\nThe workflow records who and why. The same decision can be sent from the Temporal\nWeb UI as a signal named \"" + update + "\" with the JSON {\"By\": \"...\", \"Reason\": \"...\"}.\n\n" +
			workflowIDNote,
		Example: fmt.Sprintf("  baton %s acct-1 --reason \"checked with the storage on-call\"", update),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if d.Reason == "" {
				return fmt.Errorf("--reason is required: say why you %s", update)
			}
			if d.By == "" {
				return errors.New("--by is empty: say who you are")
			}
			c, err := dial()
			if err != nil {
				return err
			}
			defer c.Close()
			id := workflowID(account.value)
			h, err := c.UpdateWorkflow(cmd.Context(), client.UpdateWorkflowOptions{
				WorkflowID: id, UpdateName: update, Args: []any{d}, WaitForStage: client.WorkflowUpdateStageCompleted,
			})
			if err == nil {
				err = h.Get(cmd.Context(), nil)
			}
			if err != nil {
				return fmt.Errorf("%s %s refused: %w", update, id, err)
			}
			if g.json() {
				return printJSON(cmd.OutOrStdout(), map[string]string{"workflow_id": id, "update": update, "by": d.By, "result": "accepted"})
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s of %s accepted (by %s: %s)\n", update, id, d.By, d.Reason)
			return nil
		},
	}
	account = addAccountArg(cmd, "account whose failover to "+update, false)
	cmd.Flags().StringVar(&d.Reason, "reason", "", "why (required, recorded in the workflow)")
	cmd.Flags().StringVar(&d.By, "by", currentUser(), "who decides, recorded in the workflow")
	return cmd
}
