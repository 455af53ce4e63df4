package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/internal/register"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/location/locationtest"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/stamp/stamptest"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/workflows"
)

// testToken and testSecret authenticate the tests' requests.
var (
	testToken  = []byte("s3cret-token")
	testSecret = []byte("hmac-secret")
)

const testTaskQueue = "baton-webhook-test"

// testConfig has one rule per way of mapping an alert.
const testConfig = `
cooldown: 1h
rules:
  - name: stamp-down            # account and target from labels, unplanned, waits for approval
    matchers:
      - alertname="StampDown"
      - severity=~"critical|page"
    account_label: account
    target_label: failover_to
    from_label: stamp
    mode: unplanned
    cancel_on_resolve: true
  - name: latency               # fixed target, planned, pre-approved: runs to completion
    matchers: ['alertname="AccountLatencyHigh"']
    account_label: account
    target: stamp-b
    approval_required: false
    cancel_on_resolve: true
  - name: replication-lag       # a fixed account, a negative matcher, no cooldown
    matchers: ['alertname="ReplicationLag"', 'team!="sandbox"']
    account: fixed-acct
    target: stamp-b
    cooldown: 0s
trigger:
  cooldown: 1h
`

// tenv is the Temporal side of the handler tests: a real dev server (the
// testsuite's), an in-process worker running the real workflow and
// activities against an in-process location service and two stamps.
type tenv struct {
	hostPort string
	c        client.Client
	loc      *location.Client
	stamp    map[string]*stamp.Client
}

var (
	envOnce  sync.Once
	envVal   *tenv
	envErr   error
	envClose []func()
)

func TestMain(m *testing.M) {
	code := m.Run()
	for i := len(envClose) - 1; i >= 0; i-- {
		envClose[i]()
	}
	os.Exit(code)
}

// temporalEnv starts the shared environment on first use.
func temporalEnv(t *testing.T) *tenv {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the Temporal dev server (skipped with -short)")
	}
	envOnce.Do(func() { envVal, envErr = startEnv() })
	require.NoError(t, envErr)
	return envVal
}

func startEnv() (*tenv, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "baton-webhook-test-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	envClose = append(envClose, func() { _ = os.RemoveAll(dir) })
	ds, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{Dir: dir})
	if err != nil {
		return nil, err
	}
	envClose = append(envClose, func() { ds.Stop(10 * time.Second) })
	c, err := client.Dial(client.Options{HostPort: ds.HostPort, Logger: logging.NewZapAdapter(zap.NewNop())})
	if err != nil {
		return nil, fmt.Errorf("dial the dev server: %w", err)
	}
	envClose = append(envClose, c.Close)
	locSrv, err := locationtest.StartLocal(location.Config{})
	if err != nil {
		return nil, fmt.Errorf("location service: %w", err)
	}
	envClose = append(envClose, func() { _ = locSrv.Close() })
	e := &tenv{
		hostPort: ds.HostPort,
		c:        c,
		loc:      location.NewClient(locSrv.URL(), nil),
		stamp:    map[string]*stamp.Client{},
	}
	for _, name := range []string{testsuite.StampA, testsuite.StampB} {
		s, err := stamptest.StartLocal(stamp.Config{Name: name, LocationURL: locSrv.URL(), EnableFaults: true})
		if err != nil {
			return nil, fmt.Errorf("stamp %s: %w", name, err)
		}
		envClose = append(envClose, func() { _ = s.Close() })
		if err := e.loc.RegisterStamp(ctx, location.Stamp{Name: name, URL: s.URL()}); err != nil {
			return nil, fmt.Errorf("register %s: %w", name, err)
		}
		e.stamp[name] = stamp.NewClient(s.URL(), nil)
	}
	w := worker.New(c, testTaskQueue, worker.Options{})
	register.WorkflowsAndActivities(w, activities.New(locSrv.URL(), nil))
	if err := w.Start(); err != nil {
		return nil, fmt.Errorf("start the worker: %w", err)
	}
	envClose = append(envClose, w.Stop)
	return e, nil
}

// provision creates an account on stamp-a replicating to stamp-b.
func (e *tenv) provision(t *testing.T, account string) {
	t.Helper()
	_, err := location.Provision(context.Background(), e.loc, e.stamp[testsuite.StampA], e.stamp[testsuite.StampB],
		testsuite.StampA, testsuite.StampB, account, 4)
	require.NoError(t, err)
}

// directory is the location service as the handler's account directory.
type directory struct{ loc *location.Client }

