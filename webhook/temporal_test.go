package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/workflows"
)

// These tests run against the real Temporal dev server and the real
// workflow (see env_test.go); each uses its own account.

var seq atomic.Int64

// uniq makes an account name unique in this test process (the dev server
// is shared by every test, also with -count=N).
func uniq(name string) string { return fmt.Sprintf("%s-%d", name, seq.Add(1)) }

func stampDown(status, account string, extra ...string) Alert {
	kv := append(
		[]string{
			"alertname",
			"StampDown",
			"severity",
			"page",
			"account",
			account,
			"failover_to",
			"stamp-b",
			"stamp",
			"stamp-a",
		},
		extra...)
	return alert(status, kv...)
}

// TestFiringAlertsStartOneFailoverRepeatsAttach: two alerts of one outage
// in one notification start one failover; a repeat of the notification is
// recognized as duplicates, also by a receiver that never saw it (the
// workflow's own record), and a new alert attaches.
func TestFiringAlertsStartOneFailoverRepeatsAttach(t *testing.T) {
	e := temporalEnv(t)
	account := uniq("wh-attach")
	e.provision(t, account)
	h := e.newHandler(t)

	body := notification(
		StatusFiring,
		stampDown(StatusFiring, account, "instance", "a1"),
		stampDown(StatusFiring, account, "instance", "a2"),
	)
	code, resp := post(t, h, PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted, OutcomeAttached}, outcomes(resp))
	run := resp.Results[0].RunID
	require.NotEmpty(t, run)
	require.Equal(t, run, resp.Results[1].RunID)
	require.Equal(t, "failover-"+account, resp.Results[0].WorkflowID)

	code, resp = post(t, h, PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeDuplicate, OutcomeDuplicate}, outcomes(resp))

	// Another replica of the receiver (nothing remembered): the workflow
	// says it already has them.
	h2 := e.newHandler(t)
	code, resp = post(t, h2, PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeDuplicate, OutcomeDuplicate}, outcomes(resp))

	code, resp = post(
		t,
		h2,
		PathAlertmanager,
		notification(StatusFiring, stampDown(StatusFiring, account, "instance", "a3")),
	)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeAttached}, outcomes(resp))
	require.Equal(t, run, resp.Results[0].RunID)

	e.waitPhase(t, account, workflows.PhaseApproval)
	p := e.progress(t, account)
	require.Equal(t, 3, p.Alerts)
	require.Equal(t, workflows.ModeUnplanned, p.Mode)
	require.Equal(t, workflows.TriggerAlert, p.Trigger)
	require.True(t, p.AwaitingApproval, "an alert-triggered failover waits for approval")
	require.Equal(t, 1, e.runs(t, account, run))

	require.Equal(t, 1.0, count(h.Metrics().Started.WithLabelValues("stamp-down", string(workflows.ModeUnplanned))))
	require.Equal(t, 1.0, count(h.Metrics().Attached.WithLabelValues("stamp-down", OutcomeAttached)))
	require.Equal(t, 2.0, count(h.Metrics().Attached.WithLabelValues("stamp-down", OutcomeDuplicate)))
	require.Equal(t, 2.0, count(h2.Metrics().Attached.WithLabelValues("stamp-down", OutcomeDuplicate)))

	// Clean up: reject it, so that it does not wait for an hour.
	reject(t, e, account)
}

