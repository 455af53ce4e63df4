package activities

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
)

func actionEnv() *testsuite.TestActivityEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestActivityEnvironment()
	env.RegisterActivity(&Activities{})
	return env
}

func appErr(t *testing.T, err error) *temporal.ApplicationError {
	t.Helper()
	var ae *temporal.ApplicationError
	require.True(t, errors.As(err, &ae), "want an application error, got %v", err)
	return ae
}

func TestRunCommand(t *testing.T) {
	a := &Activities{}
	env := actionEnv()

	v, err := env.ExecuteActivity(a.RunCommand, CommandInput{Step: "offline web", Argv: []string{"sh", "-c", "echo stopping web; echo warn >&2"}})
	require.NoError(t, err)
	var res CommandResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, "stopping web\nwarn\n", res.Output)
	require.Equal(t, int64(len("stopping web\nwarn\n")), res.OutputBytes)

	_, err = env.ExecuteActivity(a.RunCommand, CommandInput{Step: "offline web", Argv: []string{"sh", "-c", "echo one; echo 'disk full' >&2; exit 3"}})
	require.ErrorContains(t, err, `offline web: ["sh" "-c" "echo one; echo 'disk full' >&2; exit 3"] exited with status 3; output: one | disk full`)
	ae := appErr(t, err)
	require.Equal(t, ErrTypeCommandFailed, ae.Type())
	require.False(t, ae.NonRetryable(), "a failing command is retried per the action's retries")

	_, err = env.ExecuteActivity(a.RunCommand, CommandInput{Step: "online db", Argv: []string{"no-such-program-baton"}})
	require.ErrorContains(t, err, "online db: no-such-program-baton: program not found on worker host")
	ae = appErr(t, err)
	require.Equal(t, ErrTypeCommandNotFound, ae.Type())
	require.True(t, ae.NonRetryable())
}

func TestRunCommandKeepsTheTailOfItsOutput(t *testing.T) {
	res, err := (&Activities{}).RunCommand(context.Background(), CommandInput{Step: "s",
		Argv: []string{"sh", "-c", "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done"}})
	require.NoError(t, err)
	require.Greater(t, res.OutputBytes, int64(MaxActionOutput))
	require.True(t, strings.HasPrefix(res.Output, "["), res.Output[:40])
	require.Contains(t, res.Output, " bytes cut] ")
	require.True(t, strings.HasSuffix(res.Output, "line-1999\n"))
	require.LessOrEqual(t, len(res.Output), MaxActionOutput+40)
}

func TestRunCommandIsStoppedWithItsChildrenWhenTheStepEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := filepath.Join(t.TempDir(), "started")
	// Stop the step once the command is under way (polled, with a deadline).
	go func() {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if _, err := os.Stat(started); err == nil {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	// The shell's child holds the output pipe; killing only the shell would
	// leave the step waiting for it for a minute.
	_, err := (&Activities{}).RunCommand(ctx, CommandInput{Step: "offline slow",
		Argv: []string{"sh", "-c", "echo started; touch " + started + "; sleep 60; echo never"}})
	require.ErrorContains(t, err, "offline slow:")
	require.ErrorIs(t, err, context.Canceled)
	require.ErrorContains(t, err, "output: started")
}

func TestCallHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			_, _ = io.WriteString(w, `{"ok":true}`)
		case "/down":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "draining\n")
		case "/stop":
			b, _ := io.ReadAll(r.Body)
			if r.Method != http.MethodPost || string(b) != `{"drain":true}` || r.Header.Get("Authorization") != "Bearer t" {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusAccepted)
		}
	}))
	defer srv.Close()
	a := &Activities{}
	env := actionEnv()

	v, err := env.ExecuteActivity(a.CallHTTP, HTTPInput{Step: "online web", URL: srv.URL + "/health"})
	require.NoError(t, err)
	var res HTTPResult
	require.NoError(t, v.Get(&res))
	require.Equal(t, HTTPResult{Status: 200, Body: `{"ok":true}`, Millis: res.Millis}, res)

	_, err = env.ExecuteActivity(a.CallHTTP, HTTPInput{Step: "offline web", Method: "POST", URL: srv.URL + "/stop", Body: `{"drain":true}`,
		Headers: map[string]string{"Authorization": "Bearer t"}, ExpectStatus: 202})
	require.NoError(t, err)

	_, err = env.ExecuteActivity(a.CallHTTP, HTTPInput{Step: "online web", URL: srv.URL + "/down"})
	require.ErrorContains(t, err, "online web: GET "+srv.URL+"/down answered 503, expected 200: draining")
	ae := appErr(t, err)
	require.Equal(t, ErrTypeUnexpectedStatus, ae.Type())
	require.False(t, ae.NonRetryable(), "the component may not be up yet: retried")

	_, err = env.ExecuteActivity(a.CallHTTP, HTTPInput{Step: "s", Method: "BAD METHOD", URL: srv.URL})
	require.True(t, appErr(t, err).NonRetryable())

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	_, err = env.ExecuteActivity(a.CallHTTP, HTTPInput{Step: "online api", URL: closed.URL + "/health"})
	require.ErrorContains(t, err, "online api: GET "+closed.URL+"/health")
	require.False(t, appErr(t, err).NonRetryable(), "a connection error is retried")
}
