package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/workflows"
)

// newRoot is baton's command tree, for tests.
func newRoot() *cobra.Command {
	root, _ := newRootWithGlobals()
	return root
}

// run runs the command line and returns its error, unprinted.
func run(args []string) error {
	root := newRoot()
	root.SetArgs(args)
	return root.Execute()
}

func TestCLIRefusesBadInputBeforeCallingAnything(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{
			"failover without account",
			[]string{"failover", "--to", "stamp-b"},
			"no account: name it, baton failover ACCOUNT --to STAMP",
		},
		{"failover without destination", []string{"failover", "a"}, "no destination: name the stamp to fail over to"},
		{"failover without destination, --account", []string{"failover", "--account", "a"}, "no destination"},
		{"same from and to", []string{"failover", "a", "--from", "stamp-b", "--to", "stamp-b"}, "two different stamps"},
		{"negative group size", []string{"failover", "a", "--to", "stamp-b", "--group-size", "-1"}, "--group-size -1"},
		{
			"two accounts",
			[]string{"failover", "a", "extra", "--to", "b"},
			`2 arguments "a extra" where one account was expected`,
		},
		{
			"argument and --account differ",
			[]string{"failover", "extra", "--account", "a", "--to", "b"},
			`the account is given twice, as "extra" and as --account "a": give it once`,
		},
		{"unknown flag", []string{"failover", "--acount", "a"}, "unknown flag: --acount"},
		{"status without account", []string{"status"}, "no account: name it, baton status ACCOUNT"},
		{"status with two accounts", []string{"status", "a", "b"}, "where one account was expected"},
		{
			"status: argument and --account differ",
			[]string{"status", "a", "--account", "b"},
			"the account is given twice",
		},
		{"unknown command", []string{"fail-over"}, "unknown command"},
		{"bad mode", []string{"failover", "a", "--to", "b", "--mode", "sideways"}, `--mode "sideways"`},
		{"bad output", []string{"status", "a", "--output", "yaml"}, `--output "yaml"`},
		{"bad output, --account", []string{"status", "--account", "a", "--output", "yaml"}, `--output "yaml"`},
		{
			"zero approval timeout",
			[]string{"failover", "a", "--to", "b", "--approval-timeout", "0s"},
			"--approval-timeout 0s",
		},
		{
			"zero flush deadline",
			[]string{"failover", "a", "--to", "b", "--flush-deadline", "0s"},
			"--flush-deadline 0s: must be positive",
		},
		{
			"negative flush deadline",
			[]string{"failover", "a", "--to", "b", "--flush-deadline", "-90s"},
			"--flush-deadline -1m30s: must be positive",
		},
		{
			"flush deadline not a duration",
			[]string{"failover", "a", "--to", "b", "--flush-deadline", "soon"},
			`invalid argument "soon" for "--flush-deadline"`,
		},
		{"approve without reason", []string{"approve", "acct"}, "--reason is required"},
		{"approve without reason, --account", []string{"approve", "--account", "acct"}, "--reason is required"},
		{
			"abort without account",
			[]string{"abort", "--reason", "x"},
			"no account: name it, baton abort ACCOUNT --reason WHY",
		},
		{
			"reject: argument and --account differ",
			[]string{"reject", "a", "--account", "b", "--reason", "x"},
			"the account is given twice",
		},
		{"watch without account", []string{"watch"}, "no account: name it, baton watch ACCOUNT"},
		{"result without account", []string{"result"}, "no account: name it, baton result ACCOUNT"},
		{"result with two accounts", []string{"result", "a", "b"}, "where one account was expected"},
		{"list with two accounts", []string{"list", "a", "b"}, "where one account was expected"},
		{"list: argument and --account differ", []string{"list", "a", "--account", "b"}, "the account is given twice"},
		{"list with zero limit", []string{"list", "--limit", "0"}, "--limit 0"},
		{"watch with zero period", []string{"watch", "a", "--every", "0s"}, "--every 0s"},
		{"watch with zero period, --account", []string{"watch", "--account", "a", "--every", "0s"}, "--every 0s"},
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
	for _, want := range []string{
		"baton failover ACCOUNT --to STAMP", "--account", "--to", "--from", "--wait", "--flush-deadline", "flush-send",
		"Example",
	} {
		require.Contains(t, out.String(), want)
	}
}

