package testsuite

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/workflows"
)

// alertmanagerBinary finds Debian's prometheus-alertmanager (or
// $BATON_ALERTMANAGER_BIN). Without it the test skips on a developer
// machine and fails in CI (CI=true), where .ci/run installs it.
func alertmanagerBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("BATON_ALERTMANAGER_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "Prometheus Alertmanager is not installed (apt-get install prometheus-alertmanager, or set BATON_ALERTMANAGER_BIN)"
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true and %s: .ci/run installs it", msg)
	}
	t.Skipf("skipped: %s; with CI=true this fails", msg)
	return ""
}

const webhookE2EConfig = `
cooldown: 30m
rules:
  - name: stamp-down
    matchers:
      - alertname="StampDown"
      - severity=~"critical|page"
    account_label: account
    target_label: failover_to
    from_label: stamp
    mode: planned
    approval_required: true
    cancel_on_resolve: true
`

// TestAlertmanagerStartsFailover drives the receiver with a real
// Alertmanager: `baton webhook` (the binary) in front of the harness
// cluster (Temporal dev server, stamps, worker process), Alertmanager's
// webhook receiver pointed at it with a bearer token from a file. An alert
// pushed into Alertmanager's API starts the account's failover, which waits
// for approval with the alert recorded; approved, it completes. A second
// account's alert resolves while its failover is pending: the failover is
// rejected by "alertmanager" and nothing is touched.
func TestAlertmanagerStartsFailover(t *testing.T) {
	amBin := alertmanagerBinary(t)
	c := startCluster(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const approved, resolved = "am-acct", "am-acct-resolved"
	for _, a := range []string{approved, resolved} {
		_, err := c.Provision(ctx, a, 8)
		require.NoError(t, err)
	}

	// The receiver: baton webhook, its token in a file.
	dir := c.Opts.Dir
	token := filepath.Join(dir, "webhook.token")
	require.NoError(t, os.WriteFile(token, []byte("e2e-token-"+strconv.FormatInt(time.Now().UnixNano(), 36)+"\n"), 0o600))
	cfg := filepath.Join(dir, "webhook.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(webhookE2EConfig), 0o644))
	whPort, err := FreePort()
	require.NoError(t, err)
	whURL := c.scheme() + addr(whPort)
	wh := &Process{Name: "webhook", Path: c.Bin.Baton, Log: logPath(dir, "webhook"),
		Args: []string{"webhook", "--listen", addr(whPort), "--config", cfg, "--token-file", token, "--location", c.LocationURL},
		Env:  c.CLIEnv()}
	require.NoError(t, c.startHTTP(ctx, wh, whURL+"/healthz"))
	t.Cleanup(func() { wh.Stop(10 * time.Second) })
	require.NoError(t, WaitHTTPWith(ctx, c.HTTP(), whURL+"/readyz", wh), "the receiver reaches Temporal")

	// Alertmanager, with a webhook receiver pointing at Baton.
	amURL := startAlertmanager(ctx, t, c, amBin, whURL, token, "[alertname, account]", "1h")

	// 1. An alert fires: its failover starts and waits for approval, with
	// the alert recorded.
	pushAlert(ctx, t, amURL, approved, time.Time{})
	progress := waitFailoverPhase(ctx, t, c, approved, workflows.PhaseApproval)
	require.Equal(t, 1, progress.Alerts, "the alert is recorded in the failover")
	require.Equal(t, workflows.TriggerAlert, progress.Trigger)
	desc, err := c.Client.DescribeWorkflow(ctx, workflows.FailoverWorkflowID(approved), "")
	require.NoError(t, err)
	trig, _ := desc.TypedSearchAttributes.GetKeyword(workflows.SearchTrigger)
	require.Equal(t, workflows.TriggerAlert, workflows.Trigger(trig))
	require.Equal(t, 1.0, metric(ctx, t, c.HTTP(), whURL+"/metrics", "baton_webhook_failovers_started_total", `mode="planned"`, `rule="stamp-down"`))

	decide(ctx, t, c, approved, workflows.UpdateApprove)
	var res workflows.FailoverResult
	require.NoError(t, c.Client.GetWorkflow(ctx, workflows.FailoverWorkflowID(approved), "").Get(ctx, &res))
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.Equal(t, StampB, res.To)
	require.Len(t, res.Alerts, 1)
	got := res.Alerts[0]
	require.Equal(t, "alertmanager", got.Source)
	require.Equal(t, "StampDown", got.Name)
	require.Equal(t, "firing", got.Status)
	require.NotEmpty(t, got.Fingerprint)
	require.False(t, got.StartsAt.IsZero())
	require.Equal(t, approved, got.Labels["account"])
	require.Contains(t, res.RequestedBy, "alertmanager")
	acct, err := c.Loc.Lookup(ctx, approved)
	require.NoError(t, err)
	require.Equal(t, StampB, acct.Primary)

	// 2. Another account's alert fires, then resolves while its failover
	// waits for approval: Alertmanager's resolved notification rejects it.
	pushAlert(ctx, t, amURL, resolved, time.Time{})
	waitFailoverPhase(ctx, t, c, resolved, workflows.PhaseApproval)
	pushAlert(ctx, t, amURL, resolved, time.Now().Add(-time.Second))
	err = c.Client.GetWorkflow(ctx, workflows.FailoverWorkflowID(resolved), "").Get(ctx, &res)
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "the rejected failover ends in an application error: %v", err)
	require.NoError(t, ae.Details(&res))
	require.Equal(t, workflows.OutcomeRejected, res.Outcome)
	require.Equal(t, "alertmanager", res.Rejection.By)
	require.Equal(t, "alert StampDown resolved", res.Rejection.Reason)
	acct, err = c.Loc.Lookup(ctx, resolved)
	require.NoError(t, err)
	require.Equal(t, StampA, acct.Primary, "nothing was touched")

	// 3. The global maintenance switch on (baton webhook asks --location):
	// a third account's alert is held, and starts nothing.
	const held = "am-acct-held"
	_, err = c.Provision(ctx, held, 8)
	require.NoError(t, err)
	_, err = c.Loc.SetSwitch(ctx, location.SwitchRequest{On: true, By: "oncall", Reason: "e2e: planned work"})
	require.NoError(t, err)
	pushAlert(ctx, t, amURL, held, time.Time{})
	require.NoError(t, Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		n, _, err := scrape(ctx, c.HTTP(), whURL+"/metrics", "baton_webhook_alerts_held_total", `rule="stamp-down"`, `switch="global"`)
		return n >= 1, err
	}), "the alert was never held")
	_, err = c.Client.DescribeWorkflowExecution(ctx, workflows.FailoverWorkflowID(held), "")
	var nf *serviceerror.NotFound
	require.ErrorAs(t, err, &nf, "a held alert started a failover")
	_, err = c.Loc.SetSwitch(ctx, location.SwitchRequest{On: false, By: "oncall"})
	require.NoError(t, err)

	// Alertmanager delivered every notification on the first try.
	require.Zero(t, metric(ctx, t, c.HTTP(), amURL+"/metrics", "alertmanager_notifications_failed_total", `integration="webhook"`))
	require.GreaterOrEqual(t, metric(ctx, t, c.HTTP(), amURL+"/metrics", "alertmanager_notifications_total", `integration="webhook"`), 3.0)
	require.Equal(t, 1.0, metric(ctx, t, c.HTTP(), whURL+"/metrics", "baton_webhook_resolved_cancels_total", `result="rejected"`, `rule="stamp-down"`))
}

