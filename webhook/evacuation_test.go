package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/workflows"
)

// stampConfig has two rules with scope: stamp: one waits for approval with
// its admission set, one pre-approves.
const stampConfig = `
cooldown: 1h
rules:
  - name: stamp-evacuate
    scope: stamp
    matchers: ['alertname="StampDown"']
    stamp_label: stamp
    mode: unplanned
    max_in_flight: 5
    per_destination: 2
    attempts: 2
    flush_deadline: 90s
    approval_timeout: 30m
    cancel_on_resolve: true
  - name: stamp-drain
    scope: stamp
    matchers: ['alertname="StampDrain"']
    stamp_label: stamp
    approval_required: false
`

func TestStampRuleConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(stampConfig))
	require.NoError(t, err)
	r := cfg.Rules[0]
	require.Equal(t, ScopeStamp, r.Scope)
	require.Equal(t, ActionFailover, r.Action, "the default action")
	require.Equal(t, actionEvacuation, r.action())
	require.Equal(t, workflows.ModePlanned, cfg.Rules[1].Mode, "the default mode")

	route, ok, err := cfg.Route(map[string]string{"alertname": "StampDown", "stamp": "stamp-a"})
	require.True(t, ok)
	require.NoError(t, err, "a scope: stamp rule needs the stamp only")
	require.Equal(t, "stamp-a", route.Stamp)
	require.Equal(t, "stamp-a", route.subject())
	require.Equal(t, "evacuate-stamp-a", route.Rule.action().workflowID(route.subject()))
	_, ok, err = cfg.Route(map[string]string{"alertname": "StampDown", "account": "acct-1"})
	require.True(t, ok)
	require.ErrorContains(t, err, `rule "stamp-evacuate" matches but the alert has no "stamp" label naming the stamp to evacuate`)
	_, _, err = cfg.Route(map[string]string{"alertname": "StampDown", "stamp": "two words"})
	require.ErrorContains(t, err, `stamp "two words" is not a valid name`)

	fixed, err := ParseConfig([]byte("rules:\n  - name: r\n    scope: stamp\n    matchers: ['a=\"b\"']\n    stamp: stamp-c\n"))
	require.NoError(t, err)
	route, _, err = fixed.Route(map[string]string{"a": "b"})
	require.NoError(t, err)
	require.Equal(t, "stamp-c", route.Stamp)

	stampRule := "rules:\n  - name: r\n    scope: stamp\n    matchers: ['alertname=\"A\"']\n"
	accountRule := "rules:\n  - name: r\n    matchers: ['alertname=\"A\"']\n    account_label: account\n    target: b\n"
	for _, tt := range []struct{ name, yaml, want string }{
		{"bad scope", "rules:\n  - name: r\n    scope: region\n    matchers: ['a=\"b\"']\n    stamp: s\n",
			`scope "region": use account (the default) or stamp`},
		{"no stamp", stampRule, "set exactly one of stamp_label and stamp"},
		{"stamp twice", stampRule + "    stamp: s\n    stamp_label: stamp\n", "set exactly one of stamp_label and stamp"},
		{"bad fixed stamp", stampRule + "    stamp: 'a b'\n", `stamp "a b" is not a valid name`},
		{"reprotect", stampRule + "    stamp_label: stamp\n    action: reprotect\n",
			"action reprotect does not apply to scope stamp"},
		{"bad mode", stampRule + "    stamp_label: stamp\n    mode: sideways\n", `mode "sideways"`},
		{"zero flush deadline", stampRule + "    stamp_label: stamp\n    flush_deadline: 0s\n",
			"flush_deadline 0s: must be positive"},
		{"zero max in flight", stampRule + "    stamp_label: stamp\n    max_in_flight: 0\n",
			"max_in_flight 0: must be at least 1 (leave it out for the default, 20)"},
		{"max in flight too high", stampRule + "    stamp_label: stamp\n    max_in_flight: 501\n",
			"max_in_flight 501: must be between 1 and 500"},
		{"negative cap", stampRule + "    stamp_label: stamp\n    per_destination: -1\n",
			"per_destination -1: must be at least 1 (leave it out for no cap)"},
		{"too many attempts", stampRule + "    stamp_label: stamp\n    attempts: 11\n",
			"attempts 11: must be between 1 and 10"},
		{"account in a stamp rule", stampRule + "    stamp_label: stamp\n    account: a\n",
			"account does not apply to scope stamp: an evacuation moves every account whose primary is the stamp"},
		{"target in a stamp rule", stampRule + "    stamp_label: stamp\n    target_label: to\n",
			"target_label does not apply to scope stamp"},
		{"from in a stamp rule", stampRule + "    stamp_label: stamp\n    from_label: stamp\n",
			"from_label does not apply to scope stamp"},
		{"stamp in an account rule", accountRule + "    stamp_label: stamp\n",
			"stamp_label does not apply to scope account: it names a stamp to evacuate (use scope: stamp for that)"},
		{"admission in an account rule", accountRule + "    max_in_flight: 5\n",
			"max_in_flight does not apply to scope account"},
		{"admission in a reprotect rule",
			"rules:\n  - name: r\n    action: reprotect\n    matchers: ['a=\"b\"']\n    account: a\n    attempts: 2\n",
			"attempts does not apply to scope account"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			require.ErrorContains(t, err, tt.want)
			require.ErrorContains(t, err, `rule "r"`)
		})
	}
}

