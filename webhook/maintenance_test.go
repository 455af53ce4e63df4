package webhook

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/location"
)

// fakeFleet is the location service as the receiver asks it: switches and
// accounts in memory, calls counted.
type fakeFleet struct {
	mu          sync.Mutex
	m           location.Maintenance
	accounts    map[string]location.Account
	maintErr    error
	lookupErr   error
	maintCalls  int
	lookupCalls int
}

// set turns stamp's switch ("" = the global one) on or off.
func (f *fakeFleet) set(stamp string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := location.Switch{On: on, By: "oncall", Reason: "patching", At: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	if stamp == "" {
		f.m.Global = s
		return
	}
	if f.m.Stamps == nil {
		f.m.Stamps = map[string]location.Switch{}
	}
	f.m.Stamps[stamp] = s
}

func (f *fakeFleet) Maintenance(context.Context) (location.Maintenance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.maintCalls++
	return f.m, f.maintErr
}

func (f *fakeFleet) Lookup(_ context.Context, account string) (location.Account, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lookupCalls++
	if f.lookupErr != nil {
		return location.Account{}, f.lookupErr
	}
	a, ok := f.accounts[account]
	if !ok {
		return a, &location.APIError{Status: http.StatusNotFound}
	}
	return a, nil
}

func (f *fakeFleet) calls() (maint, lookups int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maintCalls, f.lookupCalls
}

// TestMaintenanceSwitchesHoldAlerts: while a switch covers what an alert
// would start (the global switch; the stamp of an evacuation; either stamp
// an account lives on), the alert is answered held, naming the switch, who
// set it and why, and counted; nothing reaches Temporal (the handler's
// Temporal points nowhere: a call would be a 503). What no switch covers
// goes on to Temporal. Resolved alerts are not held.
func TestMaintenanceSwitchesHoldAlerts(t *testing.T) {
	onA := location.Account{Account: "acct-on-a", Primary: "stamp-a", Secondary: "stamp-b"}
	toA := location.Account{Account: "acct-to-a", Primary: "stamp-c", Secondary: "stamp-a"}
	away := location.Account{Account: "acct-away", Primary: "stamp-c", Secondary: "stamp-d"}
	accounts := map[string]location.Account{onA.Account: onA, toA.Account: toA, away.Account: away}
	cfg, err := ParseConfig([]byte(testConfig))
	require.NoError(t, err)
	stampCfg, err := ParseConfig([]byte(`
rules:
  - name: stamp-evacuate
    scope: stamp
    matchers: ['alertname="StampLost"']
    stamp_label: stamp
`))
	require.NoError(t, err)
	cfg.Rules = append(cfg.Rules, stampCfg.Rules...)
	latency := func(account string) Alert {
		return alert(StatusFiring, "alertname", "AccountLatencyHigh", "account", account)
	}
	lost := func(stamp string) Alert { return alert(StatusFiring, "alertname", "StampLost", "stamp", stamp) }
	tests := []struct {
		name       string
		switches   []string // "" = global
		body       []byte
		path       string
		wantCode   int
		want       []string
		wantSwitch string // the held metric's switch label
		wantLookup bool
	}{
		{"global holds an account rule", []string{""}, notification(StatusFiring, latency(onA.Account)),
			PathAlertmanager, http.StatusOK, []string{OutcomeHeld}, "global", false},
		{"global holds an evacuation", []string{""}, notification(StatusFiring, lost("stamp-z")),
			PathAlertmanager, http.StatusOK, []string{OutcomeHeld}, "global", false},
		{"global holds the plain trigger", []string{""},
			[]byte(`{"account":"acct-on-a","to":"stamp-b","reason":"r"}`), PathTrigger, http.StatusOK,
			[]string{OutcomeHeld}, "global", false},
		{"the primary's switch", []string{"stamp-a"}, notification(StatusFiring, latency(onA.Account)),
			PathAlertmanager, http.StatusOK, []string{OutcomeHeld}, "stamp-a", true},
		{"the secondary's switch", []string{"stamp-a"}, notification(StatusFiring, latency(toA.Account)),
			PathAlertmanager, http.StatusOK, []string{OutcomeHeld}, "stamp-a", true},
		{"the stamp's switch holds its evacuation", []string{"stamp-a"}, notification(StatusFiring, lost("stamp-a")),
			PathAlertmanager, http.StatusOK, []string{OutcomeHeld}, "stamp-a", false},
		{"another stamp's switch: goes on", []string{"stamp-a"}, notification(StatusFiring, latency(away.Account)),
			PathAlertmanager, http.StatusServiceUnavailable, []string{OutcomeError}, "", true},
		{"another stamp's switch: the evacuation goes on", []string{"stamp-b"},
			notification(StatusFiring, lost("stamp-a")), PathAlertmanager, http.StatusServiceUnavailable,
			[]string{OutcomeError}, "", false},
		{"an unknown account has no stamp to hold it", []string{"stamp-a"},
			notification(StatusFiring, latency("acct-unknown")), PathAlertmanager, http.StatusServiceUnavailable,
			[]string{OutcomeError}, "", true},
		{"no switch: no lookup", nil, notification(StatusFiring, latency(onA.Account)), PathAlertmanager,
			http.StatusServiceUnavailable, []string{OutcomeError}, "", false},
		{"resolved alerts are not held", []string{""},
			notification(StatusResolved, alert(StatusResolved, "alertname", "ReplicationLag")),
			PathAlertmanager, http.StatusOK, []string{OutcomeIgnored}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fleet := &fakeFleet{accounts: accounts}
			for _, s := range tt.switches {
				fleet.set(s, true)
			}
			h := offlineHandler(t)
			h.o.Config, h.o.Fleet, h.o.Timeout = cfg, fleet, 2*time.Second
			code, resp := post(t, h, tt.path, tt.body)
			require.Equal(t, tt.wantCode, code, resp.Message)
			require.Equal(t, tt.want, outcomes(resp))
			_, lookups := fleet.calls()
			require.Equal(t, tt.wantLookup, lookups > 0, "lookups: %d", lookups)
			if tt.wantSwitch == "" {
				return
			}
			require.Equal(t, "held", resp.Status)
			which := "the global maintenance switch"
			if tt.wantSwitch != "global" {
				which = "the maintenance switch of " + tt.wantSwitch
			}
			r := resp.Results[0]
			require.Equal(t, resp.Message, r.Message)
			require.Contains(t, r.Message, "held by "+which+" (on since 2026-01-02T03:04:05Z, set by oncall: patching)")
			require.Contains(t, r.Message, "by hand still works")
			require.Empty(t, r.WorkflowID, "nothing started")
			require.Equal(t, 1.0, count(h.Metrics().Held.WithLabelValues(r.Rule, tt.wantSwitch)))
			require.Equal(t, 1.0, count(h.Metrics().Received.WithLabelValues(endpointOf(tt.path), "held")))
		})
	}
}

