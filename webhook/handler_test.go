package webhook

import (
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/testsuite"
)

// offlineHandler has a Temporal client that points nowhere: the requests of
// these tests must be answered before any Temporal call (and if one were
// made, the answer would be a 503, which the tests would catch).
func offlineHandler(t *testing.T) *Handler {
	t.Helper()
	port, err := testsuite.FreePort()
	require.NoError(t, err)
	c, err := client.NewLazyClient(
		client.Options{HostPort: "127.0.0.1:" + strconv.Itoa(port), Logger: logging.NewZapAdapter(zap.NewNop())},
	)
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cfg, err := ParseConfig([]byte(testConfig))
	require.NoError(t, err)
	h, err := New(
		Options{Client: c, Config: cfg, Auth: Auth{Token: testToken, HMACSecret: testSecret}, MaxBodyBytes: 4096},
	)
	require.NoError(t, err)
	return h
}

// count reads a counter.
func count(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func sign(body []byte) string { return "sha256=" + hex.EncodeToString(Sign(testSecret, body)) }

func TestNewRefusesUnauthenticatedReceiver(t *testing.T) {
	cfg, err := ParseConfig([]byte(testConfig))
	require.NoError(t, err)
	c, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Logger: logging.NewZapAdapter(zap.NewNop())})
	require.NoError(t, err)
	defer c.Close()
	_, err = New(Options{Client: c, Config: cfg})
	require.ErrorContains(t, err, "refuses to run unauthenticated")
	_, err = New(Options{Config: cfg, Auth: Auth{Token: testToken}})
	require.ErrorContains(t, err, "no Temporal client")
	_, err = New(Options{Client: c, Auth: Auth{Token: testToken}})
	require.ErrorContains(t, err, "no config")
}

// TestAuth: without valid credentials the answer is 401 and nothing is
// parsed, let alone started; with them the request goes on (here to a 400
// or 422, since these bodies start nothing).
func TestAuth(t *testing.T) {
	h := offlineHandler(t)
	good := notification(StatusFiring, alert(StatusFiring, "alertname", "DiskFull"))
	tests := []struct {
		name     string
		path     string
		body     []byte
		hdr      map[string]string
		wantCode int
		wantMsg  string
	}{
		{"no credentials", PathAlertmanager, good, nil, 401, "no credentials"},
		{
			"wrong token",
			PathAlertmanager,
			good,
			map[string]string{"Authorization": "Bearer nope"},
			401,
			"bad credentials",
		},
		{
			"token prefix",
			PathAlertmanager,
			good,
			map[string]string{"Authorization": "Bearer " + string(testToken[:4])},
			401,
			"bad credentials",
		},
		{
			"basic scheme",
			PathAlertmanager,
			good,
			map[string]string{"Authorization": "Basic " + string(testToken)},
			401,
			"bad credentials",
		},
		{"empty bearer", PathAlertmanager, good, map[string]string{"Authorization": "Bearer "}, 401, "bad credentials"},
		{
			"bad signature",
			PathAlertmanager,
			good,
			map[string]string{SignatureHeader: "sha256=00ff"},
			401,
			"bad credentials",
		},
		{
			"signature not hex",
			PathAlertmanager,
			good,
			map[string]string{SignatureHeader: "sha256=zz"},
			401,
			"bad credentials",
		},
		{
			"signature of another body",
			PathAlertmanager,
			good,
			map[string]string{SignatureHeader: sign([]byte("{}"))},
			401,
			"bad credentials",
		},
		{
			"signature without scheme",
			PathAlertmanager,
			good,
			map[string]string{SignatureHeader: strings.TrimPrefix(sign(good), "sha256=")},
			401,
			"bad credentials",
		},
		{
			"trigger without credentials",
			PathTrigger,
			[]byte(`{"account":"a","to":"stamp-b","reason":"r"}`),
			nil,
			401,
			"no credentials",
		},
		{
			"trigger wrong token",
			PathTrigger,
			[]byte(`{"account":"a","to":"stamp-b","reason":"r"}`),
			map[string]string{"Authorization": "Bearer x"},
			401,
			"bad credentials",
		},
		{
			"token",
			PathAlertmanager,
			good,
			map[string]string{"Authorization": "Bearer " + string(testToken)},
			422,
			"no rule",
		},
		{"signature", PathAlertmanager, good, map[string]string{SignatureHeader: sign(good)}, 422, "no rule"},
		{
			"wrong token, good signature",
			PathAlertmanager,
			good,
			map[string]string{"Authorization": "Bearer nope", SignatureHeader: sign(good)},
			422,
			"no rule",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp := send(t, h, tt.path, tt.body, tt.hdr)
			require.Equal(t, tt.wantCode, code, resp.Message)
			require.Contains(t, resp.Message, tt.wantMsg)
			if code == http.StatusUnauthorized {
				require.Empty(t, resp.Results, "nothing of a refused request is looked at")
			}
		})
	}
	require.Equal(t, 9.0, count(h.Metrics().Received.WithLabelValues("alertmanager", "unauthorized")))
	require.Equal(t, 2.0, count(h.Metrics().Received.WithLabelValues("trigger", "unauthorized")))
	require.Equal(
		t,
		3.0,
		count(h.Metrics().Alerts.WithLabelValues("", StatusFiring)),
		"only the 3 authenticated requests were parsed",
	)
}