func reject(t *testing.T, e *tenv, account string) {
	t.Helper()
	ctx := context.Background()
	uh, err := e.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.FailoverWorkflowID(account),
		UpdateName:   workflows.UpdateReject,
		Args:         []any{workflows.Decision{By: t.Name(), Reason: "test over"}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	require.NoError(t, err)
	require.NoError(t, uh.Get(ctx, nil))
}

// TestEachRuleStartsTheFailoverItDescribes: the request the workflow was
// started with follows each rule's mapping.
func TestEachRuleStartsTheFailoverItDescribes(t *testing.T) {
	e := temporalEnv(t)
	h := e.newHandler(t)
	a1, a2 := uniq("wh-rule"), uniq("wh-rule")
	tests := []struct {
		name    string
		account string
		alert   Alert
		want    workflows.FailoverRequest // Account, FromStamp, ToStamp, Mode, Trigger, Approval.Required
		preOK   bool                      // pre-approved by the config
	}{
		{"stamp-down: labels, unplanned, approval", a1, stampDown(StatusFiring, a1),
			workflows.FailoverRequest{
				Account:   a1,
				FromStamp: "stamp-a",
				ToStamp:   "stamp-b",
				Mode:      "unplanned",
				Trigger:   "alert",
				Approval:  workflows.ApprovalPolicy{Required: true},
			}, false},
		{
			"latency: fixed target, planned, pre-approved",
			a2,
			alert(StatusFiring, "alertname", "AccountLatencyHigh", "account", a2),
			workflows.FailoverRequest{Account: a2, ToStamp: "stamp-b", Mode: "planned", Trigger: "alert"},
			true,
		},
		{
			"replication-lag: fixed account",
			"fixed-acct",
			alert(StatusFiring, "alertname", "ReplicationLag", "team", "storage"),
			workflows.FailoverRequest{Account: "fixed-acct", ToStamp: "stamp-b", Mode: "planned", Trigger: "alert",
				Approval: workflows.ApprovalPolicy{Required: true}},
			false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.provision(t, tt.account)
			code, resp := post(t, h, PathAlertmanager, notification(StatusFiring, tt.alert))
			require.Equal(t, http.StatusOK, code, resp.Message)
			require.Equal(t, []string{OutcomeStarted}, outcomes(resp))
			req := e.request(t, tt.account)
			require.Equal(t, tt.want.Account, req.Account)
			require.Equal(t, tt.want.FromStamp, req.FromStamp)
			require.Equal(t, tt.want.ToStamp, req.ToStamp)
			require.Equal(t, tt.want.Mode, req.Mode)
			require.Equal(t, tt.want.Trigger, req.Trigger)
			require.Equal(t, tt.want.Approval.Required, req.Approval.Required)
			require.Equal(t, tt.preOK, req.Approval.PreApproved != nil)
			require.Contains(t, req.RequestedBy, "alertmanager")
			require.Contains(t, req.Reason, tt.alert.Name())
			if tt.preOK {
				res, err := e.result(t, tt.account)
				require.NoError(t, err)
				require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
				require.Len(t, res.Alerts, 1)
				require.Equal(t, tt.alert.Fingerprint, res.Alerts[0].Fingerprint)
				require.Equal(t, SourceAlertmanager, res.Alerts[0].Source)
				return
			}
			e.waitPhase(t, tt.account, workflows.PhaseApproval)
			reject(t, e, tt.account)
		})
	}
}

// TestUnknownAccountIsRefused: an account the directory does not know gets
// a 422 and no workflow.
func TestUnknownAccountIsRefused(t *testing.T) {
	e := temporalEnv(t)
	h := e.newHandler(t)
	code, resp := post(t, h, PathAlertmanager, notification(StatusFiring, stampDown(StatusFiring, "wh-nobody")))
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Equal(t, []string{OutcomeUnknownAccount}, outcomes(resp))
	require.Contains(t, resp.Message, "account wh-nobody is not known")
	_, err := e.c.DescribeWorkflow(context.Background(), workflows.FailoverWorkflowID("wh-nobody"), "")
	require.Error(t, err, "nothing may start for an unknown account")
	require.Equal(t, 1.0, count(h.Metrics().Refused.WithLabelValues("stamp-down", "unknown-account")))

	// Unauthenticated, a valid alert for a real account starts nothing.
	noauth := uniq("wh-noauth")
	e.provision(t, noauth)
	code, _ = send(
		t,
		h,
		PathAlertmanager,
		notification(StatusFiring, stampDown(StatusFiring, noauth)),
		map[string]string{"Authorization": "Bearer wrong"},
	)
	require.Equal(t, http.StatusUnauthorized, code)
	_, err = e.c.DescribeWorkflow(context.Background(), workflows.FailoverWorkflowID(noauth), "")
	require.Error(t, err, "nothing may start without valid credentials")
}

