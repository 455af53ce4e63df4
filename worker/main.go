// Command worker is Baton's Temporal worker: it runs the failover workflows
// and their activities against the stamps and the location service.
//
// Temporal connection settings come from the environment (TEMPORAL_ADDRESS,
// TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_API_KEY, or a temporal.toml
// profile); see the README.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/cli"
	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/internal/metrics"
	"github.com/batonhq/baton/internal/readiness"
	"github.com/batonhq/baton/internal/register"
	"github.com/batonhq/baton/internal/temporalclient"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/workflows"
)

// clientTLS is how the worker calls the location service and the stamps:
// its client certificate, or plaintext (said loudly) without --certs-dir.
func clientTLS(zl *zap.Logger, dir, name string) (*tls.Config, error) {
	cfg, err := auth.ClientConfig(dir, name)
	if err == nil && cfg == nil {
		zl.Warn("INSECURE: calling the location service and the stamps in plaintext without a certificate; " +
			"pass --certs-dir (or " + auth.EnvCertsDir + ") outside tests")
	}
	return cfg, err
}

// appHTTP is the client of a plan's HTTP steps: with certificates it
// trusts the cluster's CA besides the system's and presents the worker's
// certificate (a stamp's health is such a step); nil otherwise.
func appHTTP(dir, name string) (*http.Client, error) {
	cfg, err := auth.AppClientConfig(dir, name)
	if cfg == nil || err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

func main() { cli.Exit("worker", run(os.Args[1:])) }

func run(args []string) error {
	fs := flag.NewFlagSet("worker", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: worker [flags]

Runs Baton's failover workflows and activities. Connects to Temporal using
TEMPORAL_ADDRESS (default localhost:7233), TEMPORAL_NAMESPACE (default
"default"), TEMPORAL_TLS_CLIENT_CERT_PATH / _KEY_PATH, TEMPORAL_API_KEY, or
the profile in TEMPORAL_CONFIG_FILE.

Flags:
`)
		fs.PrintDefaults()
	}
	locationURL := fs.String("location", envOr("BATON_LOCATION", "http://127.0.0.1:7100"), "location service base URL (env BATON_LOCATION)")
	certsDir := fs.String("certs-dir", os.Getenv(auth.EnvCertsDir),
		"certificates `dir`ectory: call the location service and the stamps over TLS with a client certificate "+
			"(env "+auth.EnvCertsDir+"; empty: plaintext, for services started with --insecure)")
	certName := fs.String("cert-name", envOr(auth.EnvCertName, "worker"),
		"client certificate `name` in --certs-dir, with the control, admin and data roles (env "+auth.EnvCertName+")")
	taskQueue := fs.String("task-queue", workflows.TaskQueue, "task queue to poll")
	maxActivities := fs.Int("max-concurrent-activities", 200, "activities run at once")
	maxWorkflowTasks := fs.Int("max-concurrent-workflow-tasks", 100, "workflow tasks run at once")
	pollers := fs.Int("pollers", 4, "pollers per task type")
	logFormat := fs.String("log-format", "json", "log format: json or console")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	metricsListen := fs.String("metrics-listen", os.Getenv("BATON_METRICS_LISTEN"), "serve Prometheus metrics (the SDK's and Baton's) on http://`ADDR`/metrics, e.g. 0.0.0.0:9090; empty = off (env BATON_METRICS_LISTEN)")
	readyEvery := fs.Duration("readiness-interval", metrics.DefaultReadinessInterval, "with --metrics-listen: check every account's readiness to fail over this often and export baton_account_ready; 0 = off")
	readyMax := fs.Int("readiness-max-accounts", metrics.DefaultReadinessMaxAccounts, "at most this many baton_account_ready series (accounts not ready first); the counts cover every account")
	readyMaxLag := fs.Uint64("readiness-max-lag", 0, "ready only if at most this many ops are unacknowledged or unreplayed (default max(1000, 2 x partitions))")
	readyMaxRPO := fs.Duration("readiness-max-rpo", readiness.DefaultMaxRPO, "ready only if no partition with unacknowledged writes has gone longer without an acknowledgement")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: the worker takes flags only (see --help)", fs.Args())
	}
	if *maxActivities <= 0 || *maxWorkflowTasks <= 0 || *pollers <= 0 {
		return errors.New("--max-concurrent-activities, --max-concurrent-workflow-tasks and --pollers must be positive")
	}
	if *readyEvery < 0 || *readyMax <= 0 || *readyMaxRPO <= 0 {
		return errors.New("--readiness-interval must not be negative, --readiness-max-accounts and --readiness-max-rpo must be positive")
	}
	zl, err := logging.NewLogger(*logFormat, *logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = zl.Sync() }()
	tlsCfg, err := clientTLS(zl, *certsDir, *certName)
	if err != nil {
		return err
	}

	opts, err := temporalclient.OptionsFromEnv(zl)
	if err != nil {
		return err
	}
	var metricsErr <-chan error
	if *metricsListen != "" {
		m, err := metrics.NewExporter(zl)
		if err != nil {
			return err
		}
		defer func() { _ = m.Close() }()
		mctx, stopMetrics := context.WithCancel(context.Background())
		defer stopMetrics()
		bound, errc, err := metrics.Serve(mctx, *metricsListen, m)
		if err != nil {
			return err
		}
		metricsErr = errc
		opts.MetricsHandler = m.Handler
		zl.Info("serving metrics", zap.String("url", "http://"+bound+"/metrics"))
		if *readyEvery > 0 {
			r, err := metrics.NewReadiness(m.Registry, metrics.ReadinessOptions{
				Location: location.NewTLSClient(*locationURL, tlsCfg), HTTPClient: stamp.HTTPClient(tlsCfg), Interval: *readyEvery, MaxAccounts: *readyMax,
				Budget: readiness.Budget{MaxLagOps: *readyMaxLag, MaxRPO: *readyMaxRPO}, Logger: zl,
			})
			if err != nil {
				return err
			}
			go r.Run(mctx)
		}
	}
	c, err := client.Dial(opts)
	if err != nil {
		return fmt.Errorf("connect to Temporal at %s: %w", opts.HostPort, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err = register.SearchAttributes(ctx, c, namespaceOr(opts.Namespace))
	cancel()
	if err != nil {
		return err
	}

	w := worker.New(c, *taskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     *maxActivities,
		WorkerStopTimeout:                      30 * time.Second,
		MaxConcurrentWorkflowTaskExecutionSize: *maxWorkflowTasks,
		MaxConcurrentActivityTaskPollers:       *pollers,
		MaxConcurrentWorkflowTaskPollers:       *pollers,
	})
	acts := activities.New(*locationURL, tlsCfg)
	if acts.ActionHTTP, err = appHTTP(*certsDir, *certName); err != nil {
		return err
	}
	acts.Temporal = c // a reprotect asks whether a failover of the account runs
	register.WorkflowsAndActivities(w, acts)

	stop := make(chan any, 1)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var failed error // set before stop is sent, read after Run returns
	go func() {
		select {
		case s := <-sig:
			zl.Info("signal received, draining")
			stop <- s
		case err := <-metricsErr: // nil channel when metrics are off
			zl.Error("metrics endpoint failed, stopping", zap.Error(err))
			failed = err
			stop <- err
		}
	}()
	zl.Info("worker started", zap.String("task_queue", *taskQueue), zap.String("location", *locationURL))
	// Run blocks until stop; it then stops polling and waits for running
	// activities to finish (graceful shutdown).
	if err := w.Run(stop); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	if failed != nil {
		return failed
	}
	zl.Info("worker stopped")
	return nil
}

func namespaceOr(ns string) string {
	if ns == "" {
		return "default"
	}
	return ns
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
