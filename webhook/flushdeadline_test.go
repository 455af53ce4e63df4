package webhook

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/workflows"
)

const flushDeadlineConfig = `
flush_deadline: 3m                # default of every rule and of the trigger
rules:
  - name: own                     # its own deadline
    matchers: ['alertname="Own"']
    account_label: account
    target: stamp-b
    flush_deadline: 45s
  - name: inherits                # the top-level one
    matchers: ['alertname="Inherits"']
    account_label: account
    target: stamp-b
trigger:
  flush_deadline: 90s
`

// TestFlushDeadlineConfig: a rule's flush_deadline, else the top-level
// one, else the workflow's default (0 in the request); 0s or less refused
// wherever it is set.
func TestFlushDeadlineConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(flushDeadlineConfig))
	require.NoError(t, err)
	require.Equal(t, 45*time.Second, cfg.flushDeadline(cfg.Rules[0].FlushDeadline))
	require.Equal(t, 3*time.Minute, cfg.flushDeadline(cfg.Rules[1].FlushDeadline))
	require.Equal(t, 90*time.Second, cfg.flushDeadline(cfg.Trigger.FlushDeadline))

	cfg, err = ParseConfig(
		[]byte("rules:\n  - name: r\n    matchers: ['alertname=\"A\"']\n    account: a\n    target: b\n"),
	)
	require.NoError(t, err)
	require.Zero(t, cfg.flushDeadline(cfg.Rules[0].FlushDeadline), "unset: the workflow's default")
	require.Zero(t, cfg.flushDeadline(cfg.Trigger.FlushDeadline))

	rule := "rules:\n  - name: r\n    matchers: ['alertname=\"A\"']\n    account: a\n    target: b\n"
	for _, tt := range []struct{ name, yaml, want string }{
		{"zero top-level", "flush_deadline: 0s\n" + rule, "flush_deadline 0s: must be positive"},
		{"zero in a rule", rule + "    flush_deadline: 0s\n", `rule "r": flush_deadline 0s: must be positive`},
		{"zero in the trigger", rule + "trigger:\n  flush_deadline: 0s\n", "trigger: flush_deadline 0s: must be positive"},
		{"negative", rule + "    flush_deadline: -1m\n", "negative"},
		{"not a duration", rule + "    flush_deadline: soon\n", `invalid duration "soon"`},
		{"misspelled", rule + "    flush_dedline: 1m\n", "field flush_dedline not found"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tt.yaml))
			require.ErrorContains(t, err, tt.want)
		})
	}
}

// startCapture is a Temporal client that records the FailoverRequest of
// every update-with-start and then fails it (the tests look at the
// request only). The account has no failover yet.
type startCapture struct {
	client.Client
	mu   sync.Mutex
	reqs []workflows.FailoverRequest
}

func (c *startCapture) DescribeWorkflow(context.Context, string, string) (*client.WorkflowExecutionDescription, error) {
	return nil, serviceerror.NewNotFound("workflow not found")
}

func (c *startCapture) NewWithStartWorkflowOperation(
	_ client.StartWorkflowOptions,
	_ any,
	args ...any,
) client.WithStartWorkflowOperation {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(args) == 1 {
		if req, ok := args[0].(workflows.FailoverRequest); ok {
			c.reqs = append(c.reqs, req)
		}
	}
	return nil
}

func (c *startCapture) UpdateWithStartWorkflow(
	context.Context,
	client.UpdateWithStartWorkflowOptions,
) (client.WorkflowUpdateHandle, error) {
	return nil, errors.New("not started: this client only records requests")
}

// TestFlushDeadlineReachesTheFailoverRequest: the deadline the config
// gives an alert's rule, or the trigger, is the request's
// Options.FlushDeadline.
func TestFlushDeadlineReachesTheFailoverRequest(t *testing.T) {
	cfg, err := ParseConfig([]byte(flushDeadlineConfig))
	require.NoError(t, err)
	unset, err := ParseConfig([]byte(testConfig))
	require.NoError(t, err)
	trigger := []byte(`{"account": "acct-t", "to": "stamp-b", "reason": "maintenance", "id": "CHG-1"}`)
	for _, tt := range []struct {
		name string
		cfg  *Config
		path string
		body []byte
		want time.Duration
	}{
		{
			"rule's own", cfg, PathAlertmanager,
			notification(StatusFiring, alert(StatusFiring, "alertname", "Own", "account", "acct-1")),
			45 * time.Second,
		},
		{
			"top-level default", cfg, PathAlertmanager,
			notification(StatusFiring, alert(StatusFiring, "alertname", "Inherits", "account", "acct-2")),
			3 * time.Minute,
		},
		{"trigger", cfg, PathTrigger, trigger, 90 * time.Second},
		{
			"unset: the workflow's default", unset, PathAlertmanager,
			notification(StatusFiring, alert(StatusFiring, "alertname", "AccountLatencyHigh", "account", "acct-3")),
			0,
		},
		{"unset trigger", unset, PathTrigger, trigger, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := &startCapture{}
			h, err := New(Options{Client: c, Config: tt.cfg, Auth: Auth{Token: testToken}, Timeout: 5 * time.Second})
			require.NoError(t, err)
			code, resp := post(t, h, tt.path, tt.body)
			require.Equal(
				t,
				http.StatusInternalServerError,
				code,
				"the capturing client fails every start: %s",
				resp.Message,
			)
			c.mu.Lock()
			defer c.mu.Unlock()
			require.Len(t, c.reqs, 1)
			require.Equal(t, tt.want, c.reqs[0].Options.FlushDeadline)
		})
	}
}