// startAlertmanager runs Alertmanager (binary amBin) with one route, its
// notifications grouped by groupBy and repeated every repeat, to a webhook
// receiver at receiverURL (/v1/alertmanager, with the bearer token in file
// token, resolved alerts sent too); it returns its URL.
func startAlertmanager(ctx context.Context, t *testing.T, c *Cluster, amBin, receiverURL, token, groupBy,
	repeat string) string {
	t.Helper()
	dir := c.Opts.Dir
	amPort, err := FreePort()
	require.NoError(t, err)
	amURL := "http://" + addr(amPort)
	amCfg := filepath.Join(dir, "alertmanager.yml")
	tlsConfig := "" // the receiver serves TLS with a certificate of the cluster's CA
	if !c.Opts.Insecure {
		tlsConfig = "\n          tls_config:\n            ca_file: " + filepath.Join(c.CertsDir, auth.CACert)
	}
	require.NoError(t, os.WriteFile(amCfg, []byte(fmt.Sprintf(`route:
  receiver: baton
  group_by: %s
  group_wait: 200ms
  group_interval: 1s
  repeat_interval: %s
receivers:
  - name: baton
    webhook_configs:
      - url: %s/v1/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials_file: %s%s
`, groupBy, repeat, receiverURL, token, tlsConfig)), 0o644))
	am := &Process{Name: "alertmanager", Path: amBin, Log: logPath(dir, "alertmanager"),
		Args: []string{"--config.file=" + amCfg, "--storage.path=" + filepath.Join(dir, "alertmanager-data"),
			"--web.listen-address=" + addr(amPort), "--cluster.listen-address=", "--log.level=debug"}}
	require.NoError(t, c.startHTTP(ctx, am, amURL+"/-/ready"))
	t.Cleanup(func() { am.Stop(10 * time.Second) })
	return amURL
}

