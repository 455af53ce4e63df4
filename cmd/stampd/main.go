// Command stampd runs Baton's reference storage stamp and location service,
// and provisions accounts on them. Run "stampd help" for usage.
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/batonhq/baton/internal/cli"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

const usage = `stampd runs Baton's reference storage stamp and location service.

Usage:
  stampd certs     create-ca | create-node NAME | create-client NAME --roles R [--dir DIR]
  stampd serve     --name NAME (--certs-dir DIR | --insecure) [--listen ADDR] [--data DIR] [--location URL] [options]
  stampd location  (--certs-dir DIR | --insecure) [--listen ADDR] [--data DIR]
  stampd register  --location URL --name NAME --url URL
  stampd provision --location URL --account A --partitions N --primary NAME --secondary NAME

Commands:
  certs      create the cluster's CA, node and client certificates
  serve      serve one storage stamp; registers it with the location service
             when --location is given
  location   serve the location service (account -> primary stamp and epoch)
  register   register (or re-point) a stamp's base URL in the location service
  provision  create an account on a registered stamp pair (secondary first,
             then primary) and register it in the location service; idempotent

Run "stampd COMMAND --help" for a command's options. An empty --data keeps
the state in a temporary file that is deleted on exit (memory mode).

serve and location are secure by default: they serve TLS with the node
certificate in --certs-dir and check every caller's certificate (or token)
and role (docs/SECURITY.md). Plaintext without authentication takes an
explicit --insecure.
`

