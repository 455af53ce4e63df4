package testsuite

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A run directory made by NewRunDir is removed at the end of a run that did
// not fail; a failed run keeps it and says where in one line; a directory
// the caller chose is never removed.
func TestRunDirRemovedUnlessTheRunFailed(t *testing.T) {
	t.Setenv("TMPDIR", t.TempDir())
	for _, failed := range []bool{false, true} {
		d, err := NewRunDir("", "unit")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.Path, "x.log"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		d.Finish(&out, failed)
		_, err = os.Stat(d.Path)
		switch {
		case failed && (err != nil || out.String() != "logs kept in "+d.Path+"\n"):
			t.Fatalf("failed run: stat %v, said %q", err, out.String())
		case !failed && (!errors.Is(err, os.ErrNotExist) || out.Len() > 0):
			t.Fatalf("run that passed: stat %v, said %q", err, out.String())
		}
	}
	chosen := filepath.Join(t.TempDir(), "chosen")
	d, err := NewRunDir(chosen, "unit")
	if err != nil {
		t.Fatal(err)
	}
	d.Finish(&bytes.Buffer{}, false)
	if _, err := os.Stat(chosen); err != nil {
		t.Fatalf("a directory the caller chose was removed: %v", err)
	}
}

// cleanupChild is the argument that makes this test binary the child of
// TestSignalLeavesNothing.
const cleanupChild = "cleanup-child"

// TestSignalLeavesNothing runs this test binary as a child that starts two
// processes through the harness and makes a run directory, then ends it
// with SIGINT, SIGTERM and SIGHUP: TestMain's handler stops the processes
// and removes the directory before the child exits.
func TestSignalLeavesNothing(t *testing.T) {
	if slices.Contains(flag.Args(), cleanupChild) {
		signalChild(t)
		return
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			r, err := StartCommand(os.Args[0], t.TempDir(), "-test.run=^TestSignalLeavesNothing$", cleanupChild)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.WaitOutput(ctx, "child ready"); err != nil {
				_ = r.Signal(syscall.SIGKILL)
				t.Fatal(err)
			}
			if err := r.Signal(sig); err != nil {
				t.Fatal(err)
			}
			exit, err := r.Wait(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := fmt.Sprintf("testsuite: %v: stopped 2 processes, removed 1 directories", sig)
			var ee *exec.ExitError
			if !errors.As(exit, &ee) || !strings.Contains(r.Output(), want) {
				t.Fatalf("child after %v: exit %v, want status 1 and %q:\n%s", sig, exit, want, r.Output())
			}
			lctx, lcancel := context.WithTimeout(ctx, 30*time.Second)
			defer lcancel()
			if procs, files := r.Leftovers(lctx); len(procs) > 0 || len(files) > 0 {
				t.Fatalf("left behind: processes %q, files %q; output:\n%s", procs, files, r.Output())
			}
		})
	}
}

// signalChild starts two sleeping processes and a run directory, says so,
// and waits to be ended by a signal.
func signalChild(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	d, err := NewRunDir("", "cleanup-child")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		p := &Process{Name: fmt.Sprintf("sleep-%d", i), Path: sleep, Args: []string{"600"}, Log: logPath(d.Path, fmt.Sprintf("sleep-%d", i))}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
	}
	fmt.Println("child ready")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	<-ctx.Done()
	t.Fatal("no signal came")
}
