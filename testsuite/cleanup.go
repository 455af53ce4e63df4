package testsuite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Nothing is left behind: every process the harness starts is on a list
// until it exits, and every temporary directory it makes (a PostgreSQL data
// directory, a command's RunDir, a test's cluster directory) is on another
// until it is removed or kept on purpose. A command or a test binary ended
// by a signal stops the first and removes the second with Cleanup; a normal
// end does the same through Cluster.Close and RunDir.Finish. Child
// processes also get SIGKILL if the harness itself dies (Pdeathsig), which
// is all that can be done for a SIGKILL of the harness.

// ErrCleanedUp is returned by Process.Start and StartPostgres once Cleanup
// ran: the program is on its way out and starts nothing new.
var ErrCleanedUp = errors.New("the harness is shutting down (Cleanup ran)")

var reg = struct {
	mu     sync.Mutex
	closed bool
	procs  map[*Process]struct{}
	dirs   map[string]struct{}
}{procs: map[*Process]struct{}{}, dirs: map[string]struct{}{}}

// track puts p on the list of running processes; false after Cleanup.
func track(p *Process) bool {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.closed {
		return false
	}
	reg.procs[p] = struct{}{}
	return true
}

func untrack(p *Process) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	delete(reg.procs, p)
}

// trackDir puts a directory on the list that Cleanup removes; false after
// Cleanup (the caller then removes it itself and gives up).
func trackDir(dir string) bool {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.closed {
		return false
	}
	reg.dirs[dir] = struct{}{}
	return true
}

// untrackDir takes a directory off that list: it was removed, or is kept
// on purpose (the logs of a failed run).
func untrackDir(dir string) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	delete(reg.dirs, dir)
}

// Cleanup stops, all at once, every process the harness started that still
// runs (its StopSignal, then SIGKILL after grace), then removes every
// temporary directory on the list. It is the way out of a program ended by
// a signal: afterwards Process.Start and StartPostgres refuse. It reports
// how many processes it stopped and directories it removed.
func Cleanup(grace time.Duration) (procs, dirs int) {
	reg.mu.Lock()
	reg.closed = true
	ps := make([]*Process, 0, len(reg.procs))
	for p := range reg.procs {
		ps = append(ps, p)
	}
	reg.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range ps {
		wg.Add(1)
		go func() { defer wg.Done(); p.Stop(grace) }()
	}
	wg.Wait()
	// A directory registered meanwhile (its maker saw no closed list yet) is
	// taken too: the list is read after every process is gone.
	reg.mu.Lock()
	ds := make([]string, 0, len(reg.dirs))
	for d := range reg.dirs {
		ds = append(ds, d)
	}
	reg.dirs = map[string]struct{}{}
	reg.mu.Unlock()
	for _, d := range ds {
		_ = os.RemoveAll(d)
	}
	return len(ps), len(ds)
}

// RunDir is the directory of one run of a command built on the harness
// (the demo, the bench, pgcluster): every process's log, config and data.
type RunDir struct {
	Path string
	temp bool // made by NewRunDir: removed at the end of a run that did not fail
}

// NewRunDir makes a new temporary directory baton-<name>-*, or uses dir if
// it is given (made if missing, and never removed: the caller chose it).
// A temporary one is removed by Finish, or by Cleanup on a signal.
func NewRunDir(dir, name string) (*RunDir, error) {
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		return &RunDir{Path: dir}, nil
	}
	d, err := os.MkdirTemp("", "baton-"+name+"-")
	if err != nil {
		return nil, fmt.Errorf("create a directory for the %s: %w", name, err)
	}
	if !trackDir(d) {
		_ = os.RemoveAll(d)
		return nil, ErrCleanedUp
	}
	return &RunDir{Path: d, temp: true}, nil
}

// String is the path and what becomes of it.
func (d *RunDir) String() string {
	if d.temp {
		return d.Path + " (removed at the end, kept if something fails)"
	}
	return d.Path
}

// Finish ends the run; call it after the cluster is closed. When the run
// failed the directory is kept and Finish writes one line to w, "logs kept
// in DIR"; otherwise a temporary directory is removed.
func (d *RunDir) Finish(w io.Writer, failed bool) {
	if failed {
		untrackDir(d.Path)
		fmt.Fprintf(w, "logs kept in %s\n", d.Path)
		return
	}
	if d.temp {
		_ = os.RemoveAll(d.Path)
		untrackDir(d.Path)
	}
}

