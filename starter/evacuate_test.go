package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/workflows"
)

// TestEvacuationCommandsRefuseBadInput: evacuate, the controls on an
// evacuation and maintenance say what is wrong with their arguments, on
// one line naming the flag, before dialling anything.
func TestEvacuationCommandsRefuseBadInput(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"evacuate"}, "baton: no stamp: name the stamp to evacuate, baton evacuate STAMP. " +
			"Next: see `baton evacuate --help`"},
		{[]string{"evacuate", "a", "b"}, `baton: 2 arguments "a b" where one stamp was expected: baton evacuate STAMP`},
		{[]string{"evacuate", "a", "--planned", "--unplanned"}, "baton: --planned and --unplanned: give one of them"},
		{[]string{"evacuate", "a", "--max-in-flight", "0"},
			"baton: --max-in-flight 0: must be at least 1 (leave it out for the default, 20)"},
		{[]string{"evacuate", "a", "--max-in-flight", "501"}, "baton: --max-in-flight 501: must be between 1 and 500"},
		{[]string{"evacuate", "a", "--max-in-flight", "-3"}, "baton: --max-in-flight -3: must be between 1 and 500"},
		{[]string{"evacuate", "a", "--max-in-flight", "many"}, `invalid argument "many" for "--max-in-flight"`},
		{[]string{"evacuate", "a", "--per-destination", "-1"},
			"baton: --per-destination -1: must be positive (or none, for no cap)"},
		{[]string{"evacuate", "a", "--attempts", "0"},
			"baton: --attempts 0: must be at least 1 (leave it out for the default, 3)"},
		{[]string{"evacuate", "a", "--attempts", "11"}, "baton: --attempts 11: must be between 1 and 10"},
		{[]string{"evacuate", "a", "--retry-delay", "0s"},
			"baton: --retry-delay 0s: must be positive (leave it out for the default, 10s)"},
		{[]string{"evacuate", "a", "--retry-delay", "-1s"}, "baton: --retry-delay -1s: must be positive"},
		{[]string{"evacuate", "a", "--flush-deadline", "0s"}, "baton: --flush-deadline 0s: must be positive"},
		{[]string{"evacuate", "a", "--flush-deadline", "-1m"}, "baton: --flush-deadline -1m0s: must be positive"},
		{[]string{"evacuate", "a", "--approval-timeout", "0s"}, "baton: --approval-timeout 0s: must be positive"},
		{[]string{"evacuate", "a", "--mode", "unplanned"}, "unknown flag: --mode"},
		{[]string{"pause"}, "baton: no stamp: name it, baton pause STAMP --reason WHY. Next: see `baton pause --help`"},
		{[]string{"pause", "a"}, "baton: --reason is required: say why you pause"},
		{[]string{"resume", "a", "b", "--reason", "x"}, `2 arguments "a b" where one stamp was expected`},
		{[]string{"pause", "a", "--evacuation=false", "--reason", "x"},
			"baton: pause applies to evacuations only: baton pause STAMP --reason WHY"},
		{[]string{"resume", "a", "--reason", "x", "--by", ""}, "baton: --by is empty: say who you are"},
		{[]string{"limits", "a"}, "baton: nothing to change: give --max-in-flight, --per-destination or both. " +
			"Next: see `baton limits --help`"},
		{[]string{"limits", "a", "--max-in-flight", "0"},
			"baton: --max-in-flight 0: must be at least 1 (baton pause stops new accounts)"},
		{[]string{"limits", "a", "--max-in-flight", "600"}, "baton: --max-in-flight 600: must be between 1 and 500"},
		{[]string{"limits", "a", "--per-destination", "-2"},
			"baton: --per-destination -2: must be positive (0 removes the cap)"},
		{[]string{"limits"}, "baton: no stamp: name it, baton limits STAMP --max-in-flight K [--per-destination N]"},
		{[]string{"watch", "--evacuation"}, "baton: no stamp: name it, baton watch --evacuation STAMP"},
		{[]string{"watch", "--evacuation", "a", "b"}, `2 arguments "a b" where one stamp was expected: ` +
			"baton watch --evacuation STAMP"},
		{[]string{"watch", "--evacuation", "a", "--account", "x"},
			"baton: --account names an account; with --evacuation the argument is the stamp: baton watch --evacuation STAMP"},
		{[]string{"watch", "--evacuation", "a", "--every", "0s"}, "baton: --every 0s: must be positive"},
		{[]string{"abort", "--evacuation", "--reason", "x"},
			"baton: no stamp: name it, baton abort --evacuation STAMP --reason WHY"},
		{[]string{"approve", "--evacuation", "a"}, "baton: --reason is required: say why you approve"},
		{[]string{"reject", "--evacuation", "a", "--account", "b", "--reason", "x"}, "--account names an account"},
		{[]string{"result", "--evacuation"}, "baton: no stamp: name it, baton result --evacuation STAMP"},
		{[]string{"result", "--evacuation", "a", "--reprotect"}, "baton: --reprotect and --evacuation: give one of them"},
		{[]string{"maintenance", "sideways"}, `baton: unknown command "sideways" for "baton maintenance": ` +
			"use on or off, or nothing to show the switches"},
		{[]string{"maintenance", "on"}, "baton: --reason is required: say why the switch goes on"},
		{[]string{"maintenance", "on", "stamp-a", "--reason", "x"},
			`baton: "stamp-a": a stamp is named with --stamp: baton maintenance on [--stamp STAMP] --reason WHY`},
		{[]string{"maintenance", "on", "--stamp", "", "--reason", "x"},
			"baton: --stamp is empty: name the stamp, or leave --stamp out for the global switch"},
		{[]string{"maintenance", "off", "--requested-by", ""}, "baton: --requested-by is empty: say who you are"},
	} {
		var out, errOut bytes.Buffer
		require.Equal(t, 1, execute(c.args, &out, &errOut), "%v", c.args)
		require.Contains(t, errOut.String(), c.want, "%v", c.args)
		require.Equal(t, 1, bytes.Count(errOut.Bytes(), []byte("\n")), "one line: %s", errOut.String())
		require.Empty(t, out.String())
	}
}

