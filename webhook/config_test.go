package webhook

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/workflows"
)

func TestParseMatcher(t *testing.T) {
	tests := []struct {
		in      string
		labels  map[string]string
		want    bool
		wantErr string
	}{
		{`alertname="StampDown"`, map[string]string{"alertname": "StampDown"}, true, ""},
		{`alertname=StampDown`, map[string]string{"alertname": "StampDown"}, true, ""},
		{` alertname = "StampDown" `, map[string]string{"alertname": "StampDown"}, true, ""},
		{`alertname="StampDown"`, map[string]string{"alertname": "StampDownish"}, false, ""},
		{`alertname="StampDown"`, map[string]string{}, false, ""},
		{`team!="sandbox"`, map[string]string{"team": "storage"}, true, ""},
		{`team!="sandbox"`, map[string]string{}, true, ""},
		{`team!="sandbox"`, map[string]string{"team": "sandbox"}, false, ""},
		{`severity=~"critical|page"`, map[string]string{"severity": "page"}, true, ""},
		{`severity=~"critical|page"`, map[string]string{"severity": "critical"}, true, ""},
		{`severity=~"critical|page"`, map[string]string{"severity": "critical-ish"}, false, "" /* anchored */},
		{`severity=~critical|page`, map[string]string{"severity": "pager"}, false, ""},
		{`severity!~"info|warning"`, map[string]string{"severity": "critical"}, true, ""},
		{`severity!~"info|warning"`, map[string]string{"severity": "info"}, false, ""},
		{`empty=""`, map[string]string{}, true, ""},
		{`quote="a \"b\""`, map[string]string{"quote": `a "b"`}, true, ""},
		{`alertname`, nil, false, "want name=value"},
		{`="x"`, nil, false, "want name=value"},
		{`1abc="x"`, nil, false, "not a label name"},
		{`a-b="x"`, nil, false, "not a label name"},
		{`a=~"("`, nil, false, "missing closing )"},
		{`a="unterminated`, nil, false, "bad quoted value"},
		{`a!x`, nil, false, "want name=value"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			m, err := ParseMatcher(tt.in)
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, m.Matches(tt.labels))
		})
	}
}