// Signals end a command the ways a person does: Ctrl-C (SIGINT), SIGTERM,
// and a closed terminal (SIGHUP).
var Signals = []os.Signal{os.Interrupt, syscall.SIGTERM, syscall.SIGHUP}

// ErrInterrupted is the cause of a SignalContext's cancellation.
var ErrInterrupted = errors.New("interrupted")

// SignalContext returns a context that the first of Signals cancels (its
// cause wraps ErrInterrupted and names the signal), so that a command
// unwinds through its deferred cleanup: Cluster.Close, RunDir.Finish.
// Later signals are ignored meanwhile (a closed terminal may send SIGHUP
// twice). Should the unwinding take longer than bound, SignalContext calls
// Cleanup itself and exits with status 1. SIGPIPE is caught as well, so
// that writing to a pipe whose reader went away with the terminal is an
// error rather than the end of the process before it cleaned up. A command
// started by `go run`, which dies of SIGTERM without passing it on, gets
// SIGTERM when go run dies (so `kill` of what a person started cleans up
// too). Call stop last (defer it first): it ends all this.
func SignalContext(parent context.Context, w io.Writer, name string, bound time.Duration) (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(parent)
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, Signals...)
	pipe := make(chan os.Signal, 1) // never read: SIGPIPE is only caught
	signal.Notify(pipe, syscall.SIGPIPE)
	done := make(chan struct{})
	if ppid := os.Getppid(); parentIsGo(ppid) {
		go termWithParent(ppid, done)
	}
	go func() {
		select {
		case sig := <-sigs:
			fmt.Fprintf(w, "%s: %v: stopping everything and removing its files\n", name, sig)
			cancel(fmt.Errorf("%w (%v)", ErrInterrupted, sig))
		case <-done:
			return
		}
		t := time.NewTimer(bound)
		defer t.Stop()
		select {
		case <-t.C:
			procs, dirs := Cleanup(5 * time.Second)
			fmt.Fprintf(w, "%s: did not stop within %v: stopped %d processes, removed %d directories\n", name, bound, procs, dirs)
			os.Exit(1)
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			close(done)
			signal.Stop(sigs)
			signal.Stop(pipe)
			cancel(nil)
		})
	}
}

// parentIsGo reports whether process ppid runs the go command (go run).
func parentIsGo(ppid int) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", ppid))
	return err == nil && filepath.Base(exe) == "go"
}

// termWithParent asks the kernel for SIGTERM when the parent process ppid
// dies, until done. The request belongs to the thread that makes it, so
// that thread is held (and kept alive) until done.
func termWithParent(ppid int, done <-chan struct{}) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); e != 0 {
		return
	}
	if os.Getppid() != ppid { // it died before we asked
		_ = syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}
	<-done
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, 0, 0)
}

// Leftovers lists the processes (other than this one) whose command line
// or environment contains any of needles, as "pid N: command line": what a
// test checks is gone after a run. Processes it may not read are skipped.
func Leftovers(needles ...string) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var found []string
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		environ, err2 := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err1 != nil && err2 != nil {
			continue
		}
		for _, n := range needles {
			if n != "" && (bytes.Contains(cmdline, []byte(n)) || bytes.Contains(environ, []byte(n))) {
				found = append(found, fmt.Sprintf("pid %d: %s", pid, bytes.ReplaceAll(bytes.TrimRight(cmdline, "\x00"), []byte{0}, []byte{' '})))
				break
			}
		}
	}
	return found
}

// RunCommand runs body the way a command that starts a cluster must: in a
// run directory (dir, or a new temporary one), under a SignalContext, so
// that Ctrl-C, SIGTERM or a closed terminal stop everything and remove its
// files, and a failure keeps the logs and says where. It returns body's
// error, or the signal that interrupted it.
func RunCommand(out io.Writer, name, dir string, body func(ctx context.Context, rd *RunDir) error) (err error) {
	ctx, stop := SignalContext(context.Background(), out, name, time.Minute)
	defer stop()
	rd, err := NewRunDir(dir, name)
	if err != nil {
		return err
	}
	defer func() {
		interrupted := ctx.Err() != nil
		if err != nil && interrupted {
			err = context.Cause(ctx)
		}
		rd.Finish(out, err != nil && !interrupted)
	}()
	return body(ctx, rd)
}
