// Package metrics exports the worker's metrics to Prometheus: the Temporal
// SDK's and Baton's own (emitted by the workflows through
// workflow.GetMetricsHandler), through tally, served on /metrics.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/uber-go/tally/v4"
	tallyprom "github.com/uber-go/tally/v4/prometheus"
	"go.temporal.io/sdk/client"
	sdktally "go.temporal.io/sdk/contrib/tally"
	"go.uber.org/zap"
)

// DurationBuckets are the histogram buckets (seconds) of every timer the
// worker exports: the SDK's latencies (milliseconds to seconds) and a whole
// failover's duration (seconds to many minutes).
var DurationBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
}

// Exporter is a Prometheus registry fed by the Temporal SDK through tally
// (go.temporal.io/sdk/contrib/tally): set Handler as client.Options'
// MetricsHandler and serve HTTP on /metrics. Everything the SDK and the
// workflows emit through it (workflow.GetMetricsHandler) is exported with
// Prometheus names: counters get _total, timers _seconds (histograms with
// DurationBuckets); see docs/METRICS.md.
type Exporter struct {
	Handler client.MetricsHandler
	HTTP    http.Handler
	// Registry is the registry served on /metrics, for the worker's own
	// collectors (the readiness gauges, NewReadiness).
	Registry *prometheus.Registry
	closer   io.Closer
}

// NewExporter builds the registry (with the Go runtime and process
// collectors) and the SDK's metrics handler. Registration errors (the same
// metric name emitted with different tag keys) are logged to zl and the
// metric is dropped, rather than crashing the worker.
func NewExporter(zl *zap.Logger) (*Exporter, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, fmt.Errorf("register the Go collector: %w", err)
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, fmt.Errorf("register the process collector: %w", err)
	}
	reporter := tallyprom.NewReporter(tallyprom.Options{
		Registerer:              reg,
		DefaultTimerType:        tallyprom.HistogramTimerType,
		DefaultHistogramBuckets: DurationBuckets,
		OnRegisterError: func(err error) {
			zl.Warn("metric not exported: its name is already registered with other tags or type", zap.Error(err))
		},
	})
	scope, closer := tally.NewRootScope(tally.ScopeOptions{
		CachedReporter:  reporter,
		Separator:       tallyprom.DefaultSeparator,
		SanitizeOptions: &sdktally.PrometheusSanitizeOptions,
	}, time.Second)
	return &Exporter{
		Handler:  sdktally.NewMetricsHandler(sdktally.NewPrometheusNamingScope(scope)),
		HTTP:     reporter.HTTPHandler(),
		Registry: reg,
		closer:   closer,
	}, nil
}

// Close flushes and stops the tally scope.
func (m *Exporter) Close() error { return m.closer.Close() }

// Serve listens on listen (fails now if it cannot) and serves
// /metrics until ctx is done. It returns the bound address and a channel
// that receives the server's error, if it stops for another reason.
func Serve(ctx context.Context, listen string, m *Exporter) (string, <-chan error, error) {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return "", nil, fmt.Errorf("metrics: listen on %s: %w", listen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.HTTP)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() {
		if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("metrics: serve on %s: %w", ln.Addr(), err)
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	return ln.Addr().String(), errc, nil
}
