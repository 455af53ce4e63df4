package testsuite

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/workflows"
)

// baton runs the real CLI binary against the cluster.
func baton(ctx context.Context, t *testing.T, c *Cluster, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, c.Bin.Baton, args...)
	cmd.Env = append(cmd.Environ(), c.CLIEnv()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestOperatorCLI drives a failover with the baton binary: a dry run, a
// failover held for approval, list by account, approve, and the result.
func TestOperatorCLI(t *testing.T) {
	c := startCluster(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const account = "cli-acct"
	_, err := c.Provision(ctx, account, 16)
	require.NoError(t, err)

	out, err := baton(ctx, t, c, "failover", "--account", account, "--to", StampB, "--dry-run")
	require.NoError(t, err, out)
	require.Contains(t, out, "plan: planned failover of cli-acct from stamp-a to stamp-b")
	require.Contains(t, out, "if the source vanished now: 0 ops lost")

	out, err = baton(ctx, t, c, "failover", "--account", account, "--to", StampB, "--require-approval", "--reason", "cli test")
	require.NoError(t, err, out)
	require.Contains(t, out, "failover started: workflow failover-cli-acct")

	out, err = baton(ctx, t, c, "failover", "--account", account, "--to", StampB)
	require.Error(t, err, "a second failover of the account must be refused")
	require.Contains(t, out, "already running: workflow failover-cli-acct")

	// The list finds it by account, waiting at the gate.
	last := ""
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	defer lcancel()
	require.NoError(t, Poll(lctx, 100*time.Millisecond, func() (bool, error) {
		out, err := baton(lctx, t, c, "list", "--account", account, "--output", "json")
		last = out
		if err != nil {
			return false, nil
		}
		var ls []struct {
			WorkflowID string          `json:"workflow_id"`
			Status     string          `json:"status"`
			Phase      workflows.Phase `json:"phase"`
			Account    string          `json:"account"`
		}
		if json.Unmarshal([]byte(out), &ls) != nil || len(ls) == 0 {
			return false, nil
		}
		return ls[0].WorkflowID == "failover-cli-acct" && ls[0].Status == "running" && ls[0].Phase == workflows.PhaseApproval && ls[0].Account == account, nil
	}), "last list output: %s", last)

	out, err = baton(ctx, t, c, "approve", account, "--reason", "looks right", "--by", "tester")
	require.NoError(t, err, out)
	require.Contains(t, out, "approve of failover-cli-acct accepted")

	out, err = baton(ctx, t, c, "watch", account)
	require.NoError(t, err, out)
	require.Contains(t, out, "planned failover of cli-acct: stamp-a -> stamp-b")
	require.Contains(t, out, "approved by tester")

	out, err = baton(ctx, t, c, "result", account, "--output", "json")
	require.NoError(t, err, out)
	var res workflows.FailoverResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.Equal(t, "tester", res.Approval.By)

	out, err = baton(ctx, t, c, "abort", account, "--reason", "too late")
	require.Error(t, err)
	require.True(t, strings.Contains(out, "refused"), out)

	out, err = baton(ctx, t, c, "status", "--account", account)
	require.NoError(t, err, out)
	require.Contains(t, out, "primary stamp-b")
}
