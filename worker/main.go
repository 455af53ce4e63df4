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
	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/pgdriver"
	"github.com/batonhq/baton/driver/redisdriver"
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
// its client certificate, or plaintext with --insecure (said loudly).
func clientTLS(zl *zap.Logger, cfg config) (*tls.Config, error) {
	return cfg.security.Config(cfg.locationURL, func(msg string) { zl.Warn(msg) })
}

// appHTTP is the client of a plan's HTTP steps: with certificates it
// trusts the cluster's CA besides the system's and presents the worker's
// certificate (a stamp's health is such a step); nil with --insecure.
func appHTTP(sec auth.ClientSecurity) (*http.Client, error) {
	if sec.Insecure {
		return nil, nil
	}
	cfg, err := auth.AppClientConfig(sec.Dir, sec.Name)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// storeDrivers are the drivers of the accounts of other kinds than the
// stamps': over TLS with the worker's client certificate (the servers
// trust the cluster's CA) and the password in --redis-password-file
// (Redis) or --pg-password-file (PostgreSQL, role --pg-user); a kind
// without its password file is not driven.
func storeDrivers(cfg config, tlsCfg *tls.Config) (map[driver.Kind]driver.Store, error) {
	stores := map[driver.Kind]driver.Store{}
	if cfg.redisPasswordFile != "" {
		pw, err := auth.ReadSecretFile(cfg.redisPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--redis-password-file: %w", err)
		}
		stores[driver.KindRedis] = redisdriver.New(redisdriver.Options{TLS: tlsCfg, Password: pw})
	}
	if cfg.pgPasswordFile != "" {
		pw, err := auth.ReadSecretFile(cfg.pgPasswordFile)
		if err != nil {
			return nil, fmt.Errorf("--pg-password-file: %w", err)
		}
		stores[driver.KindPostgres] = pgdriver.New(pgdriver.Options{TLS: tlsCfg, User: cfg.pgUser, Password: pw,
			AppRole: cfg.pgAppRole})
	}
	return stores, nil
}

func main() { cli.Exit("worker", run(os.Args[1:])) }

// config is the worker's command line.
type config struct {
	locationURL, taskQueue                   string
	redisPasswordFile                        string
	pgPasswordFile, pgUser, pgAppRole        string
	security                                 auth.ClientSecurity
	maxActivities, maxWorkflowTasks, pollers int
	logFormat, logLevel, metricsListen       string
	readyEvery                               time.Duration
	readyMax                                 int
	readyBudget                              readiness.Budget
}

func run(args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		return err
	}
	zl, err := logging.NewLogger(cfg.logFormat, cfg.logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = zl.Sync() }()
	tlsCfg, err := clientTLS(zl, cfg)
	if err != nil {
		return err
	}
	opts, err := temporalclient.OptionsFromEnv(zl)
	if err != nil {
		return err
	}
	metricsErr, stopMetrics, err := serveMetrics(cfg, zl, tlsCfg, &opts)
	if err != nil {
		return err
	}
	defer stopMetrics()
	c, err := connect(opts)
	if err != nil {
		return err
	}
	defer c.Close()
	w, err := newWorker(cfg, c, tlsCfg)
	if err != nil {
		return err
	}
	return runUntilStopped(cfg, zl, w, metricsErr)
}

