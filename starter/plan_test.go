package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// execCLI runs the baton CLI in-process and returns what it printed.
func execCLI(args ...string) (string, error) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func writePlan(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	return path
}

const patentPlan = "../examples/plans/patent.yaml"

func TestPlanValidate(t *testing.T) {
	out, err := execCLI("plan", "validate", patentPlan)
	require.NoError(t, err)
	require.Equal(t, "plan patent-example is valid: 3 components, 6 steps\n", out)

	out, err = execCLI("plan", "validate", "../examples/plans/shop.yaml", "--set", "ACCOUNT=acct-9")
	require.NoError(t, err)
	require.Equal(t, "plan shop is valid: 13 components, 26 steps\n", out)

	path := writePlan(t, "warn.yaml", `name: w
components:
  - {name: a, offline: {command: ["true"]}, online: {wait: 1s}}
`)
	out, err = execCLI("plan", "validate", path)
	require.NoError(t, err)
	require.Equal(t, `plan w is valid: 1 components, 2 steps
warning: component a has no restore action: an aborted failover leaves it offline on the source
warning: component a: the offline action has no expected duration: predicted as 0s
`, out)

	out, err = execCLI("plan", "validate", patentPlan, "-o", "json")
	require.NoError(t, err)
	var v map[string]any
	require.NoError(t, json.Unmarshal([]byte(out), &v))
	require.Equal(t, true, v["valid"])
}

func TestPlanCommandsRefuseBadPlans(t *testing.T) {
	tests := []struct {
		name    string
		text    string
		args    []string
		wantErr string
	}{
		{
			"cyclic",
			"name: c\ncomponents:\n  - {name: a, depends_on: [b], offline: {wait: 1s}, online: {wait: 1s}}\n  - {name: b, depends_on: [a], offline: {wait: 1s}, online: {wait: 1s}}\n",
			nil,
			"invalid plan: dependency cycle: a -> b -> a",
		},
		{"malformed YAML", "name: c\ncomponents: [\n", nil, "malformed YAML"},
		{
			"unknown dependency",
			"name: c\ncomponents:\n  - {name: web, depends_on: [api], offline: {wait: 1s}, online: {wait: 1s}}\n",
			nil,
			"component web depends on api, which is not in the plan",
		},
		{
			"missing action",
			"name: c\ncomponents:\n  - {name: web, offline: {wait: 1s}}\n",
			nil,
			"component web has no online action",
		},
		{
			"misspelt field",
			"name: c\ncomponents:\n  - {name: web, offline: {wait: 1s}, onlnie: {wait: 1s}}\n",
			nil,
			"field onlnie not found",
		},
		{"unset variable", "name: ${APP}\ncomponents: []\n", nil, "variables APP are not set"},
		{"bad set", "name: c\n", []string{"--set", "NOVALUE"}, `--set "NOVALUE": write NAME=VALUE`},
	}
	for _, tt := range tests {
		for _, sub := range []string{"validate", "simulate", "run"} {
			t.Run(tt.name+"/"+sub, func(t *testing.T) {
				path := writePlan(t, "p.yaml", tt.text)
				_, err := execCLI(append([]string{"plan", sub, path}, tt.args...)...)
				require.Error(t, err)
				require.Contains(t, err.Error(), tt.wantErr)
			})
		}
	}
}

func TestPlanFlagsAndArgumentsAreChecked(t *testing.T) {
	tests := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"plan", "validate"}, "accepts 1 arg(s), received 0"},
		{[]string{"plan", "simulate", "a.yaml", "b.yaml"}, "accepts 1 arg(s), received 2"},
		{[]string{"plan", "validate", "does-not-exist.yaml"}, "read plan: open does-not-exist.yaml"},
		{
			[]string{"plan", "simulate", patentPlan, "--strategy", "fast"},
			`strategy "fast": use overlap (the default), sequential or barrier`,
		},
		{[]string{"plan", "simulate", patentPlan, "--source-slots", "-2"}, "concurrency source -2"},
		{[]string{"plan", "simulate", patentPlan, "--width", "5"}, "--width 5"},
		{[]string{"plan", "abort", "shop"}, "--reason is required"},
		{[]string{"plan", "status"}, "accepts 1 arg(s)"},
		{[]string{"plan", "validate", patentPlan, "--wait"}, "unknown flag: --wait"},
	}
	for _, tt := range tests {
		_, err := execCLI(tt.args...)
		require.Error(t, err, "%v", tt.args)
		require.Contains(t, err.Error(), tt.wantErr, "%v", tt.args)
	}
	// main reports them and exits non-zero through run.
	require.Error(t, run([]string{"plan", "validate", "does-not-exist.yaml"}))
}

func TestPlanSimulatePrintsGanttCriticalPathAndBaselines(t *testing.T) {
	out, err := execCLI("plan", "simulate", patentPlan, "--source-slots", "1", "--target-slots", "1", "--width", "40")
	require.NoError(t, err)
	require.Equal(t, `plan patent-example: 3 components, 6 steps; strategy overlap; concurrency: source 1, target 1

step          start       end  |0s                                   10s|
offline A        0s        2s  |########                                |
offline B        2s        4s  |        ########                        |
offline C        4s        6s  |                ########                |
online B         4s        6s  |                ========                |
online C         6s        8s  |                        ========        |
online A         8s       10s  |                                ========|
                                legend: # offline on the source, = online on the target, ~ restore on the source

critical path (8s): offline A -> offline B -> online B -> online A

predicted (overlap):           10s
sequential baseline:           12s  1.20x the overlapped schedule (2s more)
barrier-group baseline:        12s  1.20x the overlapped schedule (2s more)
`, out)

	out, err = execCLI("plan", "simulate", patentPlan, "-o", "json")
	require.NoError(t, err)
	var sim simulation
	require.NoError(t, json.Unmarshal([]byte(out), &sim))
	require.Equal(t, int64(8000), sim.PredictedMillis)
	require.Equal(t, sim.CriticalPathMillis, sim.PredictedMillis, "no limit: the critical path")
	require.Equal(t, int64(12000), sim.SequentialMillis)
	require.Len(t, sim.Steps, 6)
	require.Equal(t, simulatedStep{Step: "offline C", StartMillis: 2000, EndMillis: 4000}, sim.Steps[2])
}

func TestPlanHelp(t *testing.T) {
	out, err := execCLI("plan", "--help")
	require.NoError(t, err)
	for _, want := range []string{"validate", "simulate", "run", "status", "abort", "critical path"} {
		require.Contains(t, out, want)
	}
	out, err = execCLI("plan", "run", "--help")
	require.NoError(t, err)
	for _, want := range []string{"--wait", "--set", "--strategy", "--source-slots", "app-failover-<plan name>"} {
		require.Contains(t, out, want)
	}
}