// stampAlert is an alert about a stamp (the rules of stampConfig).
func stampAlert(status, name, stamp string, extra ...string) Alert {
	return alert(status, append([]string{"alertname", name, "severity", "page", "stamp", stamp}, extra...)...)
}

// stampHandler builds a handler with stampConfig on the shared environment.
func (e *tenv) stampHandler(t *testing.T, mutate ...func(*Options)) *Handler {
	t.Helper()
	cfg, err := ParseConfig([]byte(stampConfig))
	require.NoError(t, err)
	return e.newHandler(t, append([]func(*Options){func(o *Options) { o.Config = cfg }}, mutate...)...)
}

// evacuationProgress queries the stamp's evacuation.
func (e *tenv) evacuationProgress(ctx context.Context, stamp string) (workflows.EvacuationProgress, error) {
	var p workflows.EvacuationProgress
	v, err := e.c.QueryWorkflow(ctx, workflows.EvacuationWorkflowID(stamp), "", workflows.QueryProgress)
	if err == nil {
		err = v.Get(&p)
	}
	return p, err
}

// waitEvacuationPhase polls until the stamp's evacuation reports phase.
func (e *tenv) waitEvacuationPhase(t *testing.T, stamp string, phase workflows.Phase) workflows.EvacuationProgress {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var p workflows.EvacuationProgress
	err := testsuite.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		var err error
		p, err = e.evacuationProgress(ctx, stamp)
		return err == nil && p.Phase == phase, nil
	})
	require.NoError(t, err, "evacuation of %s never reached phase %s (last %q)", stamp, phase, p.Phase)
	return p
}

// evacuationResult waits for the stamp's latest evacuation and returns its
// report, also for one that did not complete (its error carries it).
func (e *tenv) evacuationResult(t *testing.T, stamp string) (workflows.EvacuationResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var res workflows.EvacuationResult
	err := e.c.GetWorkflow(ctx, workflows.EvacuationWorkflowID(stamp), "").Get(ctx, &res)
	if rep, ok := workflows.EvacuationOutcomeOf(err); ok {
		res = rep
	}
	return res, err
}

// evacuationRequest reads the request the stamp's latest evacuation was
// started with.
func (e *tenv) evacuationRequest(t *testing.T, stamp string) workflows.EvacuationRequest {
	t.Helper()
	it := e.c.GetWorkflowHistory(context.Background(), workflows.EvacuationWorkflowID(stamp), "", false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	ev, err := it.Next()
	require.NoError(t, err)
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	require.NotNil(t, attrs)
	var req workflows.EvacuationRequest
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(attrs.GetInput().GetPayloads()[0], &req))
	return req
}