// TestEvacuateRefusesAnUnknownStamp: a stamp the location service does
// not know is refused before Temporal is dialled (an evacuation of a
// mistyped name would complete, having moved nothing); a stamp's
// maintenance switch likewise.
func TestEvacuateRefusesAnUnknownStamp(t *testing.T) {
	s := startStamps(t) // registers stamp-a and stamp-b
	for _, args := range [][]string{
		{"evacuate", "stamp-z"},
		{"maintenance", "on", "--stamp", "stamp-z", "--reason", "x"},
	} {
		var out, errOut bytes.Buffer
		// TEMPORAL_ADDRESS unreachable: the refusal comes first.
		t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
		require.Equal(t, 1, execute(append(args, "--location", s.url), &out, &errOut))
		require.Equal(t, fmt.Sprintf("baton: no stamp \"stamp-z\" is registered with the location service at %s "+
			"(it knows stamp-a, stamp-b): check the name\n", s.url), errOut.String(), "%v", args)
	}
}

// TestMaintenanceSwitches: baton maintenance on/off set the switches with
// who and why, baton maintenance shows them, and baton status shows those
// that apply to the account's stamps.
func TestMaintenanceSwitches(t *testing.T) {
	s := startStamps(t)
	s.provision(t, "mt-acct", 2)
	loc := []string{"--location", s.url}
	run := func(args ...string) string {
		t.Helper()
		out, errOut, code := batonCLI(append(args, loc...)...)
		require.Zero(t, code, "%v: %s", args, errOut)
		require.Empty(t, errOut)
		return out
	}
	out := run("maintenance")
	require.Equal(t, "global   off\nstamp-a  off\nstamp-b  off\nno switch is on\n", out)
	require.Contains(t, run("status", "mt-acct"), "  maintenance: no switch on (global, stamp-a, stamp-b)\n")

	out = run("maintenance", "on", "--stamp", "stamp-a", "--reason", "rack 7 power work", "--requested-by", "alice")
	require.Regexp(t, `^global   off
stamp-a  ON since \S+Z, by alice: rack 7 power work
stamp-b  off
automatic triggers hold off stamp-a
$`, out)
	status := run("status", "mt-acct")
	require.Regexp(t, `\n  maintenance: the maintenance switch of stamp-a \(on since \S+Z, set by alice: rack 7 power work\): `+
		`automatic triggers hold off; a failover by hand still runs\n  ready to fail over: `, status)

	out = run("maintenance", "on", "--reason", "Temporal upgrade", "--requested-by", "bob")
	require.Contains(t, out, "automatic triggers hold off every stamp (the global switch is on)\n")
	var js struct {
		Maintenance map[string]location.Switch
	}
	require.NoError(t, json.Unmarshal([]byte(run("status", "mt-acct", "-o", "json")), &js))
	require.Equal(t, []string{"global", "stamp-a"}, slices.Sorted(maps.Keys(js.Maintenance)))
	require.Equal(t, "bob", js.Maintenance["global"].By)
	require.Equal(t, "rack 7 power work", js.Maintenance["stamp-a"].Reason)

	out = run("maintenance", "off", "--requested-by", "bob", "--reason", "upgrade done")
	require.Contains(t, out, "global   off since ")
	require.Contains(t, out, ", by bob: upgrade done\n")
	out = run("maintenance", "off", "--stamp", "stamp-a", "--requested-by", "alice")
	require.Contains(t, out, "no switch is on\n")
	var m location.Maintenance
	require.NoError(t, json.Unmarshal([]byte(run("maintenance", "-o", "json")), &m))
	require.False(t, m.Global.On)
	require.False(t, m.Stamps["stamp-a"].On)
	require.Equal(t, "alice", m.Stamps["stamp-a"].By)
}

