package webhook

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/workflows"
)

// testdata/alertmanager-v4.json is a notification as Alertmanager 0.25
// sends it (captured from the end-to-end test's receiver).
func TestParseNotificationReadsAlertmanager(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "alertmanager-v4.json"))
	require.NoError(t, err)
	n, err := ParseNotification(b)
	require.NoError(t, err)
	require.Equal(t, "4", n.Version)
	require.Equal(t, StatusFiring, n.Status)
	require.Equal(t, "baton", n.Receiver)
	require.NotEmpty(t, n.GroupKey)
	require.Equal(t, "StampDown", n.GroupLabels["alertname"])
	require.Len(t, n.Alerts, 2)
	a := n.Alerts[0]
	require.Equal(t, StatusFiring, a.Status)
	require.Equal(t, "StampDown", a.Name())
	require.Equal(t, "acct-1", a.Labels["account"])
	require.NotEmpty(t, a.Fingerprint)
	require.False(t, a.StartsAt.IsZero())
	require.True(t, a.EndsAt.IsZero() || a.EndsAt.After(a.StartsAt))
	require.NotEmpty(t, a.Annotations["summary"])
	ref := a.Ref()
	require.Equal(t, SourceAlertmanager, ref.Source)
	require.Equal(t, a.Fingerprint, ref.Fingerprint)
	require.Equal(t, a.Labels, ref.Labels)
}

func TestParseNotificationRefusesMalformed(t *testing.T) {
	valid := `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A"}}]}`
	tests := []struct {
		name, body, wantErr string
	}{
		{"empty", ``, "empty body"},
		{"not JSON", `hello`, "malformed JSON"},
		{"array", `[]`, "malformed JSON"},
		{"truncated", valid[:40], "malformed JSON"},
		{"trailing data", valid + `{}`, "data after the JSON object"},
		{"wrong type", `{"version":4}`, "malformed JSON"},
		{"version 3", strings.Replace(valid, `"4"`, `"3"`, 1), `version "3"`},
		{"no version", `{"status":"firing","alerts":[]}`, `version ""`},
		{
			"bad status",
			strings.Replace(valid, `"status":"firing","alerts"`, `"status":"pending","alerts"`, 1),
			`notification status "pending"`,
		},
		{"no alerts", `{"version":"4","status":"firing","alerts":[]}`, "no alerts"},
		{
			"bad alert status",
			strings.Replace(valid, `[{"status":"firing"`, `[{"status":"ok"`, 1),
			`alert 0: status "ok"`,
		},
		{
			"alert without labels",
			`{"version":"4","status":"firing","alerts":[{"status":"firing"}]}`,
			"alert 0 has no labels",
		},
		{
			"bad time",
			`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"yesterday"}]}`,
			"malformed JSON",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseNotification([]byte(tt.body))
			require.ErrorContains(t, err, tt.wantErr)
			var pe *PayloadError
			require.ErrorAs(t, err, &pe)
		})
	}
	n, err := ParseNotification([]byte(valid))
	require.NoError(t, err)
	require.Equal(
		t,
		labelsFingerprint(map[string]string{"alertname": "A"}),
		n.Alerts[0].Fingerprint,
		"a missing fingerprint is derived from the labels",
	)
}

