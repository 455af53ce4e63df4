package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/internal/temporalclient"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/webhook"
)

// Environment variables that may carry the receiver's secrets (a file is
// preferred; a flag value would show in `ps`).
const (
	envWebhookToken = "BATON_WEBHOOK_TOKEN"
	envWebhookHMAC  = "BATON_WEBHOOK_HMAC_SECRET"
)

// webhookFlags are baton webhook's flags.
type webhookFlags struct {
	listen, configFile, tokenFile, hmacFile, logFormat string
	serveCert                                          string
	maxBody                                            int64
	timeout                                            time.Duration
	checkAccounts                                      bool
}

// newWebhookCmd builds baton webhook; its flags are webhookFlags, laid out
// as baton failover's are (a flags struct, then the command): the two are
// alike in layout only, they share no logic.
func newWebhookCmd(g *globals) *cobra.Command {
	wf := &webhookFlags{}
	cmd := &cobra.Command{
		Use:   "webhook --config FILE --token-file FILE",
		Short: "Receive Alertmanager notifications and start failovers, exactly once per account",
		Long: `webhook serves Baton's alert receiver:

  POST /v1/alertmanager   Alertmanager webhook notifications (payload version 4)
  POST /v1/trigger        a plain JSON trigger: {"account","to","mode","reason",...}
  GET  /healthz           liveness
  GET  /readyz            200 when Temporal answers
  GET  /metrics           Prometheus metrics

The config file maps alerts to failovers (label matchers; which labels name
the account and the destination stamp; mode; approval; cancel on resolve;
cooldown): see docs/WEBHOOK.md and examples/webhook.yaml.

Every request must carry the bearer token (Authorization: Bearer ...) or an
HMAC-SHA256 signature of its body (X-Baton-Signature: sha256=<hex>). The
secrets come from files (--token-file, --hmac-secret-file) or the
environment (` + envWebhookToken + `, ` + envWebhookHMAC + `), never from a
flag value.

A failover's workflow ID is failover-<account>: the first alert starts it,
repeats and further alerts attach to it. Alerts for an unknown account (per
the location service, --location) are refused, unless --check-accounts=false.
The receiver answers 2xx once Temporal recorded the alert, 5xx when Temporal
cannot be reached (Alertmanager retries), 4xx for what a retry cannot fix.`,
		Example: `  baton webhook --config /etc/baton/webhook.yaml --token-file /etc/baton/webhook.token
  BATON_WEBHOOK_TOKEN=... baton webhook --config webhook.yaml --listen 0.0.0.0:9095`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o, err := wf.options(g)
			if err != nil {
				return err
			}
			zl, err := logging.NewLogger(wf.logFormat, "info")
			if err != nil {
				return err
			}
			defer func() { _ = zl.Sync() }()
			o.Logger = zl
			return serveWebhook(cmd.Context(), g, zl, wf, o)
		},
	}
	wf.register(cmd)
	return cmd
}

// register adds the flags to cmd.
func (wf *webhookFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVar(&wf.listen, "listen", "127.0.0.1:9095", "address to serve on")
	f.StringVar(&wf.serveCert, "serve-cert", "webhook", "node certificate in --certs-dir the receiver serves TLS with "+
		"(stampd certs create-node webhook --host HOST); with --insecure it serves plaintext")
	f.StringVar(&wf.configFile, "config", "", "webhook config file, YAML (required)")
	f.StringVar(&wf.tokenFile, "token-file", "", "file holding the bearer token (or env "+envWebhookToken+")")
	f.StringVar(&wf.hmacFile, "hmac-secret-file", "",
		"file holding the HMAC-SHA256 secret (or env "+envWebhookHMAC+")")
	f.Int64Var(&wf.maxBody, "max-body", webhook.DefaultMaxBodyBytes, "largest request body in bytes (larger: 413)")
	f.DurationVar(&wf.timeout, "timeout", webhook.DefaultTimeout,
		"time budget of one request's calls to the location service and Temporal (past it: 503, Alertmanager retries)")
	f.BoolVar(&wf.checkAccounts, "check-accounts", true,
		"refuse alerts naming an account the location service (--location) does not know")
	f.StringVar(&wf.logFormat, "log-format", "json", "log format: json or console")
}

