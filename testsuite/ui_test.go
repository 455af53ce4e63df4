package testsuite

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/enums/v1"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/workflows"
)

// TestWebUI drives headless Chromium through the Temporal Web UI of the
// dev server (the UI bundled with temporal CLI v1.5.1) while a failover
// waits at its approval gate. It finds the failover in the workflow list,
// finds it again by typing a BatonAccount query into the UI's query box,
// reads its summary, details and current details on its page, and approves
// it with the page's "Send a Signal" action; the failover then completes
// with the browser's decision recorded. Screenshots of each step land in
// testsuite/artifacts/ (git-ignored); docs/OPERATIONS.md describes them.
func TestWebUI(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the Temporal dev server and Chromium (skipped with -short)")
	}
	chromiumPath(t) // skip (or, in CI, fail) before building anything
	c := startCluster(t, Options{UI: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Two accounts: the search must find one failover and not the other.
	const account, other = "ui-acct", "ui-other-acct"
	for _, a := range []string{account, other} {
		_, err := c.Provision(ctx, a, 8)
		require.NoError(t, err)
	}
	dry, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: other, ToStamp: StampB, DryRun: true, Reason: "the other account", RequestedBy: t.Name()})
	require.NoError(t, err)
	require.NoError(t, dry.Get(ctx, nil))
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, ToStamp: StampB, Reason: "web ui test", RequestedBy: t.Name(),
		Approval: workflows.ApprovalPolicy{Required: true}})
	require.NoError(t, err)
	require.NoError(t, Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		v, err := c.Client.QueryWorkflow(ctx, run.GetID(), "", workflows.QueryProgress)
		if err != nil {
			return false, nil
		}
		var p workflows.Progress
		return v.Get(&p) == nil && p.Phase == workflows.PhaseApproval, nil
	}), "the failover never reached its approval gate")

	browser := newBrowser(t)
	b, bcancel := context.WithTimeout(browser, 90*time.Second)
	defer bcancel()
	ui := c.Temporal.UIURL + "/namespaces/default/workflows"

	// 1. The workflow list shows the failover.
	require.NoError(t, chromedp.Do(b, chromedp.Navigate(ui)))
	require.NoError(t, waitRows(b, "failover-"+account, "failover-"+other))
	require.NoError(t, waitText(b, "AccountFailover", "Running"))
	screenshot(t, b, "01-workflows")

	// 2. A search by the account's search attribute, typed into the UI's
	// raw query box, finds it and only it.
	query := `BatonAccount="` + account + `"`
	require.NoError(t, clickVisible(b, `[data-testid="toggle-manual-query"]`, ""))
	box, err := visible(b, `[data-testid="manual-search-input"]`, "")
	require.NoError(t, err)
	require.NoError(t, chromedp.Do(b, chromedp.SendKeys(box, query+kb.Enter, chromedp.NodeVisible)))
	require.NoError(t, waitRows(b, "failover-"+account))
	loc, err := chromedp.Run(b, chromedp.Location())
	require.NoError(t, err)
	u, err := url.Parse(loc)
	require.NoError(t, err)
	require.Equal(t, query, strings.ReplaceAll(u.Query().Get("query"), " ", ""), "the search is in the page's address: %s", loc)
	screenshot(t, b, "02-search-by-account")

	// 3. Its page shows the summary and static details set at start and
	// the current details the workflow keeps up to date.
	require.NoError(t, clickVisible(b, `a[href*="/workflows/failover-`+account+`/"]`, "failover-"+account))
	require.NoError(t, clickVisible(b, `[data-testid="user-metadata-tab"]`, "User Metadata"))
	md, err := waitMetadata(b, string(workflows.PhaseApproval))
	require.NoError(t, err)
	require.Equal(t, "planned failover of ui-acct to stamp-b (manual)", md.Summary)
	require.Contains(t, md.Details, "account ui-acct")
	require.Contains(t, md.Details, "reason web ui test")
	require.Contains(t, md.Current, `awaiting-approval the request asks for an approval: approve or reject (update or signal “approve” / “reject”)`)
	screenshot(t, b, "03-summary-and-details")

	// 4. Approve from the page: More Actions, Send a Signal, "approve"
	// with a Decision as JSON.
	require.NoError(t, clickVisible(b, `button[aria-controls="workflow-actions"]`, "More Actions"))
	require.NoError(t, clickVisible(b, `[data-testid="signal-button"]`, "Send a Signal"))
	require.NoError(t, clickVisible(b, `#signal-confirmation-modal [data-testid="signal-select-button"]`, ""))
	require.NoError(t, clickVisible(b, `#signal-select-select li[role="option"]`, workflows.UpdateApprove))
	editor, err := visible(b, `#signal-confirmation-modal [contenteditable="true"]`, "")
	require.NoError(t, err)
	const decision = `{"By":"ui-test","Reason":"from the browser"}`
	require.NoError(t, chromedp.Do(b, chromedp.SendKeys(editor, decision, chromedp.NodeVisible)))
	// Leaving the editor reformats the JSON and moves the Submit button:
	// blur it and wait for the dialog to settle before clicking.
	require.NoError(t, chromedp.Do(b, chromedp.Blur(editor)))
	typed, err := chromedp.Run(b, chromedp.Text(editor))
	require.NoError(t, err)
	require.JSONEq(t, decision, typed)
	submit, err := visible(b, `#signal-confirmation-modal [data-testid="confirm-modal-button"]`, "Submit")
	require.NoError(t, err)
	require.NoError(t, waitStill(b, submit))
	screenshot(t, b, "04-send-approve-signal")
	require.NoError(t, chromedp.Do(b, chromedp.Click(submit, chromedp.NodeVisible)))
	require.NoError(t, chromedp.Do(b, chromedp.WaitNotVisible(submit)), "the signal dialog did not close")

	// 5. The failover proceeds past the gate and completes, approved by
	// the browser's signal.
	var res workflows.FailoverResult
	require.NoError(t, run.Get(ctx, &res))
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.NotNil(t, res.Approval)
	require.Equal(t, "ui-test", res.Approval.By)
	require.Equal(t, "from the browser", res.Approval.Reason)
	require.Empty(t, res.Refusals)
	// It was a signal (the UI's Send a Signal), not the approve update.
	signaled := 0
	it := c.Client.GetWorkflowHistory(ctx, run.GetID(), run.GetRunID(), false, enums.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		ev, err := it.Next()
		require.NoError(t, err)
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.UpdateApprove {
			signaled++
		}
	}
	require.Equal(t, 1, signaled, "one approve signal in the history")

	// The page shows it done (the UI refreshes on reload).
	require.NoError(t, chromedp.Do(b, chromedp.Reload()))
	md, err = waitMetadata(b, string(workflows.PhaseDone))
	require.NoError(t, err)
	require.Contains(t, md.Current, "done ui-acct now primary on stamp-b at epoch 2")
	_, err = visible(b, `header span`, "Completed") // the status badge
	require.NoError(t, err)
	screenshot(t, b, "05-completed")
}
