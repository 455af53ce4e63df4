package main

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/testsuite"
)

// buildDemo builds this command once per test (the Go build cache makes a
// rebuild cheap), and the Temporal dev server it starts (built on a
// machine's first run, a few minutes, not counted in the demo's own time).
func buildDemo(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the demo: needs the Temporal dev server (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := testsuite.TemporalBinary(ctx, nil); err != nil {
		t.Fatal(err)
	}
	bin, err := testsuite.BuildCommand(ctx, "./cmd/demo", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// quick are the demo's flags for a short run on a free UI port.
var quick = []string{"--partitions", "4", "--rate", "200", "--ui-port", "0"}

// runDemo runs the built demo with args, optionally sending sig once its
// output shows after, and returns the run once it exited.
func runDemo(t *testing.T, bin string, sig os.Signal, after string, args ...string) (*testsuite.CommandRun, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	r, err := testsuite.StartCommand(bin, t.TempDir(), append(append([]string{}, quick...), args...)...)
	if err != nil {
		t.Fatal(err)
	}
	if sig != nil {
		if err := r.WaitOutput(ctx, after); err != nil {
			_ = r.Signal(syscall.SIGKILL)
			t.Fatal(err)
		}
		if err := r.Signal(sig); err != nil {
			t.Fatal(err)
		}
	}
	exit, err := r.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r, exit
}

// requireNothingLeft: no process of the run and nothing in its TMPDIR.
func requireNothingLeft(t *testing.T, r *testsuite.CommandRun) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	procs, files := r.Leftovers(ctx)
	if len(procs) > 0 || len(files) > 0 {
		t.Fatalf("left behind: processes %q, files %q; output:\n%s", procs, files, r.Output())
	}
}

// A normal end (--exit) removes the run's directory and stops every process.
func TestDemoExitLeavesNothing(t *testing.T) {
	bin := buildDemo(t)
	r, exit := runDemo(t, bin, nil, "", "--exit", "--warmup", "500ms", "--after", "500ms")
	if exit != nil {
		t.Fatalf("demo --exit: %v\n%s", exit, r.Output())
	}
	if !strings.Contains(r.Output(), "audit PASS") || strings.Contains(r.Output(), "logs kept") {
		t.Fatalf("no passing audit, or logs kept:\n%s", r.Output())
	}
	requireNothingLeft(t, r)
}

// The same with an account of Redis shards (--store redis: 16
// redis-server processes) and of PostgreSQL shards (--store postgres: 8
// servers, their data directories in the run's TMPDIR), stopped and
// removed at the end like the rest.
func TestDemoStoresExitLeaveNothing(t *testing.T) {
	for _, store := range []string{"redis", "postgres"} {
		t.Run(store, func(t *testing.T) {
			testsuite.RequireStore(t, store)
			bin := buildDemo(t)
			r, exit := runDemo(t, bin, nil, "", "--store", store, "--exit", "--warmup", "500ms", "--after", "500ms")
			if exit != nil {
				t.Fatalf("demo --store %s --exit: %v\n%s", store, exit, r.Output())
			}
			if !strings.Contains(r.Output(), "audit PASS") || !strings.Contains(r.Output(), "): completed") {
				t.Fatalf("no completed failover and passing audit:\n%s", r.Output())
			}
			requireNothingLeft(t, r)
		})
	}
}

// A closed terminal (SIGHUP) or a SIGTERM in the middle of the run stops
// every process and removes the run's directory.
func TestDemoSignalLeavesNothing(t *testing.T) {
	bin := buildDemo(t)
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			// Mid-run: the traffic runs, the failover has not started.
			r, exit := runDemo(t, bin, sig, "baton: live traffic at", "--warmup", "10m")
			var ee *exec.ExitError
			if !errors.As(exit, &ee) || !strings.Contains(r.Output(), "interrupted") {
				t.Fatalf("demo after %v: exit %v, want an interrupted run's status 1:\n%s", sig, exit, r.Output())
			}
			if strings.Contains(r.Output(), "logs kept") {
				t.Fatalf("an interrupted run is not a failure: nothing to keep:\n%s", r.Output())
			}
			requireNothingLeft(t, r)
		})
	}
}

// A failed run stops every process, keeps its logs and says where, in one
// line.
func TestDemoFailureKeepsLogs(t *testing.T) {
	bin := buildDemo(t)
	// The cluster starts; the account name is refused.
	r, exit := runDemo(t, bin, nil, "", "--exit", "--account", "Not_Valid")
	if exit == nil {
		t.Fatalf("demo with an invalid account passed:\n%s", r.Output())
	}
	m := regexp.MustCompile(`(?m)^logs kept in (\S+)$`).FindStringSubmatch(r.Output())
	if m == nil {
		t.Fatalf("no \"logs kept in DIR\" line:\n%s", r.Output())
	}
	if filepath.Dir(m[1]) != r.TmpDir {
		t.Fatalf("logs kept in %s, not a directory of the run's TMPDIR %s", m[1], r.TmpDir)
	}
	for _, log := range []string{"temporal.log", "worker.log", "stamp-a.log"} {
		if _, err := os.Stat(filepath.Join(m[1], log)); err != nil {
			t.Errorf("the kept directory lacks %s: %v", log, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if procs, _ := r.Leftovers(ctx); len(procs) > 0 {
		t.Fatalf("processes left behind: %q", procs)
	}
}