// pushAlert posts a StampDown alert for account to Alertmanager's API;
// a non-zero endsAt in the past resolves it.
func pushAlert(ctx context.Context, t *testing.T, amURL, account string, endsAt time.Time) {
	t.Helper()
	pushAlertLabels(ctx, t, amURL, map[string]string{"alertname": "StampDown", "severity": "page",
		"account": account, "failover_to": StampB, "stamp": StampA}, "stamp-a does not answer for "+account, endsAt)
}

// pushAlertLabels posts an alert with labels and a summary to
// Alertmanager's API; a non-zero endsAt in the past resolves it.
func pushAlertLabels(ctx context.Context, t *testing.T, amURL string, labels map[string]string, summary string,
	endsAt time.Time) {
	t.Helper()
	a := map[string]any{"labels": labels, "annotations": map[string]string{"summary": summary}}
	if !endsAt.IsZero() {
		a["endsAt"] = endsAt.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal([]any{a})
	require.NoError(t, err)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, amURL+"/api/v2/alerts", bytes.NewReader(b))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, "alertmanager: %s", body)
}

// waitFailoverPhase polls the account's failover until it reports phase.
func waitFailoverPhase(ctx context.Context, t *testing.T, c *Cluster, account string, phase workflows.Phase) workflows.Progress {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	var p workflows.Progress
	err := Poll(wctx, 100*time.Millisecond, func() (bool, error) {
		v, err := c.Client.QueryWorkflow(wctx, workflows.FailoverWorkflowID(account), "", workflows.QueryProgress)
		if err != nil {
			return false, nil // not started yet
		}
		return v.Get(&p) == nil && p.Phase == phase, nil
	})
	require.NoError(t, err, "failover of %s never reached %s (last phase %q)", account, phase, p.Phase)
	return p
}

// decide sends an approve or reject update as an operator would.
func decide(ctx context.Context, t *testing.T, c *Cluster, account, update string) {
	t.Helper()
	h, err := c.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: workflows.FailoverWorkflowID(account),
		UpdateName: update, Args: []any{workflows.Decision{By: t.Name(), Reason: "e2e"}}, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	require.NoError(t, h.Get(ctx, nil))
}

// metric sums the samples of a Prometheus metric whose labels include
// every `k="v"` of want (so that a newer exporter's extra labels do not
// hide a series); it fails the test if there is none.
func metric(ctx context.Context, t *testing.T, hc *http.Client, url, name string, want ...string) float64 {
	t.Helper()
	sum, found, err := scrape(ctx, hc, url, name, want...)
	require.NoError(t, err)
	require.True(t, found, "%s has no %s{%v}", url, name, want)
	return sum
}

// scrape is metric's reading: the sum, and whether any series matched.
func scrape(ctx context.Context, hc *http.Client, url, name string, want ...string) (float64, bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, false, err
	}
	sum, found := 0.0, false
	for _, m := range regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+`\{([^}]*)\} (\S+)$`).FindAllSubmatch(b, -1) {
		ok := true
		for _, w := range want {
			ok = ok && bytes.Contains(m[1], []byte(w))
		}
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(string(m[2]), 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %w", name, err)
		}
		sum, found = sum+v, true
	}
	return sum, found, nil
}