// TestEvacuationLine: baton watch's line for an evacuation, and its key
// without the times.
func TestEvacuationLine(t *testing.T) {
	start := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	p := workflows.EvacuationProgress{
		Stamp: "stamp-a", Phase: workflows.PhaseEvacuating, MaxInFlight: 4, PerDestination: 2, OnStamp: 10,
		Done: 3, Running: 4, Waiting: 1, Retrying: 1, Failed: 1, StartedAt: start,
		Tiers: []workflows.TierCount{{Tier: 0, Done: 3}, {Tier: 1, Running: 4, Waiting: 1},
			{Tier: activities.NoTier, Failed: 1}},
		SlowestRunning: []workflows.AccountTiming{{Account: "acct-9", Tier: 1, Millis: 4200},
			{Account: "acct-8", Tier: 1, Millis: 1500}},
	}
	line, key := evacuationLine(p, start.Add(12300*time.Millisecond))
	require.Equal(t, "evacuating     12.3s  done [###-------] 3/10  running 4  waiting 1  retrying 1  failed 1  "+
		"(at most 4 in flight, 2 per destination)  by tier: t0 3 done, t1 4 running 1 retrying, no-tier 1 failed  "+
		"slowest running: acct-9 4.2s, acct-8 1.5s", line)
	require.Equal(t, "evacuating    done [###-------] 3/10  running 4  waiting 1  retrying 1  failed 1  "+
		"(at most 4 in flight, 2 per destination)  by tier: t0 3 done, t1 4 running 1 retrying, no-tier 1 failed  "+
		"slowest running: acct-9, acct-8", key)
	_, later := evacuationLine(p, start.Add(time.Minute))
	require.Equal(t, key, later, "the key does not change with time")

	p.Paused = &workflows.Decision{By: "bob", Reason: "look"}
	line, _ = evacuationLine(p, start)
	require.Contains(t, line, "  PAUSED by bob (look): baton resume stamp-a  done ")
	p.Paused, p.Abort = nil, &workflows.Decision{By: "carol", Reason: "enough"}
	line, _ = evacuationLine(p, start)
	require.Contains(t, line, "  ABORTED by carol (enough): no new account starts  done ")
	p.Abort, p.Phase, p.PhaseAt = nil, workflows.PhaseDone, start.Add(90*time.Second)
	line, _ = evacuationLine(p, start.Add(time.Hour))
	require.True(t, strings.HasPrefix(line, "done           90.0s  done "), "ended: the time it took: %s", line)
	p.Phase = workflows.PhaseApproval
	line, _ = evacuationLine(p, start)
	require.Equal(t, "awaiting-approval    0.0s  waiting for approval (baton approve|reject --evacuation stamp-a)", line)
}