func TestParseTrigger(t *testing.T) {
	tr, err := ParseTrigger([]byte(`{"account":"acct-1","to":"stamp-b","reason":"db team asks"}`))
	require.NoError(t, err)
	require.Equal(t, workflows.Mode("planned"), tr.Mode)
	require.NotEmpty(t, tr.ID, "an ID is derived from the fields")
	again, err := ParseTrigger([]byte(`{"reason":"db team asks","to":"stamp-b","account":"acct-1"}`))
	require.NoError(t, err)
	require.Equal(t, tr.ID, again.ID, "the same trigger gets the same ID")
	other, err := ParseTrigger([]byte(`{"account":"acct-1","to":"stamp-b","reason":"another reason"}`))
	require.NoError(t, err)
	require.NotEqual(t, tr.ID, other.ID)
	ref := tr.Ref(time.Unix(0, 0))
	require.Equal(t, SourceAPI, ref.Source)
	require.Equal(t, "api-"+tr.ID, ref.Fingerprint)

	tests := []struct {
		name, body, wantErr string
	}{
		{"misspelled field", `{"acount":"a","to":"b","reason":"r"}`, `unknown field "acount"`},
		{"no account", `{"to":"b","reason":"r"}`, `"account" and "to" are required`},
		{"no destination", `{"account":"a","reason":"r"}`, `"account" and "to" are required`},
		{"no reason", `{"account":"a","to":"b"}`, `"reason" is required`},
		{"bad mode", `{"account":"a","to":"b","reason":"r","mode":"fast"}`, `"mode" "fast"`},
		{"same stamps", `{"account":"a","from":"b","to":"b","reason":"r"}`, "two different stamps"},
		{"bad account", `{"account":"a b","to":"b","reason":"r"}`, "not a valid name"},
		{"not JSON", `account=a`, "malformed JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseTrigger([]byte(tt.body))
			require.ErrorContains(t, err, tt.wantErr)
		})
	}
}

// FuzzParseNotification: the parser never panics, and whatever it accepts
// is a usable notification that survives a round trip. The seeds (also run
// by a plain `go test`) are the captured Alertmanager payload and the
// malformed cases above; `go test -fuzz FuzzParseNotification ./webhook`
// explores further.
func FuzzParseNotification(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "alertmanager-v4.json"))
	require.NoError(f, err)
	f.Add(b)
	f.Add(notification(StatusResolved, alert(StatusResolved, "alertname", "StampDown", "account", "a")))
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"version":"4"}`,
		`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"A"}}]}`,
		`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{}}]}`,
		`{"version":"4","status":"resolved","alerts":[{"status":"resolved","labels":{"a":"\u0000"},"fingerprint":""}]} `,
		`{"version":"4","status":"firing","alerts":[null]}`,
		`{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"},"startsAt":"0001-01-01T00:00:00Z"}]}{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseNotification(body)
		if err != nil {
			var pe *PayloadError
			require.ErrorAs(t, err, &pe, "every refusal is a payload error (a 400), never anything else")
			require.Nil(t, n)
			return
		}
		require.Contains(t, []string{StatusFiring, StatusResolved}, n.Status)
		require.NotEmpty(t, n.Alerts)
		for _, a := range n.Alerts {
			require.Contains(t, []string{StatusFiring, StatusResolved}, a.Status)
			require.NotEmpty(t, a.Labels)
			require.NotEmpty(t, a.Fingerprint)
			ref := a.Ref()
			require.Equal(t, a.Fingerprint, ref.Fingerprint)
		}
		// Round trip: what was accepted encodes and parses to the same.
		out, err := json.Marshal(n)
		require.NoError(t, err)
		n2, err := ParseNotification(out)
		require.NoError(t, err)
		require.Equal(t, len(n.Alerts), len(n2.Alerts))
		for i := range n.Alerts {
			require.Equal(t, n.Alerts[i].Fingerprint, n2.Alerts[i].Fingerprint)
			require.Equal(t, n.Alerts[i].Labels, n2.Alerts[i].Labels)
			require.True(t, n.Alerts[i].StartsAt.Equal(n2.Alerts[i].StartsAt))
		}
	})
}

// FuzzParseTrigger: the plain trigger's parser never panics and what it
// accepts names an account and a different destination.
func FuzzParseTrigger(f *testing.F) {
	for _, s := range []string{
		`{"account":"a","to":"b","reason":"r"}`,
		`{"account":"a","to":"a","from":"a","reason":"r"}`,
		`{"account":"a","to":"b","reason":"r","mode":"unplanned","id":"x","labels":{"k":"v"}}`,
		`{}`, ``, `{"account":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := ParseTrigger(body)
		if err != nil {
			var pe *PayloadError
			require.ErrorAs(t, err, &pe)
			return
		}
		require.True(t, validName(tr.Account) && validName(tr.To))
		require.NotEqual(t, tr.From, tr.To)
		require.NotEmpty(t, tr.Reason)
		require.NotEmpty(t, tr.ID)
	})
}
