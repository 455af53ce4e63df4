package webhook

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/workflows"
)

// reprotectConfig has one reprotect rule: the old primary is back, make it
// the replica.
const reprotectConfig = `
cooldown: 1h
rules:
  - name: stamp-recovered
    action: reprotect
    matchers: ['alertname="StampRecovered"']
    account_label: account
`

func TestReprotectRuleConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(reprotectConfig))
	require.NoError(t, err)
	require.Equal(t, ActionReprotect, cfg.Rules[0].Action)
	r, ok, err := cfg.Route(map[string]string{"alertname": "StampRecovered", "account": "acct-1"})
	require.True(t, ok)
	require.NoError(t, err, "a reprotect rule needs the account only")
	require.Equal(t, "acct-1", r.Account)
	_, ok, err = cfg.Route(map[string]string{"alertname": "StampRecovered"})
	require.True(t, ok)
	require.ErrorContains(t, err, `no "account" label naming the account`)

	cfg, err = ParseConfig([]byte("rules:\n  - name: r\n    matchers: ['a=\"b\"']\n    account: a\n    target: b\n"))
	require.NoError(t, err)
	require.Equal(t, ActionFailover, cfg.Rules[0].Action, "the default action")

	rule := "rules:\n  - name: r\n    matchers: ['alertname=\"A\"']\n    account_label: account\n"
	for _, tt := range []struct{ name, yaml, want string }{
		{"unknown action", rule + "    action: failback\n    target: b\n", `action "failback": use failover (the default) or reprotect`},
		{"failover without target", rule + "    action: failover\n", "exactly one of target_label and target"},
		{"reprotect without account", "rules:\n  - name: r\n    action: reprotect\n    matchers: ['a=\"b\"']\n",
			"exactly one of account_label and account"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			require.ErrorContains(t, err, tt.want)
		})
	}
	for _, key := range []string{"target: b", "target_label: to", "from_label: stamp", "mode: planned",
		"approval_required: false", "approval_timeout: 1h", "cancel_on_resolve: true", "flush_deadline: 1m"} {
		t.Run("reprotect refuses "+key, func(t *testing.T) {
			_, err := ParseConfig([]byte(rule + "    action: reprotect\n    " + key + "\n"))
			require.ErrorContains(t, err, "does not apply to action reprotect")
		})
	}
}

// TestAlertStartsOneReprotect: after a failover, alerts of a reprotect
// rule start the account's reprotect once; repeats are duplicates (also at
// a receiver that never saw them), a new alert attaches, a resolved one is
// ignored; once the reprotect completed, the cooldown refuses automatic
// triggers.
func TestAlertStartsOneReprotect(t *testing.T) {
	e := temporalEnv(t)
	ctx := context.Background()
	account := uniq("wh-reprotect")
	completeFailover(t, e, e.newHandler(t), account) // stamp-a -> stamp-b: unprotected
	// Demote on the old primary is refused (retryably) until the fault is
	// cleared: the reprotect stays running while alerts come in.
	old := e.stamp[testsuite.StampA]
	require.NoError(t, old.AddFault(ctx, stamp.Fault{Scope: "control", Account: account, Op: stamp.CtlDemote,
		ErrorRate: 1}))
	t.Cleanup(func() { _ = old.ClearFaults(context.Background()) })
	cfg, err := ParseConfig([]byte(reprotectConfig))
	require.NoError(t, err)
	withConfig := func(o *Options) { o.Config = cfg }
	h := e.newHandler(t, withConfig)
	recovered := func(instance string) Alert {
		return alert(StatusFiring, "alertname", "StampRecovered", "account", account, "stamp", "stamp-a",
			"instance", instance)
	}

	body := notification(StatusFiring, recovered("a1"), recovered("a2"))
	code, resp := post(t, h, PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted, OutcomeAttached}, outcomes(resp))
	run := resp.Results[0].RunID
	require.Equal(t, run, resp.Results[1].RunID)
	require.Equal(t, workflows.ReprotectWorkflowID(account), resp.Results[0].WorkflowID)
	require.Contains(t, resp.Results[0].Message, "reprotect of "+account+" started")
	require.Equal(t, "recorded in the running reprotect (2 alerts)", resp.Results[1].Message)

	waitReprotectPhase(t, e, account, workflows.PhaseDemote)
	code, resp = post(t, h, PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeDuplicate, OutcomeDuplicate}, outcomes(resp))
	h2 := e.newHandler(t, withConfig)
	code, resp = post(t, h2, PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeDuplicate, OutcomeDuplicate}, outcomes(resp))
	code, resp = post(t, h2, PathAlertmanager, notification(StatusFiring, recovered("a3")))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeAttached}, outcomes(resp))
	require.Equal(t, run, resp.Results[0].RunID)
	resolved := alert(StatusResolved, "alertname", "StampRecovered", "account", account, "instance", "a1")
	code, resp = post(t, h2, PathAlertmanager, notification(StatusResolved, resolved))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeIgnored}, outcomes(resp))

	d, err := e.c.DescribeWorkflow(ctx, workflows.ReprotectWorkflowID(account), run)
	require.NoError(t, err)
	trig, _ := d.TypedSearchAttributes.GetKeyword(workflows.SearchTrigger)
	require.Equal(t, string(workflows.TriggerAlert), trig)

	require.NoError(t, old.ClearFaults(ctx))
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var res workflows.ReprotectResult
	err = e.c.GetWorkflow(rctx, workflows.ReprotectWorkflowID(account), run).Get(rctx, &res)
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		_ = ae.Details(&res)
	}
	require.NoError(t, err, "%+v", res)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.Equal(t, workflows.TriggerAlert, res.Trigger)
	require.Equal(t, 3, res.AlertsSeen)
	require.Len(t, res.Alerts, 3)
	require.Contains(t, res.RequestedBy, `webhook rule "stamp-recovered"`)
	a, err := e.loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.False(t, a.Unprotected, "protected again")

	code, resp = post(t, h, PathAlertmanager, notification(StatusFiring, recovered("a4")))
	require.Equal(t, http.StatusConflict, code, resp.Message)
	require.Equal(t, []string{OutcomeCooldown}, outcomes(resp))
	require.Contains(t, resp.Message, "reprotect of "+account+" completed at")
	require.Contains(t, resp.Message, "a manual `baton reprotect` can override")

	require.Equal(t, 1.0, count(h.Metrics().ReprotectsStarted.WithLabelValues("stamp-recovered")))
	require.Equal(t, 1.0, count(h.Metrics().Attached.WithLabelValues("stamp-recovered", OutcomeAttached)))
	require.Equal(t, 2.0, count(h.Metrics().Attached.WithLabelValues("stamp-recovered", OutcomeDuplicate)))
	require.Equal(t, 1.0, count(h2.Metrics().Attached.WithLabelValues("stamp-recovered", OutcomeAttached)))
}

// waitReprotectPhase polls until the account's reprotect reports phase.
func waitReprotectPhase(t *testing.T, e *tenv, account string, phase workflows.Phase) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last workflows.Phase
	err := testsuite.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		v, err := e.c.QueryWorkflow(ctx, workflows.ReprotectWorkflowID(account), "", workflows.QueryProgress)
		if err != nil || v.Get(&last) != nil {
			return false, nil
		}
		return last == phase, nil
	})
	require.NoError(t, err, "reprotect of %s never reached phase %s (last %q)", account, phase, last)
}
