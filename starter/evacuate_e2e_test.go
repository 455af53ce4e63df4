package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/internal/register"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/workflows"
)

// TestEvacuateAndResult: baton evacuate STAMP --wait fails a few accounts
// of two tiers over, tier 0 first, and prints the report; baton result
// --evacuation STAMP (and the workflow ID, and --output json) prints it
// again; baton watch --evacuation prints it once it ended; a control sent
// to the ended evacuation says so in one line. Then evacuating the other
// stamp, whose accounts are now unprotected, leaves them all there: the
// report is printed, with each account's reason, and baton exits 1 with one
// line saying what next. The Temporal dev server and an in-process worker.
func TestEvacuateAndResult(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Temporal dev server (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ds, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{Dir: t.TempDir()})
	require.NoError(t, err)
	t.Cleanup(func() { ds.Stop(10 * time.Second) })
	t.Setenv("TEMPORAL_ADDRESS", ds.HostPort)
	t.Setenv("TEMPORAL_NAMESPACE", "default")
	c, err := client.Dial(client.Options{HostPort: ds.HostPort, Logger: logging.NewZapAdapter(zap.NewNop())})
	require.NoError(t, err)
	defer c.Close()
	s := startStamps(t)
	const queue = "baton-evacuate-test"
	w := worker.New(c, queue, worker.Options{})
	acts := activities.New(s.url, s.tls)
	acts.Temporal = c
	register.WorkflowsAndActivities(w, acts)
	require.NoError(t, w.Start())
	defer w.Stop()
	// Two tier-1 accounts and one of tier 0, the biggest: it goes first.
	accounts := []struct {
		name       string
		partitions int
		tier       string
	}{{"ev-small", 2, "1"}, {"ev-other", 2, "1"}, {"ev-first", 4, "0"}}
	for _, a := range accounts {
		s.provision(t, a.name, a.partitions)
		_, err := s.loc.SetLabels(ctx, a.name, map[string]string{location.LabelTier: a.tier})
		require.NoError(t, err)
	}
	common := []string{"--location", s.url, "--task-queue", queue}
	cli := func(args ...string) (string, string, int) { return batonCLI(append(args, common...)...) }

	out, errOut, code := cli("evacuate", testsuite.StampA, "--wait", "--max-in-flight", "1",
		"--reason", "rack 7 power work", "--requested-by", "tester")
	require.Zero(t, code, out+errOut)
	require.Empty(t, errOut)
	for _, want := range []string{
		"evacuation started: workflow evacuate-stamp-a run ",
		"web UI: http://",
		"planned evacuation of stamp-a: completed: 3 of 3 accounts moved, 0 left on stamp-a\n",
		`  reason: "rack 7 power work", requested by "tester" (trigger manual)` + "\n",
		"  approval: not required (planned, started by hand)\n",
		"  by outcome: completed 3\n",
		"  by tier: tier 0: 1 moved; tier 1: 2 moved\n",
		"  admission: at most 1 in flight, 3 attempts per account\n",
		"  total time: ",
		"  slowest accounts: ",
		"  longest write-unavailability window: ",
		"  3 accounts, in the order they ended:\n",
		"    account   tier  partitions  to       outcome    attempts  started after  took",
	} {
		require.Contains(t, out, want)
	}
	// One at a time: the order they ended is the order they started,
	// tier 0 first, then the smaller accounts (by name at equal size).
	first, other, small := strings.Index(out, "    ev-first "), strings.Index(out, "    ev-other "),
		strings.Index(out, "    ev-small ")
	require.Positive(t, first, out)
	require.Less(t, first, other)
	require.Less(t, other, small)
	require.Regexp(t, `\n    ev-first  0     4           stamp-b  completed  1 `, out)
	t.Logf("baton evacuate stamp-a --wait:\n%s", out)
	for _, a := range accounts {
		where, err := s.loc.Lookup(ctx, a.name)
		require.NoError(t, err)
		require.Equal(t, testsuite.StampB, where.Primary, a.name)
	}

	// The report again: by stamp, by workflow ID, as JSON.
	again, errOut, code := cli("result", "--evacuation", testsuite.StampA)
	require.Zero(t, code, errOut)
	require.Equal(t, out[strings.Index(out, "planned evacuation"):], again)
	byID, errOut, code := cli("result", workflows.EvacuationWorkflowID(testsuite.StampA))
	require.Zero(t, code, errOut)
	require.Equal(t, again, byID)
	js, errOut, code := cli("result", "--evacuation", testsuite.StampA, "-o", "json")
	require.Zero(t, code, errOut)
	var res workflows.EvacuationResult
	require.NoError(t, json.Unmarshal([]byte(js), &res), js)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.Equal(t, 3, res.Table.Len())
	require.Equal(t, "tester", res.RequestedBy)
	require.Equal(t, []string{"ev-first", "ev-other", "ev-small"}, res.Table.Account)
	watched, errOut, code := cli("watch", "--evacuation", testsuite.StampA)
	require.Zero(t, code, errOut)
	require.Regexp(t, `^done +\d+\.\ds  done \[##########\] 3/3  running 0  waiting 0  retrying 0  failed 0  `+
		`\(at most 1 in flight\)  by tier: t0 1 done, t1 2 done\n`, watched)
	require.True(t, strings.HasSuffix(watched, again), watched)

	// Controls on an evacuation that ended: one line, what next.
	_, errOut, code = cli("pause", testsuite.StampA, "--reason", "too late")
	require.Equal(t, 1, code)
	require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	require.Contains(t, errOut, "baton: pause evacuate-stamp-a refused: ")
	require.Contains(t, errOut, "Next: the evacuation has already ended: `baton result --evacuation stamp-a` shows how\n")
	_, errOut, code = cli("limits", testsuite.StampB, "--max-in-flight", "5")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "Next: no evacuation of stamp-b (yet): `baton evacuate stamp-b` starts one\n")

	// The accounts are unprotected on stamp-b: evacuating it leaves them
	// there, each with its reason; the report is printed, baton exits 1.
	out, errOut, code = cli("evacuate", testsuite.StampB, "--wait", "--rows", "2")
	require.Equal(t, 1, code, out+errOut)
	require.Contains(t, out, "planned evacuation of stamp-b: incomplete: 0 of 3 accounts moved, 3 left on stamp-b\n")
	require.Contains(t, out, "  by outcome: refused 3\n")
	require.Contains(t, out, "  the first 2 of the 3 accounts left on stamp-b (--rows 0 lists every account):\n")
	require.Contains(t, out, "unprotected: stamp-a does not replicate it yet (a reprotect is pending); "+
		"reprotect it (baton reprotect ev-first), then evacuate again\n")
	require.Contains(t, out, "    ... and 1 more left on stamp-b, not listed\n")
	require.Equal(t, 1, strings.Count(errOut, "\n"), errOut)
	require.True(t, strings.HasPrefix(errOut, "baton: evacuation of stamp-b left 3 of 3 accounts on it; ev-first: "+
		"unprotected: "), errOut)
	require.Contains(t, errOut, ". Next: the report names the accounts left on stamp-b and why; fix the causes, "+
		"then `baton evacuate stamp-b` again: it takes only the accounts still on the stamp\n")
	out, errOut, code = cli("result", "--evacuation", testsuite.StampB, "--rows", "0")
	require.Equal(t, 1, code)
	require.Contains(t, out, "  3 accounts, in the order they ended:\n")
	require.Contains(t, errOut, "Next: the report names the accounts left on stamp-b")
	t.Logf("the report of an evacuation that left every account:\n%s", out)
}
