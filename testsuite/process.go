package testsuite

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Process is a child process the harness started, with its output in a log
// file. It can be stopped gracefully, killed with SIGKILL and restarted with
// the same arguments (and so the same ports and data).
type Process struct {
	Name string
	Path string
	Args []string
	Env  []string
	Log  string // path of its combined output
	// Credential, if set, runs the process as another user (PostgreSQL
	// under a root harness); WorkDir is its working directory ("" = ours).
	Credential *syscall.Credential
	WorkDir    string
	// StopSignal is what Stop sends first (0 = SIGTERM).
	StopSignal syscall.Signal

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the process. Until it exits it is on the harness's list of
// running processes, which Cleanup stops (a command or test ended by a
// signal); once Cleanup has run, Start refuses.
func (p *Process) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	// On the list before it runs: Cleanup, which stops what is on the
	// list, waits for this Start (p.mu) and then stops the process.
	if !track(p) {
		return fmt.Errorf("start %s: %w", p.Name, ErrCleanedUp)
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		untrack(p)
		return fmt.Errorf("open log of %s: %w", p.Name, err)
	}
	cmd := exec.Command(p.Path, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Dir = p.WorkDir
	// Its own process group, so a Ctrl-C in the terminal is handled by the
	// harness, which stops children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: p.Credential}
	if err := cmd.Start(); err != nil {
		f.Close()
		untrack(p)
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); f.Close(); untrack(p); close(done) }()
	p.cmd, p.done = cmd, done
	return nil
}

// Running reports whether the process is alive.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// PID is the current process ID (0 if not started).
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() { p.signal(syscall.SIGKILL, 10*time.Second) }

// Stop sends StopSignal (SIGTERM by default), waits up to grace, then
// SIGKILL.
func (p *Process) Stop(grace time.Duration) {
	sig := p.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	if !p.signal(sig, grace) {
		p.Kill()
	}
}

func (p *Process) signal(sig syscall.Signal, wait time.Duration) bool {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return true
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return true
	case <-time.After(wait):
		return false
	}
}

// Restart kills nothing: call Kill or Stop first; it starts the process again.
func (p *Process) Restart() error {
	if p.Running() {
		return fmt.Errorf("restart %s: still running", p.Name)
	}
	return p.Start()
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// WaitHTTP polls url until it answers 200 or ctx ends.
func WaitHTTP(ctx context.Context, url string, p *Process) error {
	return WaitHTTPWith(ctx, http.DefaultClient, url, p)
}

// WaitHTTPWith is WaitHTTP calling with hc (e.g. over TLS with a client
// certificate).
func WaitHTTPWith(ctx context.Context, hc *http.Client, url string, p *Process) error {
	return Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		if p != nil && !p.Running() {
			return false, fmt.Errorf("%s exited before it was ready: see %s", p.Name, p.Log)
		}
		resp, err := hc.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// ErrTimeout is returned by Poll when ctx ends before the condition holds.
var ErrTimeout = errors.New("condition not met before the deadline")

// Poll calls cond every interval until it returns true or an error, or ctx
// ends. It is how the harness and the tests wait: never a fixed sleep.
func Poll(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrTimeout, ctx.Err())
		case <-t.C:
		}
	}
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func logPath(dir, name string) string { return filepath.Join(dir, name+".log") }
