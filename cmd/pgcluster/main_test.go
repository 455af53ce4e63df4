package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/testsuite"
)

// TestSIGTERMLeavesNothing starts the built pgcluster (PostgreSQL, the
// Temporal server on it, the location service, stamps and workers), checks
// that PostgreSQL runs with its durable defaults, and ends it with SIGTERM:
// every process, PostgreSQL's included, is gone, and so are its directory
// and PostgreSQL's data directory.
func TestSIGTERMLeavesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Temporal on PostgreSQL (skipped with -short)")
	}
	if _, err := testsuite.PostgresBinDir(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v (.ci/run installs Debian's postgresql)", err)
		}
		t.Skipf("skipped: %v (with CI=true this fails)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute) // a first run builds the server
	defer cancel()
	bin, err := testsuite.BuildCommand(ctx, "./cmd/pgcluster", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// PostgreSQL may run as the postgres user (under root): its data
	// directory, in this TMPDIR, must be reachable.
	tmp := t.TempDir()
	for _, d := range []string{tmp, filepath.Dir(tmp)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := testsuite.StartCommand(bin, tmp, "--failover=false", "--workers", "1", "--kill-worker=false")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitOutput(ctx, "the cluster stays up"); err != nil {
		_ = r.Signal(syscall.SIGKILL)
		t.Fatal(err)
	}
	if !strings.Contains(r.Output(), "durable: PostgreSQL's defaults, fsync, full_page_writes and synchronous_commit on") ||
		strings.Contains(r.Output(), "NON-DURABLE") {
		t.Fatalf("PostgreSQL not reported durable:\n%s", r.Output())
	}
	if left := testsuite.Leftovers(r.Mark, r.TmpDir); len(left) < 5 {
		t.Fatalf("expected the cluster's processes to be running, found %q", left)
	}
	if err := r.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Minute)
	defer wcancel()
	exit, err := r.Wait(wctx)
	if err != nil {
		t.Fatal(err)
	}
	// Ending a cluster that stays up until a signal is its normal end.
	var ee *exec.ExitError
	if errors.As(exit, &ee) || strings.Contains(r.Output(), "logs kept") {
		t.Fatalf("pgcluster after SIGTERM: exit %v, or logs kept:\n%s", exit, r.Output())
	}
	lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
	defer lcancel()
	if procs, files := r.Leftovers(lctx); len(procs) > 0 || len(files) > 0 {
		t.Fatalf("left behind: processes %q, files %q; output:\n%s", procs, files, r.Output())
	}
}