// TestResolvedAlertCancelsPendingFailover: the alert resolves while its
// failover waits for approval; the failover is rejected, nothing touched.
func TestResolvedAlertCancelsPendingFailover(t *testing.T) {
	e := temporalEnv(t)
	account := uniq("wh-resolve")
	e.provision(t, account)
	h := e.newHandler(t)
	code, resp := post(t, h, PathAlertmanager, notification(StatusFiring, stampDown(StatusFiring, account)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	run := resp.Results[0].RunID
	e.waitPhase(t, account, workflows.PhaseApproval)

	// Resolved alerts of a rule that does not cancel are only noted.
	code, resp = post(
		t,
		h,
		PathAlertmanager,
		notification(StatusResolved, alert(StatusResolved, "alertname", "ReplicationLag", "team", "storage")),
	)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeIgnored}, outcomes(resp))
	// A resolved alert while another alert of the account still fires in
	// the same notification does not cancel.
	code, resp = post(t, h, PathAlertmanager, notification(StatusFiring,
		stampDown(StatusResolved, account), stampDown(StatusFiring, account, "instance", "other")))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeGoesOn, OutcomeAttached}, outcomes(resp))
	require.Contains(t, resp.Results[0].Message, "still fire")

	code, resp = post(t, h, PathAlertmanager, notification(StatusResolved, stampDown(StatusResolved, account)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeCancelled}, outcomes(resp))
	require.Equal(t, run, resp.Results[0].RunID)

	res, err := e.result(t, account)
	require.Error(t, err)
	require.Equal(t, workflows.OutcomeRejected, res.Outcome)
	require.Equal(t, DecisionBy, res.Rejection.By)
	require.Equal(t, "alert StampDown resolved", res.Rejection.Reason)
	require.Zero(t, res.FencedAt.Unix()-time.Time{}.Unix(), "nothing was touched")

	// Again: nothing runs any more.
	code, resp = post(t, h, PathAlertmanager, notification(StatusResolved, stampDown(StatusResolved, account)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeNothingToCancel}, outcomes(resp))
	require.Equal(t, 1.0, count(h.Metrics().Cancelled.WithLabelValues("stamp-down", "rejected")))

	// A rejected failover does not start a cooldown: the next alert starts
	// a new one.
	code, resp = post(
		t,
		h,
		PathAlertmanager,
		notification(StatusFiring, stampDown(StatusFiring, account, "instance", "again")),
	)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted}, outcomes(resp))
	require.NotEqual(t, run, resp.Results[0].RunID)
	e.waitPhase(t, account, workflows.PhaseApproval)
	reject(t, e, account)
}

