package testsuite

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/workflows"
)

const dashboardFile = "../deploy/grafana/baton-dashboard.json"

// grafanaDashboard is what the checks read of the dashboard JSON.
type grafanaDashboard struct {
	UID    string `json:"uid"`
	Title  string `json:"title"`
	Panels []struct {
		Type       string `json:"type"`
		Title      string `json:"title"`
		Datasource *struct {
			UID string `json:"uid"`
		} `json:"datasource"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

func loadDashboard(t *testing.T) (grafanaDashboard, []string) {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	require.NoError(t, err)
	var d grafanaDashboard
	require.NoError(t, json.Unmarshal(b, &d))
	require.NotEmpty(t, d.UID)
	var exprs []string
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		require.NotNil(t, p.Datasource, "panel %q has no data source", p.Title)
		require.Equal(t, "${datasource}", p.Datasource.UID, "panel %q: use the dashboard's data source variable", p.Title)
		require.NotEmpty(t, p.Targets, "panel %q has no query", p.Title)
		for _, tg := range p.Targets {
			require.NotEmpty(t, tg.Expr, "panel %q has an empty query", p.Title)
			exprs = append(exprs, tg.Expr)
		}
	}
	return d, exprs
}

var metricName = regexp.MustCompile(`\b((?:baton|temporal|go|process)_[a-z_]+)`)

// dashboardMetrics are the metric names the dashboard's queries use (the
// histogram suffixes folded into the histogram's name).
func dashboardMetrics(exprs []string) []string {
	var names []string
	for _, e := range exprs {
		for _, m := range metricName.FindAllString(e, -1) {
			m = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
			if !slices.Contains(names, m) {
				names = append(names, m)
			}
		}
	}
	slices.Sort(names)
	return names
}

// TestDashboardCoversBatonMetrics: the Grafana dashboard has a panel for
// each of Baton's metrics, and docs/METRICS.md documents every metric the
// dashboard uses.
func TestDashboardCoversBatonMetrics(t *testing.T) {
	_, exprs := loadDashboard(t)
	used := dashboardMetrics(exprs)
	doc, err := os.ReadFile("../docs/METRICS.md")
	require.NoError(t, err)
	for _, want := range []string{workflows.MetricFailovers + "_total", workflows.MetricFailoverDuration + "_seconds",
		workflows.MetricPartitionsFlushed + "_total", workflows.MetricPartitionsReplayed + "_total",
		workflows.MetricOpsLost + "_total", workflows.MetricApprovalsWaited + "_total",
		workflows.MetricDrills + "_total", workflows.MetricDrillLastTime, workflows.MetricDrillRTO + "_seconds",
		workflows.MetricEvacuatedAccounts + "_total", workflows.MetricEvacuations + "_total",
		workflows.MetricEvacuationDuration + "_seconds", workflows.MetricEvacuationInFlight} {
		require.Contains(t, used, want, "no dashboard panel uses %s", want)
	}
	for _, m := range used {
		if strings.HasPrefix(m, "go_") || strings.HasPrefix(m, "process_") {
			continue
		}
		require.Contains(t, string(doc), "`"+m, "docs/METRICS.md does not document %s, which the dashboard uses", m)
	}
}

// appearOnFailure are series that exist only once something failed, an
// unplanned failover lost operations, or a failover waited for approval.
var appearOnFailure = []string{"temporal_request_failure_total", "temporal_workflow_failed_total",
	"temporal_activity_execution_failed_total", "baton_ops_lost_total", "baton_approvals_waited_total"}