func TestEnvelope(t *testing.T) {
	h := offlineHandler(t)
	bearer := map[string]string{"Authorization": "Bearer " + string(testToken)}

	// Too large: 413, also when the body would be well-formed.
	big := notification(StatusFiring, alert(StatusFiring, "alertname", "DiskFull", "pad", strings.Repeat("x", 5000)))
	code, resp := send(t, h, PathAlertmanager, big, bearer)
	require.Equal(t, http.StatusRequestEntityTooLarge, code)
	require.Contains(t, resp.Message, "larger than 4096 bytes")

	// Only POST.
	r := httptest.NewRequest(http.MethodGet, PathAlertmanager, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	require.Equal(t, http.StatusMethodNotAllowed, w.Code)

	// Health and metrics need no credentials.
	for _, p := range []string{PathHealth, PathMetrics} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, p, nil))
		require.Equal(t, http.StatusOK, w.Code, p)
	}
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, PathMetrics, nil))
	require.Contains(t, w.Body.String(), `baton_webhook_requests_total{endpoint="alertmanager",result="too-large"} 1`)
	// A disabled trigger is 404, once authenticated.
	h.o.Config = &Config{Rules: h.o.Config.Rules, Trigger: TriggerConfig{Disabled: true}}
	code, resp = send(t, h, PathTrigger, []byte(`{}`), nil)
	require.Equal(t, http.StatusUnauthorized, code, resp.Message)
	code, resp = send(t, h, PathTrigger, []byte(`{}`), bearer)
	require.Equal(t, http.StatusNotFound, code, resp.Message)
	require.Contains(t, resp.Message, "disabled")

	// Ready means Temporal answers; this one's does not.
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, PathReady, nil))
	require.Equal(t, http.StatusServiceUnavailable, w.Code)
}

// TestMalformedPayloads are 400 with the parser's message.
func TestMalformedPayloads(t *testing.T) {
	h := offlineHandler(t)
	tests := []struct {
		name, path, body, wantMsg string
	}{
		{"not JSON", PathAlertmanager, `{"version":`, "malformed JSON"},
		{"empty", PathAlertmanager, ``, "empty body"},
		{
			"old version",
			PathAlertmanager,
			`{"version":"3","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"}}]}`,
			`version "3"`,
		},
		{"no alerts", PathAlertmanager, `{"version":"4","status":"firing","alerts":[]}`, "no alerts"},
		{"trigger misspelled", PathTrigger, `{"acount":"a","to":"stamp-b","reason":"r"}`, `unknown field "acount"`},
		{"trigger without reason", PathTrigger, `{"account":"a","to":"stamp-b"}`, `"reason" is required`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, resp := post(t, h, tt.path, []byte(tt.body))
			require.Equal(t, http.StatusBadRequest, code)
			require.Equal(t, "refused", resp.Status)
			require.Contains(t, resp.Message, tt.wantMsg)
		})
	}
}

// TestUnmatchedAndUnmapped: alerts no rule takes, or that a rule takes but
// that lack the account or stamp, are 422 naming what is missing, without
// a Temporal call.
func TestUnmatchedAndUnmapped(t *testing.T) {
	h := offlineHandler(t)
	code, resp := post(t, h, PathAlertmanager, notification(
		StatusFiring,
		alert(
			StatusFiring,
			"alertname",
			"DiskFull",
		),
		alert(StatusFiring, "alertname", "StampDown", "severity", "info", "account", "a"),
	))
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, resp.Message, "no rule of the webhook config matches")
	require.Equal(t, []string{OutcomeUnmatched, OutcomeUnmatched}, outcomes(resp))

	code, resp = post(t, h, PathAlertmanager, notification(StatusFiring,
		alert(StatusFiring, "alertname", "StampDown", "severity", "page", "failover_to", "stamp-b")))
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, resp.Message, `rule "stamp-down" matches but the alert has no "account" label`)
	require.Equal(t, "stamp-down", resp.Results[0].Rule)

	code, resp = post(t, h, PathAlertmanager, notification(StatusFiring,
		alert(StatusFiring, "alertname", "StampDown", "severity", "page", "account", "a")))
	require.Equal(t, http.StatusUnprocessableEntity, code)
	require.Contains(t, resp.Message, `no "failover_to" label naming the stamp`)
	require.Equal(t, 2.0, count(h.Metrics().Refused.WithLabelValues("", "unmatched")))
	require.Equal(t, 2.0, count(h.Metrics().Refused.WithLabelValues("stamp-down", "unmapped")))
}

// TestTemporalUnreachable: a mapped alert while Temporal does not answer is
// a 503, which Alertmanager retries.
func TestTemporalUnreachable(t *testing.T) {
	h := offlineHandler(t)
	h.o.Timeout = 3 * time.Second
	code, resp := post(t, h, PathAlertmanager, notification(StatusFiring,
		alert(StatusFiring, "alertname", "AccountLatencyHigh", "account", "acct-x")))
	require.Equal(t, http.StatusServiceUnavailable, code, resp.Message)
	require.Equal(t, "error", resp.Status)
	require.Equal(t, []string{OutcomeError}, outcomes(resp))
	require.Equal(t, 1.0, count(h.Metrics().Errors.WithLabelValues("describe", "unavailable")))
	require.Equal(t, 1.0, count(h.Metrics().Received.WithLabelValues("alertmanager", "unavailable")))
}