func main() { cli.Exit("stampd", run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) error {
	return cli.Dispatch(args, usage, stdout, stderr, cli.Subcommands{
		"serve":     func(ctx context.Context, args []string) error { return serve(ctx, args, stderr) },
		"location":  func(ctx context.Context, args []string) error { return serveLocation(ctx, args, stderr) },
		"register":  func(ctx context.Context, args []string) error { return register(ctx, args, stdout, stderr) },
		"provision": func(ctx context.Context, args []string) error { return provision(ctx, args, stdout, stderr) },
		"certs":     func(_ context.Context, args []string) error { return certs(args, stdout, stderr) },
	})
}

func newLogger() (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Sampling = nil // a failover test wants every line
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder // readable by people and jq alike
	log, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return log, nil
}

// httpServe serves h on listen until ctx is done, then shuts down
// gracefully. ready is called with the bound base URL once listening.
func httpServe(ctx context.Context, log *zap.Logger, listen string, tlsCfg *tls.Config, h http.Handler,
	ready func(url string)) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	scheme := "http://"
	if tlsCfg != nil {
		ln, scheme = tls.NewListener(ln, tlsCfg), "https://"
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	ready(scheme + ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", listen, err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	return nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cli.NewFlagSet("stampd", "serve", "serve --name NAME [options]", stderr)
	name := fs.String("name", "", "stamp `name`, e.g. stamp-a (required); its node certificate's name")
	listen := fs.String("listen", "127.0.0.1:7101", "`address` to listen on (port 0 picks a free one)")
	advertise := fs.String("advertise", "", "base `URL` to register in the location service (default: http(s)://<bound listen address>)")
	data := fs.String("data", "", "data `dir`ectory; empty = memory mode")
	loc := fs.String("location", "", "location service base `URL`; the stamp registers itself there and consults it before an unfence")
	sec := securityFlags(fs)
	cfg, faults := stampFlags(fs)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *name == "" {
		fs.Usage()
		return errors.New("serve: --name is required")
	}
	log, err := newLogger()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("stamp", *name))
	var tlsCfg *tls.Config
	if cfg.Auth, tlsCfg, err = sec.server(log, "serve", *name); err != nil {
		return err
	}
	if cfg.ClientTLS, err = sec.client(*name); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	cfg.Name, cfg.DataDir, cfg.LocationURL, cfg.Logger = *name, *data, *loc, log
	if err := faults.apply(cfg); err != nil {
		return err
	}
	srv, err := stamp.Open(*cfg)
	if err != nil {
		return err
	}
	defer func() {
		if err := srv.Close(); err != nil {
			log.Error("close stamp", zap.Error(err))
		}
	}()
	return httpServe(ctx, log, *listen, tlsCfg, srv.Handler(), func(url string) {
		if *advertise == "" {
			*advertise = url
		}
		log.Info("stamp ready", zap.String("url", url), zap.String("advertise", *advertise),
			zap.String("data", *data), zap.Bool("durable", *data != ""), zap.Bool("faults", cfg.EnableFaults))
		if *loc != "" {
			lc := location.NewClient(*loc, stamp.HTTPClient(cfg.ClientTLS))
			go registerUntilDone(ctx, log, lc, location.Stamp{Name: *name, URL: *advertise})
		}
	})
}

// faultFlags are the stamp's initial injected faults.
type faultFlags struct {
	errRate     *float64
	latency     *time.Duration
	unreachable *bool
	scope       *string
}

// stampFlags declares the stamp's tuning and fault flags.
func stampFlags(fs *flag.FlagSet) (*stamp.Config, *faultFlags) {
	cfg := &stamp.Config{}
	fs.IntVar(&cfg.ReplicationBatch, "replication-batch", 1000, "max log entries per partition per shipment")
	fs.DurationVar(&cfg.ReplicationDelay, "replication-delay", 0, "added WAN `delay` per shipment, e.g. 500ms")
	fs.Float64Var(&cfg.ReplayRate, "replay-rate", 0, "secondary replay `ops/s` per partition; 0 = unthrottled")
	fs.IntVar(&cfg.LogRetain, "log-retain", stamp.DefaultLogRetain,
		"log `entries` each partition keeps below what its peer durably received (primary) or it replayed (secondary); -1 keeps the whole log")
	fs.BoolVar(&cfg.EnableFaults, "enable-faults", false,
		"serve the fault-injection routes (/v1/faults, faults role) and allow the --fault-* flags: drills and tests only")
	return cfg, &faultFlags{
		errRate:     fs.Float64("fault-error-rate", 0, "inject 503 injected_fault on this `share` [0,1] of calls (needs --enable-faults)"),
		latency:     fs.Duration("fault-latency", 0, "inject this `delay` into every call (needs --enable-faults)"),
		unreachable: fs.Bool("fault-unreachable", false, "close every connection without answering (needs --enable-faults)"),
		scope:       fs.String("fault-scope", "all", "calls the --fault-* flags apply to: data, control, replication or all"),
	}
}

// apply adds the initial fault the flags describe, if any, to cfg.
func (f *faultFlags) apply(cfg *stamp.Config) error {
	if *f.errRate <= 0 && *f.latency <= 0 && !*f.unreachable {
		return nil
	}
	if !cfg.EnableFaults {
		return errors.New("serve: the --fault-* flags inject faults, which takes --enable-faults (drills and tests only)")
	}
	cfg.Faults = append(cfg.Faults, stamp.Fault{
		Scope: *f.scope, ErrorRate: *f.errRate, LatencyMillis: int(f.latency.Milliseconds()), Unreachable: *f.unreachable,
	})
	return nil
}

// registerUntilDone registers the stamp, retrying while the location service
// is not up yet: stamps and the location service may start in any order.
func registerUntilDone(ctx context.Context, log *zap.Logger, lc *location.Client, s location.Stamp) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err := lc.RegisterStamp(ctx, s)
		if err == nil {
			log.Info("registered in location service", zap.String("location", lc.Base()), zap.String("url", s.URL))
			return
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("register in location service failed; retrying", zap.String("location", lc.Base()), zap.Duration("in", wait), zap.Error(err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func serveLocation(ctx context.Context, args []string, stderr io.Writer) error {
	fs := cli.NewFlagSet("stampd", "location", "location [--listen ADDR] [--data DIR]", stderr)
	listen := fs.String("listen", "127.0.0.1:7100", "`address` to listen on")
	data := fs.String("data", "", "data `dir`ectory; empty = memory mode")
	name := fs.String("name", "location", "the service's node certificate `name`")
	sec := securityFlags(fs)
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger()
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	log = log.With(zap.String("service", "location"))
	a, tlsCfg, err := sec.server(log, "location", *name)
	if err != nil {
		return err
	}
	srv, err := location.Open(location.Config{DataDir: *data, Logger: log, Auth: a})
	if err != nil {
		return err
	}
	defer func() {
		if err := srv.Close(); err != nil {
			log.Error("close location store", zap.Error(err))
		}
	}()
	return httpServe(ctx, log, *listen, tlsCfg, srv.Handler(), func(url string) {
		log.Info("location service ready", zap.String("url", url), zap.String("data", *data), zap.Bool("durable", *data != ""))
	})
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func register(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("stampd", "register", "register --location URL --name NAME --url URL", stderr)
	var loc location.Dialer
	loc.DialFlags(fs, "admin", "admin")
	name := fs.String("name", "", "stamp `name` (required)")
	u := fs.String("url", "", "stamp base `URL`, e.g. http://127.0.0.1:7101 (required)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *name == "" || *u == "" {
		fs.Usage()
		return errors.New("register: --name and --url are required")
	}
	s := location.Stamp{Name: *name, URL: strings.TrimRight(*u, "/")}
	lc, err := loc.Dial(cli.Warner("stampd", stderr))
	if err != nil {
		return err
	}
	if err := lc.RegisterStamp(ctx, s); err != nil {
		return fmt.Errorf("register %s: %w", *name, err)
	}
	return printJSON(stdout, s)
}

func provision(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("stampd", "provision", "provision --location URL --account A --partitions N --primary NAME --secondary NAME", stderr)
	var loc location.Dialer
	loc.DialFlags(fs, "admin", "admin")
	account := fs.String("account", "", "account `name`, [a-z0-9-]{1,63} (required)")
	partitions := fs.Int("partitions", 16, "number of `partitions`, 1..65536")
	primary := fs.String("primary", "", "primary stamp `name`, registered in the location service (required)")
	secondary := fs.String("secondary", "", "secondary stamp `name`, registered in the location service (required)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *account == "" || *primary == "" || *secondary == "" {
		fs.Usage()
		return errors.New("provision: --account, --primary and --secondary are required")
	}
	lc, err := loc.Dial(cli.Warner("stampd", stderr))
	if err != nil {
		return err
	}
	stamps, err := lc.Stamps(ctx)
	if err != nil {
		return fmt.Errorf("provision: list stamps: %w", err)
	}
	urls := map[string]string{}
	for _, s := range stamps {
		urls[s.Name] = s.URL
	}
	for _, n := range []string{*primary, *secondary} {
		if urls[n] == "" {
			return fmt.Errorf("provision: stamp %s is not registered in %s; start it with --location or run stampd register", n, lc.Base())
		}
	}
	a, err := location.Provision(ctx, lc,
		stamp.NewClient(urls[*primary], lc.HTTPClient()), stamp.NewClient(urls[*secondary], lc.HTTPClient()),
		*primary, *secondary, *account, *partitions)
	if err != nil {
		return err
	}
	return printJSON(stdout, a)
}