// TestDashboardQueriesAgainstPrometheus runs a real Prometheus (Debian's
// package) scraping a worker's /metrics while a failover runs, then
// evaluates every query of the Grafana dashboard: each must be valid
// PromQL, and every metric it names must exist with the labels the
// dashboard filters on. Skipped without the prometheus binary, except in
// CI (CI=true), where .ci/run installs it.
func TestDashboardQueriesAgainstPrometheus(t *testing.T) {
	prom, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI=true and prometheus is not installed: .ci/run installs Debian's prometheus")
		}
		t.Skip("skipped: prometheus not installed (apt-get install prometheus); with CI=true this fails")
	}
	_, exprs := loadDashboard(t)
	c := startCluster(t, Options{WorkerMetrics: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	// Prometheus scrapes the worker every second, from before the failover.
	dir := t.TempDir()
	target := strings.TrimSuffix(strings.TrimPrefix(c.WorkerMetricsURLs[0], "http://"), "/metrics")
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n  - job_name: baton-worker\n    static_configs: [{targets: [%q]}]\n", target)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(cfg), 0o644))
	port, err := FreePort()
	require.NoError(t, err)
	p := &Process{Name: "prometheus", Path: prom, Log: filepath.Join(c.Opts.Dir, "prometheus.log"),
		Args: []string{"--config.file=" + filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path=" + filepath.Join(dir, "data"),
			"--web.listen-address=" + addr(port)}}
	require.NoError(t, p.Start())
	defer p.Stop(10 * time.Second)
	api := "http://" + addr(port)
	require.NoError(t, Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		r, err := promQuery(ctx, api, `up{job="baton-worker"} == 1`)
		return err == nil && len(r) == 1, nil
	}), "prometheus never scraped the worker (log %s)", p.Log)

	const account = "dash-acct"
	_, err = c.Provision(ctx, account, 8)
	require.NoError(t, err)
	// A drill first (it ends where it started, protected), so that the
	// drill's series exist too.
	drill, err := launch.Drill(ctx, c.Client, workflows.TaskQueue, workflows.DrillRequest{
		Account: account, Canaries: 4, RequestedBy: t.Name()})
	require.NoError(t, err)
	var dr workflows.DrillResult
	require.NoError(t, drill.Get(ctx, &dr))
	require.Equal(t, workflows.OutcomeCompleted, dr.Outcome, dr.Why)
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Reason: "dashboard test", RequestedBy: t.Name(),
	})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))
	// A small evacuation of stamp-a (the account above is on stamp-b now):
	// one account of tier 1, so that the evacuation's series exist too.
	const evacuated = "dash-evac"
	_, err = c.Provision(ctx, evacuated, 4)
	require.NoError(t, err)
	_, err = c.Loc.SetLabels(ctx, evacuated, map[string]string{location.LabelTier: "1"})
	require.NoError(t, err)
	evac, err := launch.Evacuation(ctx, c.Client, workflows.TaskQueue, workflows.EvacuationRequest{
		Stamp: StampA, Reason: "dashboard test", RequestedBy: t.Name()})
	require.NoError(t, err)
	var er workflows.EvacuationResult
	require.NoError(t, evac.Get(ctx, &er))
	require.Equal(t, workflows.OutcomeCompleted, er.Outcome)
	require.Equal(t, []string{evacuated}, er.Table.Account)
	// Wait until Prometheus has the failover, the evacuation and a few
	// scrapes after them.
	for _, q := range []string{`count_over_time(baton_failovers_total{outcome="completed"}[1m]) >= 3`,
		`count_over_time(baton_evacuations_total{outcome="completed"}[1m]) >= 3`} {
		require.NoError(t, Poll(ctx, 200*time.Millisecond, func() (bool, error) {
			r, err := promQuery(ctx, api, q)
			return err == nil && len(r) > 0, nil
		}), "prometheus: %s", q)
	}
	// The evacuation's series, with the labels the dashboard groups by
	// (label values through the SDK's sanitizer: stamp-a is stamp_a).
	for _, q := range []string{`baton_evacuated_accounts_total{outcome="completed", tier="1"} == 1`,
		`baton_evacuation_duration_seconds_count{mode="planned"} == 1`,
		`baton_evacuation_in_flight{stamp="stamp_a"} == 0`} {
		r, err := promQuery(ctx, api, q)
		require.NoError(t, err)
		require.Len(t, r, 1, "prometheus: %s", q)
	}

	vars := strings.NewReplacer("$__range", "1h", "$__rate_interval", "1m", "$namespace", ".*", "$task_queue", ".*", "$job", ".*")
	for _, e := range exprs {
		q := vars.Replace(e)
		_, err := promQuery(ctx, api, q)
		require.NoError(t, err, "dashboard query %s", q)
	}
	for _, m := range dashboardMetrics(exprs) {
		if slices.Contains(appearOnFailure, m) {
			continue
		}
		sel := fmt.Sprintf(`{__name__=~"%s(_bucket)?", job="baton-worker"}`, m)
		if strings.HasPrefix(m, "baton_") || strings.HasPrefix(m, "temporal_") {
			sel = fmt.Sprintf(`{__name__=~"%s(_bucket)?", job="baton-worker", namespace="default"}`, m)
		}
		r, err := promQuery(ctx, api, "count("+sel+")")
		require.NoError(t, err)
		require.NotEmpty(t, r, "the dashboard uses %s, which the worker does not export (with namespace=default)", m)
	}
}

// promQuery evaluates an instant query; an error for a refused query.
func promQuery(ctx context.Context, api, q string) ([]json.RawMessage, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("query %s: %w", q, err)
	}
	if out.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, out.Error)
	}
	return out.Data.Result, nil
}
