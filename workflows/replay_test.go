package workflows

import (
	"os"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// TestReplayRecordedHistories replays histories recorded from real runs
// (testdata/; regenerate with
// BATON_RECORD_HISTORY=1 go test ./testsuite -run TestPlannedFailover).
// A change to workflow code that would break failovers in flight fails
// here: guard such a change with workflow.GetVersion.
func TestReplayRecordedHistories(t *testing.T) {
	tests := []struct {
		file       string
		workflowID string // child IDs derive from it, so replay needs the original
	}{
		// Before versionBoundedFlush.
		{"testdata/account_failover.json", "failover-e2e-acct"},
		{"testdata/partition_group.json", "failover-e2e-acct/group-0000"},
		// versionBoundedFlush.
		{"testdata/account_failover_v1.json", "failover-e2e-acct"},
		{"testdata/partition_group_v1.json", "failover-e2e-acct/group-0000"},
		// versionFastPath: local steps, groups inline.
		{"testdata/account_failover_v2.json", "failover-e2e-acct"},
		// A stamp evacuation (pause, resume, limits, an attached failover,
		// a worker SIGKILL and a Temporal restart on the way).
		{"testdata/stamp_evacuation_v2.json", "evacuate-stamp-a"},
		// versionBoundedLocal: one local attempt per step, then a regular
		// activity; the same two runs.
		{"testdata/account_failover_v3.json", "failover-e2e-acct"},
		{"testdata/stamp_evacuation_v3.json", "evacuate-stamp-a"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			f, err := os.Open(tt.file)
			require.NoError(t, err)
			defer f.Close()
			h, err := client.HistoryFromJSON(f, client.HistoryJSONOptions{})
			require.NoError(t, err)
			r := worker.NewWorkflowReplayer()
			r.RegisterWorkflowWithOptions(AccountFailover, workflow.RegisterOptions{Name: NameAccountFailover})
			r.RegisterWorkflowWithOptions(PartitionGroupFailover, workflow.RegisterOptions{Name: NamePartitionGroupFailover})
			r.RegisterWorkflowWithOptions(StampEvacuation, workflow.RegisterOptions{Name: NameStampEvacuation})
			require.NoError(t, r.ReplayWorkflowHistoryWithOptions(nil, h, worker.ReplayWorkflowHistoryOptions{
				OriginalExecution: workflow.Execution{ID: tt.workflowID, RunID: "recorded"},
			}))
		})
	}
}