// TestResolvedAlertAfterTheGateGoesOn: once approved, the failover goes
// on; the resolved alert is answered 200 with that note. The source's fence
// is made to fail (retryably) so that the failover is held past its gate.
func TestResolvedAlertAfterTheGateGoesOn(t *testing.T) {
	e := temporalEnv(t)
	account := uniq("wh-past-gate")
	e.provision(t, account)
	h := e.newHandler(t)
	src := e.stamp[testsuite.StampA]
	require.NoError(
		t,
		src.AddFault(
			context.Background(),
			stamp.Fault{Scope: "control", Account: account, Op: stamp.CtlFence, ErrorRate: 1},
		),
	)
	t.Cleanup(func() { _ = src.ClearFaults(context.Background()) })

	code, resp := post(t, h, PathAlertmanager, notification(StatusFiring, stampDown(StatusFiring, account)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	e.waitPhase(t, account, workflows.PhaseApproval)
	ctx := context.Background()
	uh, err := e.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.FailoverWorkflowID(account),
		UpdateName:   workflows.UpdateApprove,
		Args:         []any{workflows.Decision{By: t.Name(), Reason: "go"}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	require.NoError(t, err)
	require.NoError(t, uh.Get(ctx, nil))
	e.waitPhase(t, account, workflows.PhaseFence)

	code, resp = post(t, h, PathAlertmanager, notification(StatusResolved, stampDown(StatusResolved, account)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeGoesOn}, outcomes(resp))
	require.Contains(t, resp.Results[0].Message, "past its approval gate")
	require.Equal(t, 1.0, count(h.Metrics().Cancelled.WithLabelValues("stamp-down", "goes-on")))

	require.NoError(t, src.ClearFaults(ctx))
	res, err := e.result(t, account)
	require.NoError(t, err)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.Nil(t, res.Rejection)
}

// TestResolvedAlertDoesNotCancelAManualFailover: an operator's failover is
// not the alert's to cancel.
func TestResolvedAlertDoesNotCancelAManualFailover(t *testing.T) {
	e := temporalEnv(t)
	account := uniq("wh-manual")
	e.provision(t, account)
	h := e.newHandler(t)
	ctx := context.Background()
	_, err := launch.Failover(ctx, e.c, testTaskQueue, workflows.FailoverRequest{Account: account, ToStamp: "stamp-b",
		RequestedBy: t.Name(), Approval: workflows.ApprovalPolicy{Required: true}})
	require.NoError(t, err)
	e.waitPhase(t, account, workflows.PhaseApproval)
	code, resp := post(t, h, PathAlertmanager, notification(StatusResolved, stampDown(StatusResolved, account)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeGoesOn}, outcomes(resp))
	require.Contains(t, resp.Results[0].Message, `started by trigger "manual"`)
	require.Equal(t, workflows.PhaseApproval, e.progress(t, account).Phase)
	reject(t, e, account)
}

// completeFailover starts a pre-approved failover of account through the
// latency rule and waits until it completed; it returns when it closed.
func completeFailover(t *testing.T, e *tenv, h *Handler, account string) time.Time {
	t.Helper()
	e.provision(t, account)
	code, resp := post(
		t,
		h,
		PathAlertmanager,
		notification(StatusFiring, alert(StatusFiring, "alertname", "AccountLatencyHigh", "account", account)),
	)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted}, outcomes(resp))
	res, err := e.result(t, account)
	require.NoError(t, err)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	d, err := e.c.DescribeWorkflow(context.Background(), workflows.FailoverWorkflowID(account), "")
	require.NoError(t, err)
	return *d.WorkflowCloseTime
}

// TestCooldown: after a failover of the account completed, automatic
// triggers are refused (409, which Alertmanager does not retry) until the
// cooldown ends, then accepted.
func TestCooldown(t *testing.T) {
	e := temporalEnv(t)
	account := uniq("wh-cooldown")
	var mu sync.Mutex
	now := time.Now()
	h := e.newHandler(t, func(o *Options) {
		o.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	})
	setNow := func(t time.Time) { mu.Lock(); defer mu.Unlock(); now = t }
	closed := completeFailover(t, e, h, account)
	first, err := e.c.DescribeWorkflow(context.Background(), workflows.FailoverWorkflowID(account), "")
	require.NoError(t, err)

	// Within the cooldown (1h): refused, also through the plain trigger.
	setNow(closed.Add(59 * time.Minute))
	code, resp := post(
		t,
		h,
		PathAlertmanager,
		notification(
			StatusFiring,
			alert(StatusFiring, "alertname", "AccountLatencyHigh", "account", account, "instance", "2"),
		),
	)
	require.Equal(t, http.StatusConflict, code, resp.Message)
	require.Equal(t, "refused", resp.Status)
	require.Equal(t, []string{OutcomeCooldown}, outcomes(resp))
	require.Contains(t, resp.Message, "failover of "+account+" completed at "+closed.UTC().Format(time.RFC3339))
	require.Contains(
		t,
		resp.Message,
		"automatic triggers refused until "+closed.Add(time.Hour).UTC().Format(time.RFC3339),
	)
	require.Contains(t, resp.Message, "a manual `baton failover` can override")
	code, resp = post(t, h, PathTrigger, []byte(`{"account":"`+account+`","to":"stamp-b","reason":"again"}`))
	require.Equal(t, http.StatusConflict, code, resp.Message)
	require.Equal(t, 1.0, count(h.Metrics().Refused.WithLabelValues("latency", "cooldown")))
	require.Equal(t, 1.0, count(h.Metrics().Refused.WithLabelValues("trigger", "cooldown")))
	require.Equal(t, 1.0, count(h.Metrics().Received.WithLabelValues("alertmanager", "cooldown")))
	d, err := e.c.DescribeWorkflow(context.Background(), workflows.FailoverWorkflowID(account), "")
	require.NoError(t, err)
	require.Equal(t, first.WorkflowExecution.RunID, d.WorkflowExecution.RunID, "nothing started during the cooldown")

	// After it: a new failover starts (its precheck then refuses it: the
	// account is already on stamp-b; the receiver does not second-guess).
	setNow(closed.Add(61 * time.Minute))
	code, resp = post(
		t,
		h,
		PathAlertmanager,
		notification(
			StatusFiring,
			alert(StatusFiring, "alertname", "AccountLatencyHigh", "account", account, "instance", "3"),
		),
	)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted}, outcomes(resp))
	require.NotEqual(t, first.WorkflowExecution.RunID, resp.Results[0].RunID)
	res, err := e.result(t, account)
	require.Error(t, err)
	require.Equal(t, workflows.OutcomeRefused, res.Outcome)
}

