package testsuite

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/webhook"
	"github.com/batonhq/baton/workflows"
)

const webhookStampE2EConfig = `
rules:
  - name: stamp-down
    scope: stamp
    matchers:
      - alertname="StampDown"
      - severity=~"critical|page"
    stamp_label: stamp
    mode: planned
    max_in_flight: 2
    cancel_on_resolve: true
`

// answers records the receiver's answers to Alertmanager, alert by alert.
type answers struct {
	h  http.Handler
	mu sync.Mutex
	rs []webhook.Result
}

func (a *answers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	a.h.ServeHTTP(rec, r)
	var resp webhook.Response
	if json.Unmarshal(rec.Body.Bytes(), &resp) == nil {
		a.mu.Lock()
		a.rs = append(a.rs, resp.Results...)
		a.mu.Unlock()
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(rec.Body.Bytes())
}

// with returns the answers with outcome.
func (a *answers) with(outcome string) []webhook.Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []webhook.Result
	for _, r := range a.rs {
		if r.Outcome == outcome {
			out = append(out, r)
		}
	}
	return out
}

// startStampReceiver serves the alert receiver on a port of its own, in
// this process, built as `baton webhook` builds it from its config and
// token files, with the location service as its Fleet (the maintenance
// switches); it returns its URL and the answers it gave.
func startStampReceiver(t *testing.T, c *Cluster, cfgFile, tokenFile string) (string, *answers) {
	t.Helper()
	cfg, err := webhook.LoadConfig(cfgFile)
	require.NoError(t, err)
	token, err := webhook.LoadSecret(tokenFile, "")
	require.NoError(t, err)
	h, err := webhook.New(webhook.Options{Client: c.Client, Config: cfg, Auth: webhook.Auth{Token: token},
		TaskQueue: workflows.TaskQueue, Fleet: c.Loc})
	require.NoError(t, err)
	ans := &answers{h: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if !c.Opts.Insecure { // TLS with the receiver's certificate, as baton webhook serves
		cfg, err := auth.ServerTLS(auth.NodeFiles(c.CertsDir, NodeWebhook))
		require.NoError(t, err)
		ln = tls.NewListener(ln, cfg)
	}
	srv := &http.Server{Handler: ans, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return c.scheme() + ln.Addr().String(), ans
}

// evacuationRuns lists the run IDs of the stamp's evacuations in
// visibility once it lists the run want.
func evacuationRuns(ctx context.Context, t *testing.T, c *Cluster, stampName, want string) []string {
	t.Helper()
	var runs []string
	require.NoError(t, Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		resp, err := c.Client.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
			Query: "WorkflowId = '" + workflows.EvacuationWorkflowID(stampName) + "'"})
		if err != nil {
			return false, err
		}
		runs = runs[:0]
		for _, e := range resp.GetExecutions() {
			runs = append(runs, e.GetExecution().GetRunId())
		}
		return strings.Contains(strings.Join(runs, " "), want), nil
	}), "visibility never listed run %s of %s", want, workflows.EvacuationWorkflowID(stampName))
	return runs
}