// decideEvacuation sends an operator's decision (approve, reject, pause,
// abort) to the stamp's evacuation.
func decideEvacuation(t *testing.T, e *tenv, stamp, update string) {
	t.Helper()
	ctx := context.Background()
	uh, err := e.c.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   workflows.EvacuationWorkflowID(stamp),
		UpdateName:   update,
		Args:         []any{workflows.Decision{By: t.Name(), Reason: "test"}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	require.NoError(t, err)
	require.NoError(t, uh.Get(ctx, nil))
}

// TestStampAlertStartsOneEvacuation: the alerts of a scope: stamp rule
// start the stamp's evacuation once, with the rule's settings and trigger
// alert, waiting for one approval; repeats are duplicates (also at a
// receiver that never saw them), a new alert attaches.
func TestStampAlertStartsOneEvacuation(t *testing.T) {
	e := temporalEnv(t)
	stamp := uniq("wh-stamp")
	h := e.stampHandler(t)
	body := notification(StatusFiring, stampAlert(StatusFiring, "StampDown", stamp, "instance", "a1"),
		stampAlert(StatusFiring, "StampDown", stamp, "instance", "a2"))
	code, resp := post(t, h, PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted, OutcomeAttached}, outcomes(resp))
	first := resp.Results[0]
	require.Equal(t, workflows.EvacuationWorkflowID(stamp), first.WorkflowID)
	require.Equal(t, stamp, first.Stamp)
	require.Empty(t, first.Account)
	require.Equal(t, first.RunID, resp.Results[1].RunID)
	require.Contains(t, first.Message, "unplanned evacuation of "+stamp+" started")
	require.Contains(t, resp.Results[1].Message, "recorded in the running evacuation (2 alerts)")

	code, resp = post(t, h, PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeDuplicate, OutcomeDuplicate}, outcomes(resp))
	code, resp = post(t, e.stampHandler(t), PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeDuplicate, OutcomeDuplicate}, outcomes(resp), "the workflow's own record")
	code, resp = post(t, h, PathAlertmanager,
		notification(StatusFiring, stampAlert(StatusFiring, "StampDown", stamp, "instance", "a3")))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeAttached}, outcomes(resp))
	require.Equal(t, first.RunID, resp.Results[0].RunID)

	p := e.waitEvacuationPhase(t, stamp, workflows.PhaseApproval)
	require.Equal(t, workflows.TriggerAlert, p.Trigger)
	require.Equal(t, workflows.ModeUnplanned, p.Mode)
	req := e.evacuationRequest(t, stamp)
	require.Equal(t, stamp, req.Stamp)
	require.Equal(t, workflows.TriggerAlert, req.Trigger)
	require.Equal(t, 5, req.MaxInFlight)
	require.Equal(t, 2, req.PerDestination)
	require.Equal(t, 2, req.Attempts)
	require.Equal(t, 90*time.Second, req.Options.FlushDeadline)
	require.Equal(t, 30*time.Minute, req.Approval.Timeout)
	require.Nil(t, req.Approval.PreApproved, "an alert's evacuation waits for approval")
	require.Contains(t, req.RequestedBy, `webhook rule "stamp-evacuate"`)

	require.Equal(t, 1.0, count(h.Metrics().EvacuationsStarted.WithLabelValues("stamp-evacuate", "unplanned")))
	require.Equal(t, 2.0, count(h.Metrics().Attached.WithLabelValues("stamp-evacuate", OutcomeAttached)))
	require.Equal(t, 2.0, count(h.Metrics().Attached.WithLabelValues("stamp-evacuate", OutcomeDuplicate)))
	require.Zero(t, count(h.Metrics().Started.WithLabelValues("stamp-evacuate", "unplanned")), "no failover")

	decideEvacuation(t, e, stamp, workflows.UpdateReject)
	res, err := e.evacuationResult(t, stamp)
	require.Error(t, err)
	require.Equal(t, workflows.OutcomeRejected, res.Outcome)
	require.Equal(t, 3, res.AlertsSeen, "each alert recorded once")
}

