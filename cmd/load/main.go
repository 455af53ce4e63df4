// Command load writes traffic to a Baton account and audits afterwards that
// no acknowledged write was lost. Run "load help" for usage.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/batonhq/baton/internal/cli"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/traffic"
)

const usage = `load writes traffic to a Baton account and audits that no acknowledged
write was lost.

Usage:
  load run   --location URL --account A [--rate OPS] [--workers N] [--duration D] [--out FILE] [--audit]
  load audit --location URL --account A --acks FILE

Commands:
  run    write unique keys at --rate until --duration passes or Ctrl-C,
         following redirects and retrying through fencing; record every
         acknowledged write to --out (JSON lines); print stats and the
         split-brain check; with --audit, audit right after
  audit  read every key in an ack file back from the account's current
         primary (resolved in the location service) and report lost and
         changed keys and split-brain findings

Exit status: 0 clean, 1 error, 2 writes lost or changed, a split brain seen,
or an audit of no acknowledged write (it proves nothing).
`

// errFindings marks a run that worked but found data loss or split brain,
// or had nothing acknowledged to audit.
var errFindings = errors.New("audit failed")

func main() {
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	status := 1
	if errors.Is(err, errFindings) {
		status = 2 // the audit found lost or changed writes
	}
	cli.ExitWith("load", err, status)
}

func run(args []string, stdout, stderr io.Writer) error {
	return cli.Dispatch(args, usage, stdout, stderr, cli.Subcommands{
		"run":   func(ctx context.Context, args []string) error { return runLoad(ctx, args, stdout, stderr) },
		"audit": func(ctx context.Context, args []string) error { return runAudit(ctx, args, stdout, stderr) },
	})
}

func newLogger(verbose bool) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	if !verbose {
		cfg.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
	}
	log, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return log, nil
}

func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("load", "run", "run --location URL --account A [options]", stderr)
	var loc location.Dialer
	loc.DialFlags(fs, "load", "data")
	account := fs.String("account", "", "account `name` (required)")
	rate := fs.Float64("rate", 1000, "new keys per `second` across all workers; 0 = as fast as possible")
	workers := fs.Int("workers", 16, "concurrent `writers`")
	duration := fs.Duration("duration", 30*time.Second, "how long to write; 0 = until Ctrl-C")
	out := fs.String("out", "acks.jsonl", "write every acknowledged write to this JSON-lines `file` (\"\" = keep in memory only)")
	runID := fs.String("run-id", "", "key prefix (default: random)")
	doAudit := fs.Bool("audit", false, "audit right after the run")
	every := fs.Duration("progress", 5*time.Second, "print progress this often; 0 = never")
	verbose := fs.Bool("v", false, "log debug information")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *account == "" {
		fs.Usage()
		return errors.New("run: --account is required")
	}
	log, err := newLogger(*verbose)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	lc, err := loc.Dial(cli.Warner("load", stderr))
	if err != nil {
		return err
	}
	cfg := traffic.Config{Location: lc, Account: *account, Rate: *rate, Workers: *workers, RunID: *runID, Logger: log}
	var bw *bufio.Writer
	if *out != "" {
		f, err := os.OpenFile(*out, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return fmt.Errorf("open ack file: %w", err)
		}
		defer f.Close()
		bw = bufio.NewWriterSize(f, 1<<20)
		cfg.AckLog = bw
	}
	g := traffic.New(cfg)
	runCtx := ctx
	if *duration > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, *duration)
		defer cancel()
	}
	if err := g.Start(runCtx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "load: run %s writing to account %s at %s for %s\n", g.RunID(), *account, rateText(*rate), durText(*duration))
	progress(runCtx, stdout, g, *every)
	st := g.Stop()
	if bw != nil {
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("flush ack file %s: %w", *out, err)
		}
	}
	if err := g.Err(); err != nil {
		return err
	}
	return report(stdout, st, g.Acked(), lc, *account, *out, *doAudit)
}