func (d directory) Known(ctx context.Context, account string) (bool, error) {
	_, err := d.loc.Lookup(ctx, account)
	if location.IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// newHandler builds a handler on the shared environment.
func (e *tenv) newHandler(t *testing.T, mutate ...func(*Options)) *Handler {
	t.Helper()
	cfg, err := ParseConfig([]byte(testConfig))
	require.NoError(t, err)
	o := Options{Client: e.c, Config: cfg, Auth: Auth{Token: testToken, HMACSecret: testSecret},
		TaskQueue: testTaskQueue, Accounts: directory{e.loc}}
	for _, m := range mutate {
		m(&o)
	}
	h, err := New(o)
	require.NoError(t, err)
	return h
}

// progress queries a failover's progress.
func (e *tenv) progress(t *testing.T, account string) workflows.Progress {
	t.Helper()
	v, err := e.c.QueryWorkflow(
		context.Background(),
		workflows.FailoverWorkflowID(account),
		"",
		workflows.QueryProgress,
	)
	require.NoError(t, err)
	var p workflows.Progress
	require.NoError(t, v.Get(&p))
	return p
}

// waitPhase polls until the account's failover reports phase.
func (e *tenv) waitPhase(t *testing.T, account string, phase workflows.Phase) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var last workflows.Phase
	err := testsuite.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		v, err := e.c.QueryWorkflow(ctx, workflows.FailoverWorkflowID(account), "", workflows.QueryProgress)
		if err != nil {
			return false, nil
		}
		var p workflows.Progress
		if v.Get(&p) != nil {
			return false, nil
		}
		last = p.Phase
		return p.Phase == phase, nil
	})
	require.NoError(t, err, "failover of %s never reached phase %s (last %q)", account, phase, last)
}

// result waits for the account's latest failover and returns its result,
// also for one that failed (its error carries the result).
func (e *tenv) result(t *testing.T, account string) (workflows.FailoverResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var res workflows.FailoverResult
	err := e.c.GetWorkflow(ctx, workflows.FailoverWorkflowID(account), "").Get(ctx, &res)
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		require.NoError(t, ae.Details(&res))
	}
	return res, err
}

// request reads the FailoverRequest a failover was started with.
func (e *tenv) request(t *testing.T, account string) workflows.FailoverRequest {
	t.Helper()
	ctx := context.Background()
	it := e.c.GetWorkflowHistory(
		ctx,
		workflows.FailoverWorkflowID(account),
		"",
		false,
		enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT,
	)
	require.True(t, it.HasNext())
	ev, err := it.Next()
	require.NoError(t, err)
	attrs := ev.GetWorkflowExecutionStartedEventAttributes()
	require.NotNil(t, attrs)
	var req workflows.FailoverRequest
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(attrs.GetInput().GetPayloads()[0], &req))
	return req
}

// runs counts the executions of the account's failover in visibility once
// it lists the run wantRun (visibility lags a little behind).
func (e *tenv) runs(t *testing.T, account, wantRun string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	require.NoError(t, testsuite.Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		n = 0
		seen := false
		var token []byte
		for {
			resp, err := e.c.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{
				Query: fmt.Sprintf("WorkflowId = '%s'", workflows.FailoverWorkflowID(account)), NextPageToken: token,
			})
			if err != nil {
				return false, err
			}
			for _, ex := range resp.GetExecutions() {
				n++
				seen = seen || ex.GetExecution().GetRunId() == wantRun
			}
			if token = resp.GetNextPageToken(); len(token) == 0 {
				break
			}
		}
		return seen, nil
	}))
	return n
}

// post sends body to the handler with the bearer token.
func post(t *testing.T, h http.Handler, path string, body []byte) (int, Response) {
	t.Helper()
	return send(t, h, path, body, map[string]string{"Authorization": "Bearer " + string(testToken)})
}

func send(t *testing.T, h http.Handler, path string, body []byte, hdr map[string]string) (int, Response) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var resp Response
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &resp), "answer %d: %s", w.Code, w.Body.String())
	return w.Code, resp
}

// notification builds an Alertmanager v4 payload.
func notification(status string, alerts ...Alert) []byte {
	n := Notification{
		Version:           "4",
		GroupKey:          `{}:{alertname="StampDown"}`,
		Status:            status,
		Receiver:          "baton",
		GroupLabels:       map[string]string{},
		CommonLabels:      map[string]string{},
		CommonAnnotations: map[string]string{},
		Alerts:            alerts,
	}
	b, err := json.Marshal(n)
	if err != nil {
		panic(err)
	}
	return b
}

// alert is one alert with the given status and labels (alternating
// name, value).
func alert(status string, kv ...string) Alert {
	labels := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		labels[kv[i]] = kv[i+1]
	}
	a := Alert{Status: status, Labels: labels, Annotations: map[string]string{"summary": "test alert"},
		StartsAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Fingerprint: labelsFingerprint(labels)}
	if status == StatusResolved {
		a.EndsAt = a.StartsAt.Add(time.Minute)
	}
	return a
}

// outcomes lists the results' outcomes.
func outcomes(r Response) []string {
	var out []string
	for _, x := range r.Results {
		out = append(out, x.Outcome)
	}
	return out
}