// TestConcurrentIdenticalStampNotifications: 100 copies of one
// notification at once, over four receivers, make one evacuation.
func TestConcurrentIdenticalStampNotifications(t *testing.T) {
	e := temporalEnv(t)
	stamp := uniq("wh-stamp-concurrent")
	var handlers []*Handler
	var urls []string
	for range 4 {
		h := e.stampHandler(t)
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		handlers, urls = append(handlers, h), append(urls, s.URL)
	}
	outs, _ := fireAtOnce(t, 100, notification(StatusFiring, stampAlert(StatusFiring, "StampDown", stamp)),
		func(i int) string { return urls[i%len(urls)] })
	require.Equal(t, map[string]int{OutcomeStarted: 1, OutcomeDuplicate: 99}, outs)
	started := 0.0
	for _, h := range handlers {
		started += count(h.Metrics().EvacuationsStarted.WithLabelValues("stamp-evacuate", "unplanned"))
	}
	require.Equal(t, 1.0, started)
	e.waitEvacuationPhase(t, stamp, workflows.PhaseApproval)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	require.NoError(t, testsuite.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		resp, err := e.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowId = '" + workflows.EvacuationWorkflowID(stamp) + "'"})
		if err != nil {
			return false, err
		}
		n = len(resp.GetExecutions())
		return n > 0, nil
	}))
	require.Equal(t, 1, n, "exactly one evacuation")
	decideEvacuation(t, e, stamp, workflows.UpdateReject)
	res, _ := e.evacuationResult(t, stamp)
	require.Equal(t, 1, res.AlertsSeen, "the alert is recorded once")
}