// TestManualFailoverOverridesCooldown: in the cooldown an alert is refused
// but `baton failover` (a manual start) is not.
func TestManualFailoverOverridesCooldown(t *testing.T) {
	e := temporalEnv(t)
	account := uniq("wh-override")
	h := e.newHandler(t)
	completeFailover(t, e, h, account)
	code, resp := post(
		t,
		h,
		PathAlertmanager,
		notification(
			StatusFiring,
			alert(StatusFiring, "alertname", "AccountLatencyHigh", "account", account, "instance", "2"),
		),
	)
	require.Equal(t, http.StatusConflict, code, resp.Message)
	run, err := launch.Failover(context.Background(), e.c, testTaskQueue, workflows.FailoverRequest{
		Account:     account,
		ToStamp:     "stamp-b",
		RequestedBy: t.Name(),
		Approval:    workflows.ApprovalPolicy{Required: true},
	})
	require.NoError(t, err, "a manual failover is not held by the cooldown")
	require.NotEmpty(t, run.GetRunID())
	_, _ = e.result(t, account) // the precheck refuses it: the account is already on stamp-b
}

// TestPlainTrigger: the JSON trigger starts an API-triggered failover that
// waits for approval; the same trigger again is a duplicate.
func TestPlainTrigger(t *testing.T) {
	e := temporalEnv(t)
	account := uniq("wh-trigger")
	e.provision(t, account)
	h := e.newHandler(t)
	body := []byte(
		`{"account":"` + account + `","to":"stamp-b","reason":"db team asks","requested_by":"db-tool","labels":{"ticket":"OPS-1"}}`,
	)
	code, resp := send(t, h, PathTrigger, body, map[string]string{SignatureHeader: sign(body)})
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted}, outcomes(resp))
	req := e.request(t, account)
	require.Equal(t, workflows.TriggerAPI, req.Trigger)
	require.Equal(t, "db-tool", req.RequestedBy)
	require.Equal(t, "db team asks", req.Reason)
	require.Equal(t, workflows.ModePlanned, req.Mode)
	code, resp = post(t, h, PathTrigger, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeDuplicate}, outcomes(resp))
	e.waitPhase(t, account, workflows.PhaseApproval)
	reject(t, e, account)
	res, err := e.result(t, account)
	require.Error(t, err)
	require.Len(t, res.Alerts, 1)
	require.Equal(t, SourceAPI, res.Alerts[0].Source)
	require.Equal(t, map[string]string{"ticket": "OPS-1"}, res.Alerts[0].Labels)

	// Unknown accounts are refused here too.
	code, resp = post(t, h, PathTrigger, []byte(`{"account":"wh-nobody","to":"stamp-b","reason":"r"}`))
	require.Equal(t, http.StatusUnprocessableEntity, code, resp.Message)
}