func TestParseConfigRefusesBadConfigs(t *testing.T) {
	const rule = "rules:\n  - name: r\n    matchers: ['alertname=\"A\"']\n"
	tests := []struct {
		name, yaml, wantErr string
	}{
		{"unknown key", rule + "    acount_label: account\n    target: b\n", "field acount_label not found"},
		{"no matchers", "rules:\n  - name: r\n    account: a\n    target: b\n", "no matchers"},
		{"no name", "rules:\n  - matchers: ['a=\"b\"']\n    account: a\n    target: b\n", "rule 1: no name"},
		{"no account", rule + "    target: b\n", "exactly one of account_label and account"},
		{
			"account twice",
			rule + "    account: a\n    account_label: acct\n    target: b\n",
			"exactly one of account_label and account",
		},
		{"no target", rule + "    account: a\n", "exactly one of target_label and target"},
		{"bad mode", rule + "    account: a\n    target: b\n    mode: sideways\n", `mode "sideways"`},
		{
			"bad regex",
			"rules:\n  - name: r\n    matchers: ['a=~\"(\"']\n    account: a\n    target: b\n",
			"missing closing",
		},
		{"bad duration", rule + "    account: a\n    target: b\n    cooldown: soon\n", `invalid duration "soon"`},
		{"negative duration", "cooldown: -1m\n" + rule + "    account: a\n    target: b\n", "negative"},
		{
			"same name twice",
			rule + "    account: a\n    target: b\n  - name: r\n    matchers: ['a=\"b\"']\n    account: a\n    target: b\n",
			"name used twice",
		},
		{"refuses everything", "trigger:\n  disabled: true\n", "would refuse everything"},
		{"not yaml", "rules: [", "parse YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := ParseConfig(
		[]byte("rules:\n  - name: r\n    matchers: ['alertname=\"A\"']\n    account: a\n    target: b\n"),
	)
	require.NoError(t, err)
	r := cfg.Rules[0]
	require.Equal(t, workflows.Mode("planned"), r.Mode)
	require.True(t, approvalRequired(r.ApprovalRequired), "approval is required unless the config says otherwise")
	require.False(t, r.CancelOnResolve)
	require.Equal(t, DefaultCooldown, cfg.cooldown(r.Cooldown))
	require.True(t, approvalRequired(cfg.Trigger.ApprovalRequired))
}

// TestExampleConfigLoads keeps examples/webhook.yaml valid.
func TestExampleConfigLoads(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("..", "examples", "webhook.yaml"))
	require.NoError(t, err)
	require.NotEmpty(t, cfg.Rules)
	// A StampDown alert about the stamp evacuates it; one about an account
	// on it fails that account over.
	r, ok, err := cfg.Route(map[string]string{"alertname": "StampDown", "severity": "page", "stamp": "stamp-a"})
	require.True(t, ok)
	require.NoError(t, err)
	require.Equal(t, "stamp-evacuate", r.Rule.Name)
	require.Equal(t, "evacuate-stamp-a", r.Rule.action().workflowID(r.subject()))
	r, ok, err = cfg.Route(map[string]string{"alertname": "StampDown", "severity": "page", "stamp": "stamp-a",
		"account": "acct-1", "failover_to": "stamp-b"})
	require.True(t, ok)
	require.NoError(t, err)
	require.Equal(t, "stamp-down", r.Rule.Name)
	_, err = LoadConfig(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorContains(t, err, "read webhook config")
}

// TestRouteEachRule: every way a rule maps an alert, and what makes an
// alert unmatched or unmapped.
func TestRouteEachRule(t *testing.T) {
	cfg, err := ParseConfig([]byte(testConfig))
	require.NoError(t, err)
	tests := []struct {
		name    string
		labels  map[string]string
		want    Route // Rule compared by name
		rule    string
		matched bool
		wantErr string
	}{
		{"labels name account, target and source",
			map[string]string{
				"alertname":   "StampDown",
				"severity":    "page",
				"account":     "acct-1",
				"failover_to": "stamp-b",
				"stamp":       "stamp-a",
			},
			Route{Account: "acct-1", To: "stamp-b", From: "stamp-a"}, "stamp-down", true, ""},
		{"regex matcher, other alternative",
			map[string]string{
				"alertname":   "StampDown",
				"severity":    "critical",
				"account":     "acct-1",
				"failover_to": "stamp-b",
			},
			Route{Account: "acct-1", To: "stamp-b"}, "stamp-down", true, ""},
		{"regex matcher refuses",
			map[string]string{
				"alertname":   "StampDown",
				"severity":    "warning",
				"account":     "acct-1",
				"failover_to": "stamp-b",
			},
			Route{}, "", false, ""},
		{"fixed target",
			map[string]string{"alertname": "AccountLatencyHigh", "account": "acct-2"},
			Route{Account: "acct-2", To: "stamp-b"}, "latency", true, ""},
		{"fixed account",
			map[string]string{"alertname": "ReplicationLag", "team": "storage"},
			Route{Account: "fixed-acct", To: "stamp-b"}, "replication-lag", true, ""},
		{"negative matcher refuses",
			map[string]string{"alertname": "ReplicationLag", "team": "sandbox"},
			Route{}, "", false, ""},
		{"no rule",
			map[string]string{"alertname": "DiskFull"},
			Route{}, "", false, ""},
		{"account label missing",
			map[string]string{"alertname": "StampDown", "severity": "page", "failover_to": "stamp-b"},
			Route{}, "stamp-down", true, `no "account" label naming the account`},
		{"target label missing",
			map[string]string{"alertname": "StampDown", "severity": "page", "account": "acct-1"},
			Route{}, "stamp-down", true, `no "failover_to" label naming the stamp`},
		{"account not a name",
			map[string]string{"alertname": "AccountLatencyHigh", "account": "two words"},
			Route{}, "latency", true, `account "two words" is not a valid name`},
		{"alert about the target itself",
			map[string]string{
				"alertname":   "StampDown",
				"severity":    "page",
				"account":     "acct-1",
				"failover_to": "stamp-b",
				"stamp":       "stamp-b",
			},
			Route{}, "stamp-down", true, "names it as the destination too"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, matched, err := cfg.Route(tt.labels)
			require.Equal(t, tt.matched, matched)
			if tt.matched {
				require.Equal(t, tt.rule, r.Rule.Name)
			}
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			r.Rule = nil
			require.Equal(t, tt.want, r)
		})
	}
	// Per-rule settings.
	byName := map[string]Rule{}
	for _, r := range cfg.Rules {
		byName[r.Name] = r
	}
	require.Equal(t, workflows.Mode("unplanned"), byName["stamp-down"].Mode)
	require.True(t, approvalRequired(byName["stamp-down"].ApprovalRequired))
	require.False(t, approvalRequired(byName["latency"].ApprovalRequired))
	require.Equal(t, time.Hour, cfg.cooldown(byName["stamp-down"].Cooldown))
	require.Zero(t, cfg.cooldown(byName["replication-lag"].Cooldown))
}

func TestLoadSecret(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "token")
	require.NoError(t, os.WriteFile(f, []byte("  tok\n"), 0o600))
	t.Setenv("BATON_TEST_SECRET", "from-env")
	got, err := LoadSecret(f, "BATON_TEST_SECRET")
	require.NoError(t, err)
	require.Equal(t, "tok", string(got), "the file wins and is trimmed")
	got, err = LoadSecret("", "BATON_TEST_SECRET")
	require.NoError(t, err)
	require.Equal(t, "from-env", string(got))
	got, err = LoadSecret("", "BATON_TEST_UNSET")
	require.NoError(t, err)
	require.Nil(t, got)
	empty := filepath.Join(dir, "empty")
	require.NoError(t, os.WriteFile(empty, []byte("\n"), 0o600))
	_, err = LoadSecret(empty, "")
	require.ErrorContains(t, err, "is empty")
	_, err = LoadSecret(filepath.Join(dir, "missing"), "")
	require.ErrorContains(t, err, "read secret")
}
