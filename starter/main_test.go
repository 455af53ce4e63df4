package main

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
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