// TestNoCooldownRule: a rule with cooldown 0s starts again right after a
// completed failover.
func TestNoCooldownRule(t *testing.T) {
	e := temporalEnv(t)
	account := uniq("wh-no-cooldown")
	cfg := strings.Replace(testConfig, "trigger:", `  - name: latency-auto
    matchers: ['alertname="LatencyAuto"']
    account_label: account
    target: stamp-b
    approval_required: false
    cooldown: 0s
trigger:`, 1)
	parsed, err := ParseConfig([]byte(cfg))
	require.NoError(t, err)
	h := e.newHandler(t, func(o *Options) { o.Config = parsed })
	e.provision(t, account)
	code, resp := post(
		t,
		h,
		PathAlertmanager,
		notification(StatusFiring, alert(StatusFiring, "alertname", "LatencyAuto", "account", account)),
	)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted}, outcomes(resp))
	res, err := e.result(t, account)
	require.NoError(t, err)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	code, resp = post(
		t,
		h,
		PathAlertmanager,
		notification(
			StatusFiring,
			alert(StatusFiring, "alertname", "LatencyAuto", "account", account, "instance", "2"),
		),
	)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted}, outcomes(resp))
	_, _ = e.result(t, account)
}

// TestConcurrentIdenticalNotifications: 100 identical notifications at
// once make exactly one workflow, with the alert recorded once, and
// exactly one answer says started. Twice: spread over four receiver
// replicas (each merges what it receives at once), and over ten, so that
// ten reach Temporal as concurrent update-with-starts of one workflow ID.
// (Far more than that on one workflow, Temporal answers Unavailable or
// ResourceExhausted and the SDK backs off: a receiver keeps at most a few
// calls in flight per account; see docs/WEBHOOK.md.)
func TestConcurrentIdenticalNotifications(t *testing.T) {
	e := temporalEnv(t)
	t.Run("four receivers", func(t *testing.T) {
		account := uniq("wh-concurrent-4")
		e.provision(t, account)
		var handlers []*Handler
		var urls []string
		for range 4 {
			h := e.newHandler(t)
			s := httptest.NewServer(h)
			t.Cleanup(s.Close)
			handlers, urls = append(handlers, h), append(urls, s.URL)
		}
		outs, retried := fireAtOnce(
			t,
			100,
			notification(StatusFiring, stampDown(StatusFiring, account)),
			func(i int) string { return urls[i%len(urls)] },
		)
		require.Zero(t, retried, "four receivers answer every request 2xx at once")
		checkOnce(t, e, account, outs, handlers)
	})
	t.Run("ten receivers", func(t *testing.T) {
		account := uniq("wh-concurrent-10")
		e.provision(t, account)
		var handlers []*Handler
		var urls []string
		for range 10 {
			h := e.newHandler(t)
			s := httptest.NewServer(h)
			t.Cleanup(s.Close)
			handlers, urls = append(handlers, h), append(urls, s.URL)
		}
		// Temporal admits at most 10 updates in flight per workflow; the
		// SDK retries the others, and an answer may be a 503, which
		// Alertmanager would retry: so does fireAtOnce.
		outs, retried := fireAtOnce(
			t,
			100,
			notification(StatusFiring, stampDown(StatusFiring, account)),
			func(i int) string { return urls[i%len(urls)] },
		)
		t.Logf("%d requests answered 503 and were retried", retried)
		checkOnce(t, e, account, outs, handlers)
	})
}

