package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/workflows"
)

func TestCLIRefusesBadInputBeforeCallingAnything(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"failover without account", []string{"failover", "--to", "stamp-b"}, "--account and --to are required"},
		{"failover without destination", []string{"failover", "--account", "a"}, "--account and --to are required"},
		{"same from and to", []string{"failover", "--account", "a", "--from", "stamp-b", "--to", "stamp-b"}, "two different stamps"},
		{"negative group size", []string{"failover", "--account", "a", "--to", "stamp-b", "--group-size", "-1"}, "--group-size -1"},
		{"stray argument", []string{"failover", "extra", "--account", "a", "--to", "b"}, "unknown command"},
		{"unknown flag", []string{"failover", "--acount", "a"}, "unknown flag: --acount"},
		{"status without account", []string{"status"}, "--account is required"},
		{"unknown command", []string{"fail-over"}, "unknown command"},
		{"bad mode", []string{"failover", "--account", "a", "--to", "b", "--mode", "sideways"}, `--mode "sideways"`},
		{"bad output", []string{"status", "--account", "a", "--output", "yaml"}, `--output "yaml"`},
		{"zero approval timeout", []string{"failover", "--account", "a", "--to", "b", "--approval-timeout", "0s"}, "--approval-timeout 0s"},
		{"approve without reason", []string{"approve", "acct"}, "--reason is required"},
		{"abort without account", []string{"abort", "--reason", "x"}, "accepts 1 arg"},
		{"watch without account", []string{"watch"}, "accepts 1 arg"},
		{"list with zero limit", []string{"list", "--limit", "0"}, "--limit 0"},
		{"watch with zero period", []string{"watch", "a", "--every", "0s"}, "--every 0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestHelpDescribesTheCommands(t *testing.T) {
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"failover", "--help"})
	require.NoError(t, root.Execute())
	for _, want := range []string{"--account", "--to", "--from", "--wait", "flush-send", "Example"} {
		require.Contains(t, out.String(), want)
	}
}

func TestProgressLine(t *testing.T) {
	p := workflows.Progress{Phase: workflows.PhaseFlush, Partitions: 10, Done: map[string]int{workflows.StepFence: 10, workflows.StepFlushSend: 5}}
	line := progressLine(p, p.StartedAt.Add(1500*time.Millisecond))
	require.Contains(t, line, "fence [##########] 10/10")
	require.Contains(t, line, "flush-send [#####-----] 5/10")
	require.Contains(t, line, "promote [----------] 0/10")
	require.Contains(t, line, "1.5s")
}

func TestWorkflowIDAcceptsAccountOrID(t *testing.T) {
	require.Equal(t, "failover-acct-1", workflowID("acct-1"))
	require.Equal(t, "failover-acct-1", workflowID("failover-acct-1"))
}