// TestFailedEvacuationSaysWhatNext: an evacuation that left an account on
// the stamp, as the real workflow reports it, is one line whose next step
// is the evacuation's; so are the controls' refusals.
func TestFailedEvacuationSaysWhatNext(t *testing.T) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(workflows.StampEvacuation,
		workflow.RegisterOptions{Name: workflows.NameStampEvacuation})
	env.RegisterWorkflowWithOptions(func(ctx workflow.Context, req workflows.FailoverRequest) (workflows.FailoverResult, error) {
		res := workflows.FailoverResult{Account: req.Account, From: req.FromStamp, To: req.ToStamp}
		if req.Account == "acct-2" {
			res.Outcome = workflows.OutcomeRolledBack
			return res, temporal.NewNonRetryableApplicationError(
				"failover of acct-2 rolled back: flush deadline 2m0s passed", workflows.ErrTypeRolledBack, nil, res)
		}
		res.Outcome = workflows.OutcomeCompleted
		return res, nil
	}, workflow.RegisterOptions{Name: workflows.NameAccountFailover})
	var acts *activities.Activities
	env.RegisterActivity(acts)
	env.OnActivity(acts.EvacuationPage, mock.Anything, mock.Anything).Return(activities.EvacuationPageResult{
		OnStamp: 2, Last: true, Accounts: []activities.EvacuationAccount{
			{EvacuationKey: activities.EvacuationKey{Tier: 0, Partitions: 1, Account: "acct-1"}, To: "stamp-b"},
			{EvacuationKey: activities.EvacuationKey{Tier: 0, Partitions: 2, Account: "acct-2"}, To: "stamp-b"},
		}}, nil)
	env.OnActivity(acts.LookUpAccounts, mock.Anything, mock.Anything).Return(
		[]activities.AccountWhere{{Account: "acct-2", Primary: "stamp-a"}}, nil)
	env.ExecuteWorkflow(workflows.NameStampEvacuation, workflows.EvacuationRequest{Stamp: "stamp-a", Attempts: 2,
		RequestedBy: "test"})
	err := env.GetWorkflowError()
	require.Error(t, err)
	f := describeError(evacuationError{stamp: "stamp-a", err: err}) // as evacuationReport returns it
	requireClean(t, f.Error)
	require.Equal(t, "evacuation of stamp-a left 1 of 2 accounts on it; acct-2: "+
		"failover of acct-2 rolled back: flush deadline 2m0s passed (after 2 attempts)", f.Error)
	require.Equal(t, "the report names the accounts left on stamp-a and why; fix the causes, then "+
		"`baton evacuate stamp-a` again: it takes only the accounts still on the stamp", f.Next)
	res, ok := workflows.EvacuationOutcomeOf(err)
	require.True(t, ok)
	require.Equal(t, workflows.OutcomeIncomplete, res.Outcome)

	// The controls: no evacuation, an evacuation that ended, a refusal.
	next := func(err error) failure { return describeError(evacuationError{stamp: "stamp-a", err: err}) }
	require.Equal(t, "no evacuation of stamp-a (yet): `baton evacuate stamp-a` starts one",
		next(fmt.Errorf("pause evacuate-stamp-a refused: %w", serviceerror.NewNotFound("workflow not found"))).Next)
	require.Equal(t, "the evacuation has already ended: `baton result --evacuation stamp-a` shows how",
		next(fmt.Errorf("pause evacuate-stamp-a refused: %w",
			serviceerror.NewNotFound("workflow execution already completed"))).Next)
	refused := next(fmt.Errorf("pause evacuate-stamp-a refused: %w",
		temporal.NewApplicationError("already paused by bob (look)", "")))
	require.Equal(t, "pause evacuate-stamp-a refused: already paused by bob (look)", refused.Error)
	require.Empty(t, refused.Next)
}
