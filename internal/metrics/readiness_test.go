package metrics_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/metrics"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/location/locationtest"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/stamp/stamptest"
	"github.com/batonhq/baton/testsuite"
)

// gauges reads the readiness gauges from the registry: the counts by name,
// and baton_account_ready by account.
func gauges(t *testing.T, reg prometheus.Gatherer) (counts map[string]float64, ready map[string]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	counts, ready = map[string]float64{}, map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case metrics.MetricAccountReady:
				require.Len(t, m.GetLabel(), 1)
				ready[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			case metrics.MetricAccountsNotReady, metrics.MetricAccountsChecked, metrics.MetricReadinessCheckedAt:
				counts[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
	}
	return counts, ready
}

// TestReadinessGauges: the worker's readiness loop against a real location
// service and two real stamps: a protected account replicating is ready,
// an account moved without a reprotect is not, the not-ready come first
// within the bound on series, and a stamp going away shows at the next
// round.
func TestReadinessGauges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	locSrv, err := locationtest.StartLocal(location.Config{})
	require.NoError(t, err)
	defer locSrv.Close()
	loc := location.NewClient(locSrv.URL(), nil)
	stamps := map[string]*stamptest.Local{}
	clients := map[string]*stamp.Client{}
	for _, name := range []string{testsuite.StampA, testsuite.StampB} {
		s, err := stamptest.StartLocal(stamp.Config{Name: name, LocationURL: locSrv.URL()})
		require.NoError(t, err)
		stamps[name], clients[name] = s, stamp.NewClient(s.URL(), nil)
		require.NoError(t, loc.RegisterStamp(ctx, location.Stamp{Name: name, URL: s.URL()}))
	}
	defer func() { _ = stamps[testsuite.StampA].Close() }()
	for _, acct := range []string{"ready-1", "ready-2", "moved"} {
		_, err := location.Provision(ctx, loc, clients[testsuite.StampA], clients[testsuite.StampB],
			testsuite.StampA, testsuite.StampB, acct, 3)
		require.NoError(t, err)
	}
	for i := range 20 {
		_, err := clients[testsuite.StampA].Put(ctx, "ready-1", fmt.Sprintf("k%d", i), "v", 1)
		require.NoError(t, err)
	}
	// The location service moves it as a failover's promote does: the
	// account is unprotected until a reprotect.
	_, err = loc.Move(ctx, "moved", location.MoveRequest{From: testsuite.StampA, To: testsuite.StampB,
		ExpectedEpoch: 1, Epoch: 2})
	require.NoError(t, err)

	m, err := metrics.NewExporter(zap.NewNop())
	require.NoError(t, err)
	defer m.Close()
	r, err := metrics.NewReadiness(m.Registry, metrics.ReadinessOptions{Location: loc,
		Interval: 100 * time.Millisecond, MaxAccounts: 2})
	require.NoError(t, err)
	counts, ready := gauges(t, m.Registry)
	require.Empty(t, counts, "no values before the first round")
	require.Empty(t, ready)
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan struct{})
	go func() { defer close(done); r.Run(rctx) }()

	want := func(notReady float64, wantReady map[string]float64) {
		t.Helper()
		err := testsuite.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
			counts, ready = gauges(t, m.Registry)
			return counts[metrics.MetricAccountsNotReady] == notReady && fmt.Sprint(ready) == fmt.Sprint(wantReady), nil
		})
		require.NoError(t, err, "counts %v, ready %v", counts, ready)
		require.Equal(t, 3.0, counts[metrics.MetricAccountsChecked])
		require.InDelta(t, float64(time.Now().Unix()), counts[metrics.MetricReadinessCheckedAt], 30)
	}
	// Not ready first, then by name, two series at most.
	want(1, map[string]float64{"moved": 0, "ready-1": 1})

	require.NoError(t, stamps[testsuite.StampB].Close())
	want(3, map[string]float64{"moved": 0, "ready-1": 0})

	stop()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("the readiness loop did not stop with its context")
	}
}