// report prints a run's figures and its split-brain findings, and audits
// it if asked; findings or a failed audit are errFindings.
func report(stdout io.Writer, st traffic.Stats, acks []traffic.Ack, lc *location.Client, account, out string,
	doAudit bool) error {
	printStats(stdout, st)
	if out != "" {
		fmt.Fprintf(stdout, "  acks written to:    %s\n", out)
	}
	sb := traffic.CheckSplitBrain(acks)
	fmt.Fprintf(stdout, "  split-brain findings: %d\n", len(sb))
	for _, v := range sb {
		fmt.Fprintf(stdout, "    %s: %s\n", v.Kind, v.Message)
	}
	if doAudit {
		// The run may have ended by Ctrl-C, which must not cancel the audit
		// too: give it a fresh bound, and let a second Ctrl-C kill the
		// process the default way.
		signal.Reset(os.Interrupt, syscall.SIGTERM)
		actx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		rep, err := traffic.Audit(actx, lc, account, acks, traffic.AuditConfig{})
		if err != nil {
			return err
		}
		fmt.Fprint(stdout, rep.String())
		if err := rep.Err(); err != nil {
			return fmt.Errorf("%w: %w", errFindings, err)
		}
		return nil
	}
	if len(sb) > 0 {
		return fmt.Errorf("%w: %d split-brain findings", errFindings, len(sb))
	}
	return nil
}

func rateText(r float64) string {
	if r <= 0 {
		return "full speed"
	}
	return fmt.Sprintf("%.0f ops/s", r)
}

func durText(d time.Duration) string {
	if d <= 0 {
		return "until interrupted"
	}
	return d.String()
}

func progress(ctx context.Context, w io.Writer, g *traffic.Generator, every time.Duration) {
	if every <= 0 {
		<-ctx.Done()
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st := g.Stats()
			fmt.Fprintf(w, "  %6s  acks %d (+%.0f/s)  attempts %d  redirects %d  retries %v\n",
				st.Elapsed.Round(time.Second), st.Acks, float64(st.Acks-last)/every.Seconds(), st.Attempts, st.Redirects, st.Retries)
			last = st.Acks
		}
	}
}

func printStats(w io.Writer, st traffic.Stats) {
	fmt.Fprintf(w, "load: run %s finished after %s\n", st.RunID, st.Elapsed.Round(time.Millisecond))
	rate := 0.0
	if st.Elapsed > 0 {
		rate = float64(st.Acks) / st.Elapsed.Seconds()
	}
	fmt.Fprintf(w, "  acknowledged:       %d (%.0f/s)\n", st.Acks, rate)
	fmt.Fprintf(w, "  attempts:           %d\n", st.Attempts)
	fmt.Fprintf(w, "  abandoned at stop:  %d (never acknowledged, not judged)\n", st.Abandoned)
	fmt.Fprintf(w, "  redirects followed: %d\n", st.Redirects)
	fmt.Fprintf(w, "  location lookups:   %d\n", st.Resolves)
	for _, k := range sortedKeys(st.Retries) {
		fmt.Fprintf(w, "  retries %-11s %d\n", k+":", st.Retries[k])
	}
	for _, k := range sortedKeys(st.AcksByStamp) {
		fmt.Fprintf(w, "  acks by %-11s %d\n", k+":", st.AcksByStamp[k])
	}
	if st.LastError != "" {
		fmt.Fprintf(w, "  last retried error: %s\n", st.LastError)
	}
}

func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("load", "audit", "audit --location URL --account A --acks FILE", stderr)
	var loc location.Dialer
	loc.DialFlags(fs, "load", "data")
	account := fs.String("account", "", "account `name` (required)")
	acksPath := fs.String("acks", "acks.jsonl", "ack `file` written by load run --out")
	list := fs.Int("list", 20, "list at most this many lost or changed `keys`")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *account == "" {
		fs.Usage()
		return errors.New("audit: --account is required")
	}
	f, err := os.Open(*acksPath)
	if err != nil {
		return fmt.Errorf("open ack file: %w", err)
	}
	defer f.Close()
	acks, err := traffic.ReadAcks(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return fmt.Errorf("read %s: %w", *acksPath, err)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	lc, err := loc.Dial(cli.Warner("load", stderr))
	if err != nil {
		return err
	}
	rep, err := traffic.Audit(ctx, lc, *account, acks, traffic.AuditConfig{ListLimit: *list})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("print report: %w", err)
		}
	} else {
		fmt.Fprint(stdout, rep.String())
	}
	if err := rep.Err(); err != nil {
		return fmt.Errorf("%w: %w", errFindings, err)
	}
	return nil
}
