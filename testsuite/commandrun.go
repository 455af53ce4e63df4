package testsuite

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CommandRun is a program of this module (the demo, pgcluster, the bench)
// run by a test the way a person runs it, with its temporary files in a
// directory of their own (TMPDIR) and a mark in its environment that every
// process it starts inherits, so that the test can tell whether the run
// left anything behind.
type CommandRun struct {
	Cmd    *exec.Cmd
	TmpDir string // the run's TMPDIR
	Mark   string // NAME=VALUE in its environment

	out  syncBuffer
	done chan struct{}
	err  error // of Wait, once done is closed
}

// BuildCommand builds the main package pkg (e.g. "./cmd/demo", relative to
// the module root) into dir and returns the binary's path.
func BuildCommand(ctx context.Context, pkg, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, pkg)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// StartCommand starts bin with args, TMPDIR=tmpDir and a fresh mark in its
// environment, collecting its output.
func StartCommand(bin, tmpDir string, args ...string) (*CommandRun, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	r := &CommandRun{TmpDir: tmpDir, Mark: "BATON_TEST_RUN_MARK=" + hex.EncodeToString(b), done: make(chan struct{})}
	r.Cmd = exec.Command(bin, args...)
	r.Cmd.Env = append(os.Environ(), "TMPDIR="+tmpDir, r.Mark)
	r.Cmd.Stdout, r.Cmd.Stderr = &r.out, &r.out
	// Dies with the test, like the harness's own children.
	r.Cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := r.Cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { r.err = r.Cmd.Wait(); close(r.done) }()
	return r, nil
}

// Output is what it printed so far (stdout and stderr).
func (r *CommandRun) Output() string { return r.out.String() }

// WaitOutput polls until its output contains s, it exits, or ctx ends.
func (r *CommandRun) WaitOutput(ctx context.Context, s string) error {
	err := Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		if strings.Contains(r.Output(), s) {
			return true, nil
		}
		select {
		case <-r.done:
			return false, fmt.Errorf("exited (%v) before printing %q", r.err, s)
		default:
			return false, nil
		}
	})
	if err != nil {
		return fmt.Errorf("%w; output:\n%s", err, r.Output())
	}
	return nil
}

// Signal sends sig to it.
func (r *CommandRun) Signal(sig os.Signal) error { return r.Cmd.Process.Signal(sig) }

// Wait waits for it to exit or ctx to end (then it is killed): the exit
// status (an *exec.ExitError for a non-zero one), or ctx's error.
func (r *CommandRun) Wait(ctx context.Context) (exit error, err error) {
	select {
	case <-r.done:
		return r.err, nil
	case <-ctx.Done():
		_ = r.Cmd.Process.Kill()
		<-r.done
		return r.err, fmt.Errorf("did not exit in time: %w; output:\n%s", ctx.Err(), r.Output())
	}
}

// Leftovers polls until no process of the run is left (by the mark, or
// TMPDIR in a command line) or ctx ends, and returns those left and the
// entries of its TMPDIR.
func (r *CommandRun) Leftovers(ctx context.Context) (procs, files []string) {
	_ = Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		procs = Leftovers(r.Mark, r.TmpDir)
		return len(procs) == 0, nil
	})
	ents, err := os.ReadDir(r.TmpDir)
	if err != nil {
		files = append(files, err.Error())
	}
	for _, e := range ents {
		files = append(files, filepath.Join(r.TmpDir, e.Name()))
	}
	return procs, files
}

// syncBuffer is a bytes.Buffer safe for a writer and readers at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
