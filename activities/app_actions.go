package activities

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	osexec "os/exec"
	"strings"
	"sync"
	"time"

	"go.temporal.io/sdk/temporal"
)

// Activity type names of an application failover's component actions (see
// package planner); the storage-account action is a child AccountFailover,
// the wait action a workflow timer.
const (
	NameRunCommand = "RunCommand"
	NameCallHTTP   = "CallHTTP"
)

// Error types of component actions.
const (
	ErrTypeCommandFailed    = "CommandFailed"    // non-zero exit: retried per the action's retries
	ErrTypeCommandNotFound  = "CommandNotFound"  // no such program: not retried
	ErrTypeUnexpectedStatus = "UnexpectedStatus" // HTTP answer with another status: retried
	ErrTypeBadRequest       = "BadHTTPRequest"   // the request cannot be built: not retried
)

// MaxActionOutput bounds the command output and HTTP body an action keeps
// (the tail for output, where errors usually are; the head for bodies).
const MaxActionOutput = 4096

// CommandInput runs one component command.
type CommandInput struct {
	// Step names the step ("offline web"), for messages.
	Step string
	// Argv is the program and its arguments; no shell is involved.
	Argv []string
}

// CommandResult is a command that exited 0.
type CommandResult struct {
	// Output is stdout and stderr interleaved, the last MaxActionOutput
	// bytes of it.
	Output string
	// OutputBytes is how much the command wrote in all.
	OutputBytes int64
	Millis      int64
}

// RunCommand runs a component's command on this worker's host, bounded by
// the activity's start-to-close timeout (the process group is killed when it
// expires or the step is cancelled), heartbeating while it runs. A non-zero
// exit is a retryable failure carrying the tail of the output; a program
// that does not exist is not retried. Commands are the plan author's: they
// should be idempotent, since a retry or a worker crash runs them again.
func (a *Activities) RunCommand(ctx context.Context, in CommandInput) (CommandResult, error) {
	if len(in.Argv) == 0 || in.Argv[0] == "" {
		return CommandResult{}, temporal.NewNonRetryableApplicationError(
			in.Step+": no command to run",
			ErrTypeCommandNotFound,
			nil,
		)
	}
	out := &tailBuffer{max: MaxActionOutput}
	cmd := osexec.CommandContext(ctx, in.Argv[0], in.Argv[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	// A grandchild that keeps the pipes open must not hold the step.
	cmd.WaitDelay = 2 * time.Second
	killProcessGroup(cmd)

	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		if errors.Is(err, osexec.ErrNotFound) {
			return CommandResult{}, temporal.NewNonRetryableApplicationError(
				fmt.Sprintf(
					"%s: %s: program not found on worker host",
					in.Step,
					in.Argv[0],
				),
				ErrTypeCommandNotFound,
				err,
			)
		}
		return CommandResult{}, fmt.Errorf("%s: start %s: %w", in.Step, in.Argv[0], err)
	}
	stop := keepAlive(ctx)
	err := cmd.Wait()
	stop()
	res := CommandResult{Output: out.String(), OutputBytes: out.total, Millis: time.Since(t0).Milliseconds()}
	if ctx.Err() != nil {
		return res, fmt.Errorf(
			"%s: %q stopped after %s: %w; output: %s",
			in.Step,
			in.Argv,
			time.Since(t0).Round(time.Millisecond),
			ctx.Err(),
			lastLine(res.Output),
		)
	}
	var ee *osexec.ExitError
	if errors.As(err, &ee) {
		return res, temporal.NewApplicationError(
			fmt.Sprintf(
				"%s: %q exited with status %d; output: %s",
				in.Step,
				in.Argv,
				ee.ExitCode(),
				lastLines(res.Output, 5),
			),
			ErrTypeCommandFailed,
			res,
		)
	}
	if err != nil {
		return res, fmt.Errorf("%s: run %q: %w", in.Step, in.Argv, err)
	}
	return res, nil
}

// HTTPInput is one component HTTP call.
type HTTPInput struct {
	Step    string
	Method  string
	URL     string
	Body    string
	Headers map[string]string
	// ExpectStatus is the status that counts as success.
	ExpectStatus int
}

// HTTPResult is the answer to a successful call.
type HTTPResult struct {
	Status int
	// Body is the first MaxActionOutput bytes of the answer.
	Body   string
	Millis int64
}

// actionHTTP is the default client of component HTTP actions
// (Activities.ActionHTTP); the activity's context bounds each call.
var actionHTTP = &http.Client{}

// CallHTTP calls a component's endpoint and checks the answer's status. A
// different status or a connection error is retried per the action's
// retries (the component may not be up yet); a request that cannot be
// built is not.
func (a *Activities) CallHTTP(ctx context.Context, in HTTPInput) (HTTPResult, error) {
	method := in.Method
	if method == "" {
		method = http.MethodGet
	}
	want := in.ExpectStatus
	if want == 0 {
		want = http.StatusOK
	}
	var body io.Reader
	if in.Body != "" {
		body = strings.NewReader(in.Body)
	}
	req, err := http.NewRequestWithContext(ctx, method, in.URL, body)
	if err != nil {
		return HTTPResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("%s: %s %s: %v", in.Step, method, in.URL, err),
			ErrTypeBadRequest,
			err,
		)
	}
	for k, v := range in.Headers {
		req.Header.Set(k, v)
	}
	hc := a.ActionHTTP
	if hc == nil {
		hc = actionHTTP
	}
	t0 := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return HTTPResult{}, fmt.Errorf("%s: %s %s: %w", in.Step, method, in.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxActionOutput))
	if err != nil {
		return HTTPResult{}, fmt.Errorf("%s: %s %s: read answer: %w", in.Step, method, in.URL, err)
	}
	res := HTTPResult{Status: resp.StatusCode, Body: string(b), Millis: time.Since(t0).Milliseconds()}
	if resp.StatusCode != want {
		return res, temporal.NewApplicationError(
			fmt.Sprintf(
				"%s: %s %s answered %d, expected %d: %s",
				in.Step,
				method,
				in.URL,
				resp.StatusCode,
				want,
				lastLine(res.Body),
			),
			ErrTypeUnexpectedStatus,
			res,
		)
	}
	return res, nil
}

// tailBuffer keeps the last max bytes written to it and counts them all.
type tailBuffer struct {
	mu    sync.Mutex
	max   int
	buf   []byte
	total int64
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(len(p))
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cut := t.total - int64(len(t.buf)); cut > 0 {
		return fmt.Sprintf("[%d bytes cut] %s", cut, t.buf)
	}
	return string(t.buf)
}

// lastLines is the last n non-empty lines of s, joined with " | ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) == 0 {
		return "(none)"
	}
	return strings.Join(lines[max(0, len(lines)-n):], " | ")
}

func lastLine(s string) string { return lastLines(s, 1) }
