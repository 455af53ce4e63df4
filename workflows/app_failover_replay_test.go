package workflows

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedAppFailover replays an AppFailover history recorded from
// the end-to-end run of examples/plans/shop.yaml (regenerate with
// BATON_RECORD_HISTORY=1 go test ./testsuite -run TestAppFailoverEndToEnd).
// A change to AppFailover that would break failovers in flight fails here:
// guard such a change with workflow.GetVersion.
func TestReplayRecordedAppFailover(t *testing.T) {
	f, err := os.Open("testdata/app_failover.json")
	require.NoError(t, err)
	defer f.Close()
	h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
	require.NoError(t, err)
	r := worker.NewWorkflowReplayer()
	r.RegisterWorkflowWithOptions(AppFailover, workflow.RegisterOptions{Name: NameAppFailover})
	r.RegisterWorkflowWithOptions(AccountFailover, workflow.RegisterOptions{Name: NameAccountFailover})
	require.NoError(t, r.ReplayWorkflowHistoryWithOptions(nil, h, worker.ReplayWorkflowHistoryOptions{
		OriginalExecution: workflow.Execution{ID: AppFailoverWorkflowID("shop"), RunID: "recorded"},
	}))
}