func endpointOf(path string) string {
	if path == PathTrigger {
		return "trigger"
	}
	return "alertmanager"
}

// TestMaintenanceSwitchesReadOncePerRequest: a notification about three
// accounts reads the switches once; when they cannot be read, nothing
// starts and the answer is 503 (Alertmanager retries).
func TestMaintenanceSwitchesReadOncePerRequest(t *testing.T) {
	fleet := &fakeFleet{}
	fleet.set("", true)
	h := offlineHandler(t)
	h.o.Fleet = fleet
	var alerts []Alert
	for i := range 3 {
		alerts = append(alerts, alert(StatusFiring, "alertname", "AccountLatencyHigh", "account", fmt.Sprint("acct-", i)))
	}
	code, resp := post(t, h, PathAlertmanager, notification(StatusFiring, alerts...))
	require.Equal(t, http.StatusOK, code, resp.Message)
	require.Equal(t, []string{OutcomeHeld, OutcomeHeld, OutcomeHeld}, outcomes(resp))
	maint, _ := fleet.calls()
	require.Equal(t, 1, maint)
	require.Equal(t, 3.0, count(h.Metrics().Held.WithLabelValues("latency", "global")))

	fleet.maintErr = fmt.Errorf("location service: %w", syscall.ECONNREFUSED)
	code, resp = post(t, h, PathAlertmanager, notification(StatusFiring, alerts[0]))
	require.Equal(t, http.StatusServiceUnavailable, code, resp.Message)
	require.Equal(t, []string{OutcomeError}, outcomes(resp))
	require.Contains(t, resp.Results[0].Message, "read the maintenance switches")
	require.Equal(t, 1.0, count(h.Metrics().Errors.WithLabelValues("maintenance", "unavailable")))

	fleet.maintErr = nil
	fleet.set("", false)
	fleet.set("stamp-a", true)
	fleet.lookupErr = fmt.Errorf("location service: %w", syscall.ECONNREFUSED)
	code, resp = post(t, h, PathAlertmanager, notification(StatusFiring, alerts[0]))
	require.Equal(t, http.StatusServiceUnavailable, code, resp.Message)
	require.Contains(t, resp.Results[0].Message, "look up the stamps of acct-0")
	require.Equal(t, 2.0, count(h.Metrics().Errors.WithLabelValues("maintenance", "unavailable")))
}
