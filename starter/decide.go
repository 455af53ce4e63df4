package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/workflows"
)

// decisionShort is the one-line help of approve, reject and abort.
var decisionShort = map[string]string{
	workflows.UpdateApprove: "Approve a failover waiting at its approval gate",
	workflows.UpdateReject:  "Reject a failover waiting at its approval gate (nothing is touched)",
	workflows.UpdateAbort: "Abort a failover before promote: in-flight work stops and the source, " +
		"if it was fenced, is unfenced",
}

// newDecisionCmd builds approve, reject and abort: each sends the
// same-named update to an account's running failover and reports whether
// the workflow took it.
func newDecisionCmd(g *globals, update string) *cobra.Command {
	var (
		d       workflows.Decision
		account *accountArg
	)
	short := decisionShort[update]
	cmd := &cobra.Command{
		Use:   update + " ACCOUNT --reason WHY",
		Short: short,
		Long: short + ".\n\nThe workflow records who and why. The same decision can be sent from the Temporal\n" +
			"Web UI as a signal named \"" + update + "\" with the JSON {\"By\": \"...\", \"Reason\": \"...\"}.\n\n" +
			workflowIDNote + "\n\n" + evacuationNote + "\n\n" + evacuationDecisionNote[update],
		Example: fmt.Sprintf("  baton %s acct-1 --reason \"checked with the storage on-call\"\n"+
			"  baton %s --evacuation stamp-a --reason \"checked with the storage on-call\"", update, update),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if account.evacuation {
				id, stamp := evacuationID(account.value)
				return evacuationControl(sendDecision(cmd, g, id, update, d, evacuationThen(update, stamp)), stamp)
			}
			id := workflowID(account.value, workflows.FailoverWorkflowID)
			return sendDecision(cmd, g, id, update, d, "")
		},
	}
	account = addAccountArg(cmd, "account whose failover to "+update, false)
	account.addEvacuationFlag(cmd, update+" the stamp's evacuation")
	addDecisionFlags(cmd, &d)
	return cmd
}

// evacuationDecisionNote is what approve, reject and abort do to an
// evacuation.
var evacuationDecisionNote = map[string]string{
	workflows.UpdateApprove: "An evacuation waits at its approval gate once, before its first account: one\n" +
		"approval covers every account's failover.",
	workflows.UpdateReject: "An evacuation rejected at its approval gate ends; nothing is touched.",
	workflows.UpdateAbort: "An aborted evacuation starts no new account; the accounts in flight finish\n" +
		"or roll back by their own rules (each failover's abort is its own: baton abort ACCOUNT).",
}

// addDecisionFlags registers --reason and --by, who decides and why.
func addDecisionFlags(cmd *cobra.Command, d *workflows.Decision) {
	cmd.Flags().StringVar(&d.Reason, "reason", "", "why (required, recorded in the workflow)")
	cmd.Flags().StringVar(&d.By, "by", currentUser(), "who decides, recorded in the workflow")
}

// sendDecision sends d as the update named update to workflow id, waits
// until the workflow has taken or refused it, and says so; then is what
// happens next, added to the text output ("" for nothing).
func sendDecision(cmd *cobra.Command, g *globals, id, update string, d workflows.Decision, then string) error {
	if d.Reason == "" {
		return fmt.Errorf("--reason is required: say why you %s", update)
	}
	if d.By == "" {
		return errors.New("--by is empty: say who you are")
	}
	err := withClient(func(c client.Client) error {
		h, err := c.UpdateWorkflow(cmd.Context(), client.UpdateWorkflowOptions{
			WorkflowID:   id,
			UpdateName:   update,
			Args:         []any{d},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		})
		if err == nil {
			err = h.Get(cmd.Context(), nil)
		}
		if err != nil {
			return fmt.Errorf("%s %s refused: %w", update, id, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if g.json() {
		return printJSON(out, map[string]string{
			"workflow_id": id,
			"update":      update,
			"by":          d.By,
			"result":      "accepted",
		})
	}
	if then != "" {
		then = ": " + then
	}
	fmt.Fprintf(out, "%s of %s accepted (by %s: %s)%s\n", update, id, d.By, d.Reason, then)
	return nil
}