// TestAlertmanagerEvacuatesStamp drives a scope: stamp rule with a real
// Alertmanager repeating its notification every second, in front of the
// harness cluster (Temporal dev server, stamps, worker process):
//
//  1. StampDown{stamp="stamp-a"} starts one evacuation, evacuate-stamp-a,
//     trigger alert, waiting for its one approval; every repeat of the
//     notification is a duplicate of it.
//  2. The alert resolves: the evacuation, still at its gate, is rejected
//     by "alertmanager"; no account moved.
//  3. With stamp-a's maintenance switch on, the same alert fires again and
//     again: each notification is answered held (naming the switch, who and
//     why) and nothing starts.
//  4. Switched off, the next repeat starts a new evacuation; approved, it
//     moves both accounts of stamp-a, each by one failover.
func TestAlertmanagerEvacuatesStamp(t *testing.T) {
	amBin := alertmanagerBinary(t)
	c := startCluster(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	accounts := []string{"am-evac-1", "am-evac-2"}
	for _, a := range accounts {
		_, err := c.Provision(ctx, a, 4)
		require.NoError(t, err)
	}
	dir := c.Opts.Dir
	token := filepath.Join(dir, "webhook-stamp.token")
	require.NoError(t, os.WriteFile(token, []byte("e2e-token-"+strconv.FormatInt(time.Now().UnixNano(), 36)+"\n"), 0o600))
	cfg := filepath.Join(dir, "webhook-stamp.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(webhookStampE2EConfig), 0o644))
	whURL, ans := startStampReceiver(t, c, cfg, token)
	amURL := startAlertmanager(ctx, t, c, amBin, whURL, token, "[alertname, stamp]", "1s")
	labels := map[string]string{"alertname": "StampDown", "severity": "page", "stamp": StampA}
	fire := func() { pushAlertLabels(ctx, t, amURL, labels, "stamp-a does not answer", time.Time{}) }
	resolve := func() {
		pushAlertLabels(ctx, t, amURL, labels, "stamp-a does not answer", time.Now().Add(-time.Second))
	}
	id := workflows.EvacuationWorkflowID(StampA)
	notifications := func() float64 {
		return metric(ctx, t, c.HTTP(), amURL+"/metrics", "alertmanager_notifications_total", `integration="webhook"`)
	}
	waitNotifications := func(n float64) {
		require.NoError(t, Poll(ctx, 100*time.Millisecond, func() (bool, error) { return notifications() >= n, nil }))
	}

	// 1. One evacuation, however often Alertmanager repeats itself.
	fire()
	var p workflows.EvacuationProgress
	require.NoError(t, Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		var err error
		p, err = evacuationProgress(ctx, c, StampA)
		return err == nil && p.Phase == workflows.PhaseApproval, nil
	}))
	require.Equal(t, workflows.TriggerAlert, p.Trigger, "an alert's evacuation waits for its one approval")
	waitNotifications(notifications() + 3)
	first, err := c.Client.DescribeWorkflow(ctx, id, "")
	require.NoError(t, err)
	run := first.WorkflowExecution.RunID
	require.Equal(t, []string{run}, evacuationRuns(ctx, t, c, StampA, run), "exactly one evacuation")
	require.Len(t, ans.with(webhook.OutcomeStarted), 1)
	require.GreaterOrEqual(t, len(ans.with(webhook.OutcomeDuplicate)), 3, "the repeats are duplicates")
	for _, r := range ans.with(webhook.OutcomeDuplicate) {
		require.Equal(t, run, r.RunID)
		require.Equal(t, StampA, r.Stamp)
	}
	require.Equal(t, 1.0, metric(ctx, t, c.HTTP(), whURL+"/metrics", "baton_webhook_evacuations_started_total",
		`rule="stamp-down"`, `mode="planned"`))
	require.Zero(t, metric(ctx, t, c.HTTP(), amURL+"/metrics", "alertmanager_notifications_failed_total", `integration="webhook"`))

	// 2. Resolved at the gate: rejected, nothing touched.
	resolve()
	err = c.Client.GetWorkflow(ctx, id, run).Get(ctx, nil)
	res, ok := workflows.EvacuationOutcomeOf(err)
	require.True(t, ok, "the rejected evacuation carries its report: %v", err)
	require.Equal(t, workflows.OutcomeRejected, res.Outcome)
	require.Equal(t, webhook.DecisionBy, res.Rejection.By)
	require.Equal(t, "alert StampDown resolved", res.Rejection.Reason)
	require.Equal(t, 1, res.AlertsSeen, "the alert recorded once")
	for _, a := range accounts {
		acct, err := c.Loc.Lookup(ctx, a)
		require.NoError(t, err)
		require.Equal(t, StampA, acct.Primary, "nothing was touched")
	}

	// 3. The maintenance switch of stamp-a holds the same alert: nothing
	// starts, however often it comes.
	_, err = c.Loc.SetSwitch(ctx, location.SwitchRequest{Stamp: StampA, On: true, By: "oncall",
		Reason: "rack 7 power work"})
	require.NoError(t, err)
	fire()
	require.NoError(t, Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		return len(ans.with(webhook.OutcomeHeld)) >= 3, nil
	}), "the held alert's repeats")
	for _, r := range ans.with(webhook.OutcomeHeld) {
		require.Regexp(t, `^held by the maintenance switch of stamp-a \(on since \S+, set by oncall: rack 7 power work\): `,
			r.Message)
		require.Empty(t, r.WorkflowID)
	}
	require.GreaterOrEqual(t, metric(ctx, t, c.HTTP(), whURL+"/metrics", "baton_webhook_alerts_held_total",
		`rule="stamp-down"`, `switch="stamp-a"`), 3.0)
	latest, err := c.Client.DescribeWorkflow(ctx, id, "")
	require.NoError(t, err)
	require.Equal(t, run, latest.WorkflowExecution.RunID, "nothing started while held")

	// 4. Switched off: the next repeat starts the evacuation; approved, it
	// moves both accounts.
	_, err = c.Loc.SetSwitch(ctx, location.SwitchRequest{Stamp: StampA, On: false, By: "oncall"})
	require.NoError(t, err)
	require.NoError(t, Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		return len(ans.with(webhook.OutcomeStarted)) == 2, nil
	}))
	second := ans.with(webhook.OutcomeStarted)[1].RunID
	require.NotEqual(t, run, second)
	require.NoError(t, Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		p, err := evacuationProgress(ctx, c, StampA)
		return err == nil && p.Phase == workflows.PhaseApproval, nil
	}))
	uh, err := c.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: id, RunID: second,
		UpdateName: workflows.UpdateApprove, Args: []any{workflows.Decision{By: t.Name(), Reason: "e2e"}},
		WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, uh.Get(ctx, nil))
	var done workflows.EvacuationResult
	require.NoError(t, c.Client.GetWorkflow(ctx, id, second).Get(ctx, &done))
	require.Equal(t, workflows.OutcomeCompleted, done.Outcome)
	require.Equal(t, 2, done.OnStamp)
	require.Equal(t, 2, done.Table.Len())
	resolve()
	for _, a := range accounts {
		acct, err := c.Loc.Lookup(ctx, a)
		require.NoError(t, err)
		require.Equal(t, StampB, acct.Primary, "%s moved", a)
		require.Len(t, runsOf(ctx, t, c.Client, workflows.FailoverWorkflowID(a)), 1, "%s moved by one failover", a)
	}
	require.ElementsMatch(t, []string{run, second}, evacuationRuns(ctx, t, c, StampA, second),
		"two evacuations in all: the rejected one and this one")
	require.Equal(t, 2.0, metric(ctx, t, c.HTTP(), whURL+"/metrics", "baton_webhook_evacuations_started_total",
		`rule="stamp-down"`, `mode="planned"`))
	require.Empty(t, ans.with(webhook.OutcomeError), "no alert was answered with an error")
}
