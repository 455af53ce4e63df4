package metrics_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/metrics"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/workflows"
)

// TestBatonMetricsPrometheusNames: Baton's workflow metrics, emitted the
// way the workflows emit them (counters and a timer on the SDK's metrics
// handler, with the workflow's tags), come out of /metrics under the names
// docs/METRICS.md and deploy/grafana/baton-dashboard.json use.
func TestBatonMetricsPrometheusNames(t *testing.T) {
	m, err := metrics.NewExporter(zap.NewNop())
	require.NoError(t, err)
	defer m.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bound, _, err := metrics.Serve(ctx, "127.0.0.1:0", m)
	require.NoError(t, err)

	// The SDK tags a workflow's metrics handler with these (seen on a
	// real worker's /metrics).
	h := m.Handler.WithTags(
		map[string]string{"activity_type": "none", "client_name": "temporal_go", "namespace": "default",
			"task_queue": "baton", "worker_type": "none", "workflow_type": workflows.NameAccountFailover},
	)
	mode := h.WithTags(map[string]string{"mode": "unplanned"})
	mode.WithTags(map[string]string{"outcome": "completed"}).Counter(workflows.MetricFailovers).Inc(1)
	mode.Timer(workflows.MetricFailoverDuration).Record(42 * time.Second)
	mode.Counter(workflows.MetricOpsLost).Inc(7)
	h.Counter(workflows.MetricPartitionsFlushed).Inc(1000)
	h.Counter(workflows.MetricPartitionsReplayed).Inc(1000)
	h.Counter(workflows.MetricApprovalsWaited).Inc(1)
	// The drill's, as workflows/drill.go emits them. Label values go
	// through the SDK's Prometheus sanitizer: acct-1 is exported as acct_1.
	d := m.Handler.WithTags(
		map[string]string{"activity_type": "none", "client_name": "temporal_go", "namespace": "default",
			"task_queue": "baton", "worker_type": "none", "workflow_type": workflows.NameDrill},
	).WithTags(map[string]string{"account": "acct-1"})
	d.WithTags(map[string]string{"outcome": "completed"}).Counter(workflows.MetricDrills).Inc(1)
	d.WithTags(map[string]string{"outcome": "completed"}).Gauge(workflows.MetricDrillLastTime).Update(1.7e9)
	d.WithTags(map[string]string{"leg": "failback"}).Timer(workflows.MetricDrillRTO).Record(3 * time.Second)
	// The evacuation's, as workflows/evacuation*.go emit them: stamp-a is
	// exported as stamp_a, outcome rolled-back as rolled_back.
	ev := m.Handler.WithTags(
		map[string]string{"activity_type": "none", "client_name": "temporal_go", "namespace": "default",
			"task_queue": "baton", "worker_type": "none", "workflow_type": workflows.NameStampEvacuation},
	)
	ev.WithTags(map[string]string{"outcome": "completed", "tier": "0"}).Counter(workflows.MetricEvacuatedAccounts).Inc(48)
	ev.WithTags(map[string]string{"outcome": "rolled-back", "tier": "none"}).Counter(workflows.MetricEvacuatedAccounts).Inc(1)
	evMode := ev.WithTags(map[string]string{"mode": "planned"})
	evMode.WithTags(map[string]string{"outcome": "incomplete"}).Counter(workflows.MetricEvacuations).Inc(1)
	evMode.Timer(workflows.MetricEvacuationDuration).Record(90 * time.Second)
	ev.WithTags(map[string]string{"stamp": "stamp-a"}).Gauge(workflows.MetricEvacuationInFlight).Update(20)
	ev.Counter(workflows.MetricApprovalsWaited).Inc(1)

	want := []string{
		`baton_failovers_total{activity_type="none",client_name="temporal_go",mode="unplanned",namespace="default",outcome="completed",task_queue="baton",worker_type="none",workflow_type="AccountFailover"} 1`,
		`baton_failover_duration_seconds_bucket{activity_type="none",client_name="temporal_go",mode="unplanned",namespace="default",task_queue="baton",worker_type="none",workflow_type="AccountFailover",le="60"} 1`,
		`baton_failover_duration_seconds_bucket{activity_type="none",client_name="temporal_go",mode="unplanned",namespace="default",task_queue="baton",worker_type="none",workflow_type="AccountFailover",le="30"} 0`,
		`baton_failover_duration_seconds_sum{activity_type="none",client_name="temporal_go",mode="unplanned",namespace="default",task_queue="baton",worker_type="none",workflow_type="AccountFailover"} 42`,
		`baton_failover_duration_seconds_count{activity_type="none",client_name="temporal_go",mode="unplanned",namespace="default",task_queue="baton",worker_type="none",workflow_type="AccountFailover"} 1`,
		`baton_ops_lost_total{activity_type="none",client_name="temporal_go",mode="unplanned",namespace="default",task_queue="baton",worker_type="none",workflow_type="AccountFailover"} 7`,
		`baton_partitions_flushed_total{activity_type="none",client_name="temporal_go",namespace="default",task_queue="baton",worker_type="none",workflow_type="AccountFailover"} 1000`,
		`baton_partitions_replayed_total{activity_type="none",client_name="temporal_go",namespace="default",task_queue="baton",worker_type="none",workflow_type="AccountFailover"} 1000`,
		`baton_approvals_waited_total{activity_type="none",client_name="temporal_go",namespace="default",task_queue="baton",worker_type="none",workflow_type="AccountFailover"} 1`,
		`baton_drills_total{account="acct_1",activity_type="none",client_name="temporal_go",namespace="default",outcome="completed",task_queue="baton",worker_type="none",workflow_type="Drill"} 1`,
		`baton_drill_last_timestamp_seconds{account="acct_1",activity_type="none",client_name="temporal_go",namespace="default",outcome="completed",task_queue="baton",worker_type="none",workflow_type="Drill"} 1.7e+09`,
		`baton_drill_rto_seconds_bucket{account="acct_1",activity_type="none",client_name="temporal_go",leg="failback",namespace="default",task_queue="baton",worker_type="none",workflow_type="Drill",le="5"} 1`,
		`baton_drill_rto_seconds_count{account="acct_1",activity_type="none",client_name="temporal_go",leg="failback",namespace="default",task_queue="baton",worker_type="none",workflow_type="Drill"} 1`,
		`baton_evacuated_accounts_total{activity_type="none",client_name="temporal_go",namespace="default",outcome="completed",task_queue="baton",tier="0",worker_type="none",workflow_type="StampEvacuation"} 48`,
		`baton_evacuated_accounts_total{activity_type="none",client_name="temporal_go",namespace="default",outcome="rolled_back",task_queue="baton",tier="none",worker_type="none",workflow_type="StampEvacuation"} 1`,
		`baton_evacuations_total{activity_type="none",client_name="temporal_go",mode="planned",namespace="default",outcome="incomplete",task_queue="baton",worker_type="none",workflow_type="StampEvacuation"} 1`,
		`baton_evacuation_duration_seconds_bucket{activity_type="none",client_name="temporal_go",mode="planned",namespace="default",task_queue="baton",worker_type="none",workflow_type="StampEvacuation",le="120"} 1`,
		`baton_evacuation_duration_seconds_count{activity_type="none",client_name="temporal_go",mode="planned",namespace="default",task_queue="baton",worker_type="none",workflow_type="StampEvacuation"} 1`,
		`baton_evacuation_in_flight{activity_type="none",client_name="temporal_go",namespace="default",stamp="stamp_a",task_queue="baton",worker_type="none",workflow_type="StampEvacuation"} 20`,
		`baton_approvals_waited_total{activity_type="none",client_name="temporal_go",namespace="default",task_queue="baton",worker_type="none",workflow_type="StampEvacuation"} 1`,
		`go_goroutines `,
		`process_resident_memory_bytes `,
	}
	// The scope reports to Prometheus every second: poll until it has.
	var body string
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	err = testsuite.Poll(pctx, 50*time.Millisecond, func() (bool, error) {
		body = scrape(t, "http://"+bound+"/metrics")
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false, nil
			}
		}
		return true, nil
	})
	for _, w := range want {
		require.Contains(t, body, w)
	}
	require.NoError(t, err)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
