package webhook

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/batonhq/baton/internal/jsonhttp"
	"github.com/batonhq/baton/workflows"
)

// Alert statuses in Alertmanager notifications.
const (
	StatusFiring   = "firing"
	StatusResolved = "resolved"
)

// Notification is an Alertmanager webhook payload, version 4
// (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
type Notification struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	TruncatedAlerts   int               `json:"truncatedAlerts"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []Alert           `json:"alerts"`
}

// Alert is one alert of a Notification.
type Alert struct {
	Status       string            `json:"status"`
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Name is the alert's alertname label.
func (a Alert) Name() string { return a.Labels["alertname"] }

// Ref is the alert as a failover records it.
func (a Alert) Ref() workflows.AlertRef {
	return workflows.AlertRef{
		Source:      SourceAlertmanager,
		Name:        a.Name(),
		Fingerprint: a.Fingerprint,
		Status:      a.Status,
		StartsAt:    a.StartsAt,
		Labels:      a.Labels,
	}
}

// Sources of the alerts a failover records.
const (
	SourceAlertmanager = "alertmanager"
	SourceAPI          = "api"
)

// PayloadError is a request body the receiver cannot use: the answer is a
// 4xx, which Alertmanager does not retry.
type PayloadError struct{ Msg string }

func (e *PayloadError) Error() string { return e.Msg }

func payloadErr(format string, args ...any) error {
	return &PayloadError{Msg: fmt.Sprintf(format, args...)}
}

// ParseNotification parses and checks an Alertmanager payload. Alerts
// without a fingerprint (a sender other than Alertmanager) get one derived
// from their labels, as Alertmanager would identify them. Unknown fields are
// ignored, so that a newer Alertmanager's additions do not break it.
func ParseNotification(b []byte) (*Notification, error) {
	var n Notification
	if err := jsonhttp.DecodeAllowingUnknown(b, &n); err != nil {
		return nil, payloadErr("%v", err)
	}
	if n.Version != "4" {
		return nil, payloadErr("Alertmanager payload version %q: this receiver reads version \"4\"", n.Version)
	}
	if n.Status != StatusFiring && n.Status != StatusResolved {
		return nil, payloadErr("notification status %q: want %q or %q", n.Status, StatusFiring, StatusResolved)
	}
	if len(n.Alerts) == 0 {
		return nil, payloadErr("notification has no alerts")
	}
	for i := range n.Alerts {
		a := &n.Alerts[i]
		if a.Status != StatusFiring && a.Status != StatusResolved {
			return nil, payloadErr("alert %d: status %q: want %q or %q", i, a.Status, StatusFiring, StatusResolved)
		}
		if len(a.Labels) == 0 {
			return nil, payloadErr("alert %d has no labels", i)
		}
		if a.Fingerprint == "" {
			a.Fingerprint = labelsFingerprint(a.Labels)
		}
	}
	return &n, nil
}

// labelsFingerprint identifies a label set: sha256 of the sorted pairs.
func labelsFingerprint(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	h := sha256.New()
	for _, k := range keys {
		fmt.Fprintf(h, "%q=%q,", k, labels[k])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Trigger is the plain JSON trigger for tools other than Alertmanager
// (POST /v1/trigger).
type Trigger struct {
	Account string `json:"account"`
	To      string `json:"to"`
	// From is the expected current primary ("" accepts the current one).
	From string `json:"from,omitempty"`
	// Mode is planned (default) or unplanned.
	Mode        workflows.Mode `json:"mode,omitempty"`
	Reason      string         `json:"reason"`
	RequestedBy string         `json:"requested_by,omitempty"`
	// ID makes repeats of one trigger idempotent: the same ID attaches once.
	// Without one, the trigger's fields identify it.
	ID     string            `json:"id,omitempty"`
	Labels map[string]string `json:"labels,omitempty"`
}

// ParseTrigger parses and checks a plain JSON trigger. Unknown fields are
// refused: a misspelled "acount" must not pass as an empty account.
func ParseTrigger(b []byte) (*Trigger, error) {
	var t Trigger
	if err := jsonhttp.Decode(b, &t); err != nil {
		return nil, payloadErr("%v", err)
	}
	if t.Mode == "" {
		t.Mode = workflows.ModePlanned
	}
	switch {
	case t.Account == "" || t.To == "":
		return nil, payloadErr(`"account" and "to" are required: name the account and the stamp to fail over to`)
	case t.Reason == "":
		return nil, payloadErr(`"reason" is required: say why, it is recorded in the failover`)
	case !t.Mode.Valid():
		return nil, payloadErr(`"mode" %q: use %q or %q`, t.Mode, workflows.ModePlanned, workflows.ModeUnplanned)
	}
	req := workflows.FailoverRequest{
		Account:   t.Account,
		FromStamp: t.From,
		ToStamp:   t.To,
		Mode:      t.Mode,
		Trigger:   workflows.TriggerAPI,
	}
	if err := req.WithDefaults().Validate(); err != nil {
		return nil, payloadErr("%v", err)
	}
	for field, v := range map[string]string{"account": t.Account, "to": t.To, "from": t.From} {
		if v != "" && !validName(v) {
			return nil, payloadErr("%q %q: not a valid name (1-200 printable characters, no spaces)", field, v)
		}
	}
	if t.ID == "" {
		t.ID = labelsFingerprint(map[string]string{
			"account": t.Account,
			"to":      t.To,
			"from":    t.From,
			"mode":    string(t.Mode),
			"reason":  t.Reason,
		})
	}
	return &t, nil
}

// Ref is the trigger as a failover records it.
func (t *Trigger) Ref(now time.Time) workflows.AlertRef {
	return workflows.AlertRef{
		Source:      SourceAPI,
		Name:        "trigger",
		Fingerprint: "api-" + t.ID,
		Status:      StatusFiring,
		StartsAt:    now,
		Labels:      t.Labels,
	}
}

// validName accepts account and stamp names that make sense in a workflow
// ID and a log line.
func validName(s string) bool {
	if s == "" || len(s) > 200 {
		return false
	}
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) < 0
}