func TestProgressLine(t *testing.T) {
	p := workflows.Progress{
		Phase:      workflows.PhaseFlush,
		Partitions: 10,
		Done:       map[string]int{workflows.StepFence: 10, workflows.StepFlushSend: 5},
	}
	line := progressLine(p, p.StartedAt.Add(1500*time.Millisecond))
	require.Contains(t, line, "fence [##########] 10/10")
	require.Contains(t, line, "flush-send [#####-----] 5/10")
	require.Contains(t, line, "promote [----------] 0/10")
	require.Contains(t, line, "1.5s")
}

func TestWorkflowIDAcceptsAccountOrID(t *testing.T) {
	require.Equal(t, "failover-acct-1", workflowID("acct-1", workflows.FailoverWorkflowID))
	require.Equal(t, "failover-acct-1", workflowID("failover-acct-1", workflows.FailoverWorkflowID))
}

// TestAccountArgumentOrAlias: the account comes from the argument or from
// --account, the same either way.
func TestAccountArgumentOrAlias(t *testing.T) {
	for _, args := range [][]string{
		{"acct-1"}, {"--account", "acct-1"}, {"acct-1", "--account", "acct-1"}, {"--account=acct-1"},
	} {
		var got string
		cmd := &cobra.Command{Use: "x ACCOUNT", SilenceErrors: true, SilenceUsage: true}
		a := addAccountArg(cmd, "account", false)
		cmd.RunE = func(*cobra.Command, []string) error { got = a.value; return nil }
		cmd.SetArgs(args)
		require.NoError(t, cmd.Execute(), "%v", args)
		require.Equal(t, "acct-1", got, "%v", args)
	}
	// Optional (list): no account is all accounts.
	cmd := &cobra.Command{Use: "list [ACCOUNT]", RunE: func(*cobra.Command, []string) error { return nil }}
	a := addAccountArg(cmd, "account", true)
	cmd.SetArgs(nil)
	require.NoError(t, cmd.Execute())
	require.Empty(t, a.value)

	// The real status command looks up the account given either way.
	for _, args := range [][]string{{"status", "acct-1"}, {"status", "--account", "acct-1"}} {
		err := run(append(args, "--insecure", "--location", "http://127.0.0.1:1", "--timeout", "10s"))
		require.ErrorContains(t, err, "look up acct-1", "%v", args)
	}
}

// TestNoSilentPlaintext: a command that calls the location service needs
// a client certificate or an explicit --insecure, which it says loudly on
// stderr; a URL that contradicts the choice is refused before any call.
func TestNoSilentPlaintext(t *testing.T) {
	t.Setenv(auth.EnvCertsDir, "")
	t.Setenv(auth.EnvInsecure, "")
	_, errOut, code := batonCLI("status", "acct-1", "--location", "http://127.0.0.1:1")
	require.Equal(t, 1, code)
	require.Equal(t, "baton: no client certificate: pass --certs-dir DIR (env BATON_CERTS_DIR; stampd certs create-client "+
		"operator --dir DIR makes one), or --insecure (env BATON_INSECURE=true) for services started with --insecure\n", errOut)

	_, errOut, code = batonCLI("status", "acct-1", "--insecure", "--location", "http://127.0.0.1:1", "--timeout", "5s")
	require.Equal(t, 1, code)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	require.Len(t, lines, 2, errOut)
	require.Equal(t, "baton: WARNING: "+auth.InsecureWarning, lines[0])
	require.Contains(t, lines[1], "look up acct-1")

	_, errOut, code = batonCLI("maintenance", "--insecure", "--location", "https://127.0.0.1:1")
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "a service started with --insecure is http://")
}