// TestResolvedAlertRejectsPendingEvacuation: a resolved alert of a rule
// that cancels on resolve rejects the stamp's evacuation while it waits at
// its approval gate; past the gate it goes on.
func TestResolvedAlertRejectsPendingEvacuation(t *testing.T) {
	e := temporalEnv(t)
	h := e.stampHandler(t)

	stamp := uniq("wh-stamp-resolve")
	code, resp := post(t, h, PathAlertmanager, notification(StatusFiring, stampAlert(StatusFiring, "StampDown", stamp)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	run := resp.Results[0].RunID
	e.waitEvacuationPhase(t, stamp, workflows.PhaseApproval)
	code, resp = post(t, h, PathAlertmanager, notification(StatusResolved, stampAlert(StatusResolved, "StampDown", stamp)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeCancelled}, outcomes(resp))
	require.Equal(t, run, resp.Results[0].RunID)
	require.Contains(t, resp.Results[0].Message, "the pending evacuation of "+stamp+" was rejected")
	res, err := e.evacuationResult(t, stamp)
	require.Error(t, err)
	require.Equal(t, workflows.OutcomeRejected, res.Outcome)
	require.Equal(t, DecisionBy, res.Rejection.By)
	require.Equal(t, "alert StampDown resolved", res.Rejection.Reason)
	require.Empty(t, res.Table.Account, "nothing was touched")
	code, resp = post(t, h, PathAlertmanager, notification(StatusResolved, stampAlert(StatusResolved, "StampDown", stamp)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeNothingToCancel}, outcomes(resp))

	// Past the gate (approved, held there by a pause): it goes on.
	stamp = uniq("wh-stamp-resolve")
	code, resp = post(t, h, PathAlertmanager, notification(StatusFiring, stampAlert(StatusFiring, "StampDown", stamp)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	e.waitEvacuationPhase(t, stamp, workflows.PhaseApproval)
	decideEvacuation(t, e, stamp, workflows.UpdatePause)
	decideEvacuation(t, e, stamp, workflows.UpdateApprove)
	e.waitEvacuationPhase(t, stamp, workflows.PhaseEvacuating)
	code, resp = post(t, h, PathAlertmanager, notification(StatusResolved, stampAlert(StatusResolved, "StampDown", stamp)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeGoesOn}, outcomes(resp))
	require.Contains(t, resp.Results[0].Message, "past its approval gate")
	require.Equal(t, 1.0, count(h.Metrics().Cancelled.WithLabelValues("stamp-evacuate", "rejected")))
	require.Equal(t, 1.0, count(h.Metrics().Cancelled.WithLabelValues("stamp-evacuate", "goes-on")))
	decideEvacuation(t, e, stamp, workflows.UpdateAbort)
	res, _ = e.evacuationResult(t, stamp)
	require.Equal(t, workflows.OutcomeAborted, res.Outcome)
}

// TestPreApprovedEvacuationAndCooldown: a rule that pre-approves starts an
// evacuation that runs at once (here of a stamp no account lives on, so it
// completes); once it completed, the cooldown refuses the stamp's alerts.
func TestPreApprovedEvacuationAndCooldown(t *testing.T) {
	e := temporalEnv(t)
	stamp := uniq("wh-stamp-drain")
	now := time.Now()
	h := e.stampHandler(t, func(o *Options) { o.Now = func() time.Time { return now } })
	code, resp := post(t, h, PathAlertmanager, notification(StatusFiring, stampAlert(StatusFiring, "StampDrain", stamp)))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted}, outcomes(resp))
	res, err := e.evacuationResult(t, stamp)
	require.NoError(t, err)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.False(t, res.ApprovalRequired, "pre-approved by the rule")
	require.Equal(t, workflows.ModePlanned, res.Mode)
	require.Equal(t, "webhook rule stamp-drain", e.evacuationRequest(t, stamp).Approval.PreApproved.By)
	require.Equal(t, 1.0, count(h.Metrics().EvacuationsStarted.WithLabelValues("stamp-drain", "planned")))

	code, resp = post(t, h, PathAlertmanager,
		notification(StatusFiring, stampAlert(StatusFiring, "StampDrain", stamp, "instance", "2")))
	require.Equal(t, http.StatusConflict, code, resp.Message)
	require.Equal(t, []string{OutcomeCooldown}, outcomes(resp))
	require.Contains(t, resp.Message, "evacuation of "+stamp+" completed at")
	require.Contains(t, resp.Message, "a manual `baton evacuate` can override")
	require.Equal(t, 1.0, count(h.Metrics().Refused.WithLabelValues("stamp-drain", "cooldown")))
}

// TestMaintenanceSwitchHoldsTheAlert: while the stamp's switch is on, the
// alert starts nothing and is answered held; turned off, the same alert
// starts the evacuation.
func TestMaintenanceSwitchHoldsTheAlert(t *testing.T) {
	e := temporalEnv(t)
	stamp := uniq("wh-stamp-held")
	fleet := &fakeFleet{}
	fleet.set(stamp, true)
	h := e.stampHandler(t, func(o *Options) { o.Fleet = fleet })
	body := notification(StatusFiring, stampAlert(StatusFiring, "StampDown", stamp))
	code, resp := post(t, h, PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, "held", resp.Status)
	require.Equal(t, []string{OutcomeHeld}, outcomes(resp))
	require.Contains(t, resp.Message, "held by the maintenance switch of "+stamp)
	require.Contains(t, resp.Message, "set by oncall: patching")
	require.Empty(t, resp.Results[0].WorkflowID)
	_, err := e.c.DescribeWorkflow(context.Background(), workflows.EvacuationWorkflowID(stamp), "")
	var nf *serviceerror.NotFound
	require.True(t, errors.As(err, &nf), "nothing started: %v", err)
	require.Equal(t, 1.0, count(h.Metrics().Held.WithLabelValues("stamp-evacuate", stamp)))
	require.Equal(t, 1.0, count(h.Metrics().Received.WithLabelValues("alertmanager", "held")))

	fleet.set(stamp, false)
	code, resp = post(t, h, PathAlertmanager, body)
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeStarted}, outcomes(resp))
	e.waitEvacuationPhase(t, stamp, workflows.PhaseApproval)
	decideEvacuation(t, e, stamp, workflows.UpdateReject)
}