// parseFlags reads and checks the command line.
func parseFlags(args []string) (config, error) {
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
	var cfg config
	fs.StringVar(&cfg.locationURL, "location", envOr("BATON_LOCATION", location.DefaultURL), "location service base URL (env BATON_LOCATION)")
	cfg.security.Flags(fs, "worker", "control, admin and data")
	fs.StringVar(&cfg.redisPasswordFile, "redis-password-file", os.Getenv("BATON_REDIS_PASSWORD_FILE"),
		"`file` holding the password of the Redis servers of accounts of kind redis (mode 0600; env BATON_REDIS_PASSWORD_FILE); "+
			"empty: such accounts are refused")
	fs.StringVar(&cfg.pgPasswordFile, "pg-password-file", os.Getenv("BATON_PG_PASSWORD_FILE"),
		"`file` holding the password of --pg-user on the PostgreSQL servers of accounts of kind postgres (mode 0600; "+
			"env BATON_PG_PASSWORD_FILE); empty: such accounts are refused")
	fs.StringVar(&cfg.pgUser, "pg-user", "baton", "PostgreSQL `role` the worker connects as: a superuser (or a role with "+
		"pg_signal_backend, EXECUTE on pg_promote and the right to ALTER the application's role)")
	fs.StringVar(&cfg.pgAppRole, "pg-app-role", "app", "PostgreSQL `role` of the application, which a fence shuts out")
	fs.StringVar(&cfg.taskQueue, "task-queue", workflows.TaskQueue, "task queue to poll")
	fs.IntVar(&cfg.maxActivities, "max-concurrent-activities", 200, "activities run at once")
	fs.IntVar(&cfg.maxWorkflowTasks, "max-concurrent-workflow-tasks", 100, "workflow tasks run at once")
	fs.IntVar(&cfg.pollers, "pollers", 4, "pollers per task type")
	fs.StringVar(&cfg.logFormat, "log-format", "json", "log format: json or console")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.StringVar(&cfg.metricsListen, "metrics-listen", os.Getenv("BATON_METRICS_LISTEN"), "serve Prometheus metrics (the SDK's and Baton's) on http://`ADDR`/metrics, e.g. 0.0.0.0:9090; empty = off (env BATON_METRICS_LISTEN)")
	fs.DurationVar(&cfg.readyEvery, "readiness-interval", metrics.DefaultReadinessInterval, "with --metrics-listen: check every account's readiness to fail over this often and export baton_account_ready; 0 = off")
	fs.IntVar(&cfg.readyMax, "readiness-max-accounts", metrics.DefaultReadinessMaxAccounts, "at most this many baton_account_ready series (accounts not ready first); the counts cover every account")
	fs.Uint64Var(&cfg.readyBudget.MaxLagOps, "readiness-max-lag", 0, "ready only if at most this many ops are unacknowledged or unreplayed (default max(1000, 2 x partitions))")
	fs.DurationVar(&cfg.readyBudget.MaxRPO, "readiness-max-rpo", readiness.DefaultMaxRPO, "ready only if no partition with unacknowledged writes has gone longer without an acknowledgement")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	switch {
	case fs.NArg() > 0:
		return cfg, fmt.Errorf("unexpected arguments %q: the worker takes flags only (see --help)", fs.Args())
	case cfg.maxActivities <= 0 || cfg.maxWorkflowTasks <= 0 || cfg.pollers <= 0:
		return cfg, errors.New("--max-concurrent-activities, --max-concurrent-workflow-tasks and --pollers must be positive")
	case cfg.readyEvery < 0 || cfg.readyMax <= 0 || cfg.readyBudget.MaxRPO <= 0:
		return cfg, errors.New("--readiness-interval must not be negative, --readiness-max-accounts and --readiness-max-rpo must be positive")
	}
	return cfg, nil
}

// serveMetrics serves /metrics (with --metrics-listen), points the Temporal
// client's metrics at it and starts the readiness checks; it returns the
// endpoint's failures (nil channel when off) and how to stop it all.
func serveMetrics(cfg config, zl *zap.Logger, tlsCfg *tls.Config, opts *client.Options) (<-chan error, func(), error) {
	if cfg.metricsListen == "" {
		return nil, func() {}, nil
	}
	m, err := metrics.NewExporter(zl)
	if err != nil {
		return nil, nil, err
	}
	mctx, cancel := context.WithCancel(context.Background())
	stop := func() {
		cancel()
		_ = m.Close()
	}
	bound, errc, err := metrics.Serve(mctx, cfg.metricsListen, m)
	if err != nil {
		stop()
		return nil, nil, err
	}
	opts.MetricsHandler = m.Handler
	zl.Info("serving metrics", zap.String("url", "http://"+bound+"/metrics"))
	if cfg.readyEvery > 0 {
		r, err := metrics.NewReadiness(m.Registry, metrics.ReadinessOptions{
			Location: location.NewTLSClient(cfg.locationURL, tlsCfg), HTTPClient: stamp.HTTPClient(tlsCfg),
			Interval: cfg.readyEvery, MaxAccounts: cfg.readyMax, Budget: cfg.readyBudget, Logger: zl,
		})
		if err != nil {
			stop()
			return nil, nil, err
		}
		go r.Run(mctx)
	}
	return errc, stop, nil
}

// connect dials Temporal and registers Baton's search attributes.
func connect(opts client.Options) (client.Client, error) {
	c, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s: %w", opts.HostPort, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := register.SearchAttributes(ctx, c, namespaceOr(opts.Namespace)); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// newWorker builds the worker with Baton's workflows and activities.
func newWorker(cfg config, c client.Client, tlsCfg *tls.Config) (worker.Worker, error) {
	w := worker.New(c, cfg.taskQueue, worker.Options{
		MaxConcurrentActivityExecutionSize:     cfg.maxActivities,
		WorkerStopTimeout:                      30 * time.Second,
		MaxConcurrentWorkflowTaskExecutionSize: cfg.maxWorkflowTasks,
		MaxConcurrentActivityTaskPollers:       cfg.pollers,
		MaxConcurrentWorkflowTaskPollers:       cfg.pollers,
	})
	acts := activities.New(cfg.locationURL, tlsCfg)
	var err error
	if acts.ActionHTTP, err = appHTTP(cfg.security); err != nil {
		return nil, err
	}
	acts.Temporal = c // a reprotect asks whether a failover of the account runs
	if acts.Stores, err = storeDrivers(cfg, tlsCfg); err != nil {
		return nil, err
	}
	register.WorkflowsAndActivities(w, acts)
	return w, nil
}

// runUntilStopped runs the worker until SIGINT/SIGTERM or a failed metrics
// endpoint; it then stops polling and waits for running activities to
// finish (graceful shutdown).
func runUntilStopped(cfg config, zl *zap.Logger, w worker.Worker, metricsErr <-chan error) error {
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
	zl.Info("worker started", zap.String("task_queue", cfg.taskQueue), zap.String("location", cfg.locationURL))
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