// options checks the flags and loads the config and the secrets they
// name: the receiver's options, but for its client, account directory and
// logger.
func (wf *webhookFlags) options(g *globals) (webhook.Options, error) {
	if wf.configFile == "" {
		return webhook.Options{}, errors.New(
			"--config is required: the file that maps alerts to failovers (see docs/WEBHOOK.md)")
	}
	if wf.maxBody <= 0 || wf.timeout <= 0 {
		return webhook.Options{}, errors.New("--max-body and --timeout must be positive")
	}
	cfg, err := webhook.LoadConfig(wf.configFile)
	if err != nil {
		return webhook.Options{}, err
	}
	token, err := webhook.LoadSecret(wf.tokenFile, envWebhookToken)
	if err != nil {
		return webhook.Options{}, fmt.Errorf("--token-file: %w", err)
	}
	secret, err := webhook.LoadSecret(wf.hmacFile, envWebhookHMAC)
	if err != nil {
		return webhook.Options{}, fmt.Errorf("--hmac-secret-file: %w", err)
	}
	if len(token) == 0 && len(secret) == 0 {
		return webhook.Options{}, fmt.Errorf("no secret: give --token-file or --hmac-secret-file (or set %s or %s); "+
			"the receiver never runs unauthenticated", envWebhookToken, envWebhookHMAC)
	}
	return webhook.Options{
		Config:       cfg,
		Auth:         webhook.Auth{Token: token, HMACSecret: secret},
		TaskQueue:    g.taskQueue,
		MaxBodyBytes: wf.maxBody,
		Timeout:      wf.timeout,
	}, nil
}

// serveWebhook runs the receiver until ctx ends or SIGINT/SIGTERM, then
// lets requests in flight finish.
func serveWebhook(ctx context.Context, g *globals, zl *zap.Logger, wf *webhookFlags, o webhook.Options) error {
	copts, err := temporalclient.OptionsFromEnv(zl.WithOptions(zap.IncreaseLevel(zap.WarnLevel)))
	if err != nil {
		return err
	}
	// Lazy: the receiver starts while Temporal is away, and answers 503
	// (Alertmanager retries) until it is back.
	c, err := client.NewLazyClient(copts)
	if err != nil {
		return fmt.Errorf("Temporal client for %s: %w", copts.HostPort, err)
	}
	defer c.Close()
	o.Client = c
	loc, err := g.loc()
	if err != nil {
		return err
	}
	tlsCfg, err := wf.serverTLS(g, zl)
	if err != nil {
		return err
	}
	// The maintenance switches hold alerts about what they cover.
	o.Fleet = loc
	if wf.checkAccounts {
		o.Accounts = locationDirectory{loc}
	}
	h, err := webhook.New(o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", wf.listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", wf.listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      o.Timeout + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	zl.Info("webhook receiver listening",
		zap.String("addr", ln.Addr().String()),
		zap.Bool("tls", tlsCfg != nil),
		zap.String("temporal", copts.HostPort),
		zap.String("task_queue", o.TaskQueue),
		zap.Int("rules", len(o.Config.Rules)),
		zap.Bool("check_accounts", wf.checkAccounts))
	select {
	case err := <-served:
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	zl.Info("webhook receiver shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), o.Timeout+5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shut down the webhook receiver: %w", err)
	}
	return nil
}

// serverTLS is the receiver's TLS: the node certificate --serve-cert in
// --certs-dir (Alertmanager checks it against the cluster's CA), or nil,
// plaintext, said loudly, with --insecure.
func (wf *webhookFlags) serverTLS(g *globals, zl *zap.Logger) (*tls.Config, error) {
	if g.security.Insecure {
		zl.Warn("INSECURE: serving the alert receiver in plaintext: its bearer token crosses the network " +
			"readable by anyone on the path; use --certs-dir outside tests")
		return nil, nil
	}
	cfg, err := auth.ServerTLS(auth.NodeFiles(g.security.Dir, wf.serveCert))
	if err != nil {
		return nil, fmt.Errorf("the receiver's certificate %q in %s (stampd certs create-node %s --dir %s --host HOST): %w",
			wf.serveCert, g.security.Dir, wf.serveCert, g.security.Dir, err)
	}
	return cfg, nil
}

// locationDirectory answers webhook.AccountDirectory from the location
// service.
type locationDirectory struct{ loc *location.Client }

func (d locationDirectory) Known(ctx context.Context, account string) (bool, error) {
	_, err := d.loc.Lookup(ctx, account)
	if location.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("location service %s: %w", d.loc.Base(), err)
	}
	return true, nil
}