// fireAtOnce posts body n times at once (request i to url(i)), retrying a
// 5xx like Alertmanager until a 2xx; it returns the final outcomes and how
// many answers were 5xx. Any other answer fails the test.
func fireAtOnce(t *testing.T, n int, body []byte, url func(int) string) (map[string]int, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		outs    = map[string]int{}
		retried int
		bad     []string
		start   = make(chan struct{})
	)
	for i := range n {
		wg.Go(func() {
			<-start
			err := testsuite.Poll(ctx, time.Millisecond, func() (bool, error) {
				req, err := http.NewRequestWithContext(
					ctx,
					http.MethodPost,
					url(i)+PathAlertmanager,
					bytes.NewReader(body),
				)
				if err != nil {
					return false, err
				}
				req.Header.Set("Authorization", "Bearer "+string(testToken))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return false, err
				}
				defer resp.Body.Close()
				var r Response
				if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
					return false, err
				}
				mu.Lock()
				defer mu.Unlock()
				switch {
				case resp.StatusCode >= 500:
					retried++
					return false, nil
				case resp.StatusCode != http.StatusOK:
					bad = append(bad, r.Message)
					return true, nil
				}
				for _, x := range r.Results {
					outs[x.Outcome]++
				}
				return true, nil
			})
			if err != nil {
				mu.Lock()
				bad = append(bad, err.Error())
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	require.Empty(t, bad)
	return outs, retried
}

// checkOnce: one started, the rest duplicates, one workflow execution, the
// alert recorded once.
func checkOnce(t *testing.T, e *tenv, account string, outs map[string]int, handlers []*Handler) {
	t.Helper()
	require.Equal(t, map[string]int{OutcomeStarted: 1, OutcomeDuplicate: 99}, outs)
	d, err := e.c.DescribeWorkflow(context.Background(), workflows.FailoverWorkflowID(account), "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, d.Status)
	require.Equal(t, 1, e.runs(t, account, d.WorkflowExecution.RunID), "exactly one workflow execution")
	require.Equal(t, 1, e.progress(t, account).Alerts, "the alert is recorded once")
	started := 0.0
	for _, h := range handlers {
		started += count(h.Metrics().Started.WithLabelValues("stamp-down", string(workflows.ModeUnplanned)))
	}
	require.Equal(t, 1.0, started)
	reject(t, e, account)
}

// TestOneNotificationSeveralAccounts: a notification whose alerts name two
// accounts starts one failover per account; unmatched alerts beside them
// are reported, and the answer is 200.
func TestOneNotificationSeveralAccounts(t *testing.T) {
	e := temporalEnv(t)
	a, b := uniq("wh-multi"), uniq("wh-multi")
	e.provision(t, a)
	e.provision(t, b)
	h := e.newHandler(t)
	code, resp := post(t, h, PathAlertmanager, notification(
		StatusFiring,
		stampDown(
			StatusFiring,
			a,
		),
		stampDown(StatusFiring, b),
		alert(StatusFiring, "alertname", "DiskFull"),
		stampDown(StatusFiring, a, "instance", "2"),
	))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted, OutcomeStarted, OutcomeUnmatched, OutcomeAttached}, outcomes(resp))
	require.NotEqual(t, resp.Results[0].WorkflowID, resp.Results[1].WorkflowID)
	require.Equal(t, resp.Results[0].RunID, resp.Results[3].RunID)
	for _, acct := range []string{a, b} {
		e.waitPhase(t, acct, workflows.PhaseApproval)
		reject(t, e, acct)
	}
}
