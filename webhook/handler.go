// Package webhook is Baton's alert receiver: an HTTP handler that turns
// Prometheus Alertmanager notifications (and a plain JSON trigger for other
// tools) into account failovers, exactly once per account, and, for rules
// with scope: stamp, into stamp evacuations, exactly once per stamp.
//
// Every firing alert that a rule of the config maps to an account becomes an
// update-with-start of the account's AccountFailover (workflow ID
// failover-<account>, conflict policy USE_EXISTING): the first one starts
// the failover, repeats and further alerts attach to it, so Alertmanager's
// retries and repeats and several alerts of one outage lead to one failover.
// A rule with scope: stamp does the same with the stamp's StampEvacuation
// (evacuate-<stamp>). While a maintenance switch covers what an alert would
// start (location.Maintenance), the alert is held: nothing starts.
// The answer is 2xx only once Temporal has durably recorded the alert in the
// failover; 5xx when it could not be reached (Alertmanager retries); 4xx for
// what a retry cannot fix (malformed, unmapped, in cooldown), which
// Alertmanager does not retry.
//
// The package calls Temporal through the client and knows the workflow only
// by its contracts (package workflows).
package webhook

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/batonhq/baton/internal/jsonhttp"
	"github.com/batonhq/baton/workflows"
)

// Routes the handler serves.
const (
	PathAlertmanager = "/v1/alertmanager"
	PathTrigger      = "/v1/trigger"
	PathHealth       = "/healthz"
	PathReady        = "/readyz"
	PathMetrics      = "/metrics"
)

// Defaults of Options.
const (
	DefaultMaxBodyBytes = 1 << 20
	DefaultTimeout      = 20 * time.Second
)

// AccountDirectory tells whether an account exists (e.g. the location
// service), so that an alert naming an unknown account is refused with a
// clear answer instead of starting a failover its precheck would refuse.
type AccountDirectory interface {
	// Known reports whether account exists; an error means it could not
	// find out (the request is answered 503 and retried).
	Known(ctx context.Context, account string) (bool, error)
}

// Options configure a Handler.
type Options struct {
	// Client reaches Temporal (required). A lazy client lets the receiver
	// start, and answer 503, while Temporal is away.
	Client client.Client
	// Config maps alerts to failovers (required).
	Config *Config
	// Auth holds the bearer token and/or the HMAC secret (one required).
	Auth Auth
	// TaskQueue of Baton's workers (default workflows.TaskQueue).
	TaskQueue string
	// Accounts, if set, refuses alerts naming an account it does not know.
	Accounts AccountDirectory
	// Fleet, if set, is asked for the maintenance switches before anything
	// is started or attached: while one covers what an alert would start,
	// the alert is held (see held). Without it no switch is checked.
	Fleet Fleet
	// Logger hears one line per request (default: none).
	Logger *zap.Logger
	// Registry serves /metrics (default: a new registry with the Go and
	// process collectors).
	Registry *prometheus.Registry
	// MaxBodyBytes bounds a request body (default 1 MiB); larger is 413.
	MaxBodyBytes int64
	// Timeout bounds the calls of one request, to Accounts and Temporal
	// (default 20s); past it the answer is 503 and Alertmanager retries.
	Timeout time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Handler is the receiver. It is safe for concurrent use.
type Handler struct {
	o       Options
	mux     *http.ServeMux
	metrics *Metrics
	// flight merges concurrent identical alerts (same account and
	// fingerprint) into one Temporal call.
	flight singleflight.Group
	// slots bound the concurrent Temporal calls per account (striped), well
	// under the server's limit of in-flight updates per workflow (10).
	slots [64]chan struct{}
	// recorded remembers alerts this receiver saw recorded in a run, so that
	// a repeat only costs a describe, not an update in the history.
	recorded *recordedSet
}

const (
	callsPerAccount = 4
	// accountsAtOnce bounds the accounts one request works on at a time (a
	// notification may carry alerts for many accounts).
	accountsAtOnce = 16
)

// New checks the options and builds a Handler.
func New(o Options) (*Handler, error) {
	switch {
	case o.Client == nil:
		return nil, errors.New("webhook: no Temporal client")
	case o.Config == nil:
		return nil, errors.New("webhook: no config")
	}
	if err := o.Auth.validate(); err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	if o.TaskQueue == "" {
		o.TaskQueue = workflows.TaskQueue
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Registry == nil {
		o.Registry = prometheus.NewRegistry()
		o.Registry.MustRegister(collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	h := &Handler{
		o:        o,
		mux:      http.NewServeMux(),
		metrics:  NewMetrics(o.Registry),
		recorded: newRecordedSet(10000),
	}
	for i := range h.slots {
		h.slots[i] = make(chan struct{}, callsPerAccount)
	}
	if o.Fleet == nil {
		o.Logger.Warn("webhook: no location service to ask: maintenance switches are not checked, " +
			"alerts start failovers and evacuations even while a switch is on")
	}
	h.mux.HandleFunc("POST "+PathAlertmanager, h.serveAlertmanager)
	h.mux.HandleFunc("POST "+PathTrigger, h.serveTrigger)
	h.mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, _ *http.Request) {
		jsonhttp.WriteIndentedJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	h.mux.HandleFunc("GET "+PathReady, h.serveReady)
	h.mux.Handle("GET "+PathMetrics, promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{}))
	return h, nil
}

// Metrics are the handler's counters, for tests and embedding programs.
func (h *Handler) Metrics() *Metrics { return h.metrics }

// ServeHTTP serves the receiver's routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// serveReady answers 200 when Temporal answers a health check.
func (h *Handler) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	if _, err := h.o.Client.CheckHealth(ctx, &client.CheckHealthRequest{}); err != nil {
		jsonhttp.WriteIndentedJSON(w, http.StatusServiceUnavailable,
			map[string]string{"status": "unavailable", "message": "Temporal does not answer: " + err.Error()})
		return
	}
	jsonhttp.WriteIndentedJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Outcomes of one alert (Result.Outcome).
const (
	OutcomeStarted         = "started"           // it started the account's failover
	OutcomeAttached        = "attached"          // recorded in the running failover
	OutcomeDuplicate       = "duplicate"         // the running failover already had it
	OutcomeCancelled       = "cancelled"         // resolved: the pending failover was rejected
	OutcomeGoesOn          = "goes-on"           // resolved: past its gate (or not the alert's to cancel)
	OutcomeNothingToCancel = "nothing-to-cancel" // resolved: no failover of the account runs
	OutcomeIgnored         = "ignored"           // resolved, and its rule does not cancel
	OutcomeUnmatched       = "unmatched"         // no rule matches it
	OutcomeUnmapped        = "unmapped"          // a rule matches but the alert lacks the account or stamp
	OutcomeUnknownAccount  = "unknown-account"   // the account directory does not know the account
	OutcomeCooldown        = "cooldown"          // refused: the account failed over recently
	OutcomeHeld            = "held"              // a maintenance switch holds automatic triggers: nothing started
	OutcomeError           = "error"             // Temporal (or the directory) failed: retry
)

// Result is what happened to one alert.
type Result struct {
	Alert       string `json:"alert"`
	Fingerprint string `json:"fingerprint"`
	Status      string `json:"status"`
	Rule        string `json:"rule,omitempty"`
	Account     string `json:"account,omitempty"`
	Stamp       string `json:"stamp,omitempty"` // the stamp to evacuate (scope: stamp)
	Outcome     string `json:"outcome"`
	WorkflowID  string `json:"workflow_id,omitempty"`
	RunID       string `json:"run_id,omitempty"`
	// Phase of the failover when the alert was recorded.
	Phase   workflows.Phase `json:"phase,omitempty"`
	Message string          `json:"message,omitempty"`

	unavailable bool // the error was a timeout or an unreachable service
}

// Response is the JSON answer to a notification or trigger.
type Response struct {
	// Status is ok, refused (4xx) or error (5xx).
	Status  string   `json:"status"`
	Message string   `json:"message"`
	Results []Result `json:"results,omitempty"`
}

// item is one alert (or trigger) on its way to a failover.
type item struct {
	res             *Result
	ref             workflows.AlertRef
	route           Route
	rule            string // for metrics: the rule's name, or "trigger"
	action          Action
	mode            workflows.Mode
	approval        bool
	approvalTimeout time.Duration
	flushDeadline   time.Duration // 0: the workflow's default
	cooldown        time.Duration
	cancelOnResolve bool
	trigger         workflows.Trigger
	reason          string
	requestedBy     string
}

// serveAlertmanager serves Alertmanager's webhook notifications.
func (h *Handler) serveAlertmanager(w http.ResponseWriter, r *http.Request) {
	const endpoint = "alertmanager"
	body, ok := h.readAuthenticated(w, r, endpoint)
	if !ok {
		return
	}
	n, err := ParseNotification(body)
	if err != nil {
		h.refuse(w, endpoint, "malformed", http.StatusBadRequest, err.Error())
		return
	}
	items := make([]*item, 0, len(n.Alerts))
	for _, a := range n.Alerts {
		items = append(items, h.routeAlert(n, a))
	}
	h.process(r.Context(), items)
	h.answer(w, endpoint, items)
}

// routeAlert maps one alert of notification n to its failover by the
// config's rules; an alert no rule takes comes back with its outcome set
// (unmatched, unmapped).
func (h *Handler) routeAlert(n *Notification, a Alert) *item {
	it := &item{
		res:     &Result{Alert: a.Name(), Fingerprint: a.Fingerprint, Status: a.Status},
		ref:     a.Ref(),
		trigger: workflows.TriggerAlert,
	}
	route, matched, err := h.o.Config.Route(a.Labels)
	switch {
	case !matched:
		it.res.Outcome, it.res.Message = OutcomeUnmatched, "no rule matches this alert's labels"
		h.metrics.Alerts.WithLabelValues("", a.Status).Inc()
		h.metrics.Refused.WithLabelValues("", "unmatched").Inc()
		return it
	case err != nil:
		it.res.Rule, it.res.Account = route.Rule.Name, route.Account
		it.res.Outcome, it.res.Message = OutcomeUnmapped, err.Error()
		h.metrics.Alerts.WithLabelValues(route.Rule.Name, a.Status).Inc()
		h.metrics.Refused.WithLabelValues(route.Rule.Name, "unmapped").Inc()
		return it
	}
	rule := route.Rule
	h.metrics.Alerts.WithLabelValues(rule.Name, a.Status).Inc()
	it.route, it.rule, it.action = route, rule.Name, rule.action()
	it.res.Rule, it.res.Account, it.res.Stamp = rule.Name, route.Account, route.Stamp
	it.mode, it.approval = rule.Mode, approvalRequired(rule.ApprovalRequired)
	it.approvalTimeout = time.Duration(rule.ApprovalTimeout)
	it.cooldown, it.cancelOnResolve = h.o.Config.cooldown(rule.Cooldown), rule.CancelOnResolve
	it.flushDeadline = h.o.Config.flushDeadline(rule.FlushDeadline)
	it.reason = fmt.Sprintf("alert %s %s", a.Name(), a.Status)
	if s := a.Annotations["summary"]; s != "" {
		it.reason += ": " + s
	}
	it.requestedBy = fmt.Sprintf("alertmanager (receiver %q, webhook rule %q)", n.Receiver, rule.Name)
	return it
}

// serveTrigger serves the plain JSON trigger. Its start has
// serveAlertmanager's shape (authenticate, parse, refuse what is
// malformed), but a disabled trigger is refused in between, after
// authentication and before parsing, so the two are kept apart.
func (h *Handler) serveTrigger(w http.ResponseWriter, r *http.Request) {
	const endpoint = "trigger"
	body, ok := h.readAuthenticated(w, r, endpoint)
	if !ok {
		return
	}
	tc := h.o.Config.Trigger
	if tc.Disabled {
		h.refuse(w, endpoint, "disabled", http.StatusNotFound,
			"the plain JSON trigger is disabled in this receiver's config")
		return
	}
	t, err := ParseTrigger(body)
	if err != nil {
		h.refuse(w, endpoint, "malformed", http.StatusBadRequest, err.Error())
		return
	}
	h.metrics.Alerts.WithLabelValues("trigger", StatusFiring).Inc()
	by := t.RequestedBy
	if by == "" {
		by = "api trigger"
	}
	it := &item{
		res: &Result{
			Alert:       "trigger",
			Fingerprint: "api-" + t.ID,
			Status:      StatusFiring,
			Rule:        "trigger",
			Account:     t.Account,
		},
		ref:             t.Ref(h.o.Now()),
		route:           Route{Account: t.Account, To: t.To, From: t.From},
		rule:            "trigger",
		action:          ActionFailover,
		mode:            t.Mode,
		approval:        approvalRequired(tc.ApprovalRequired),
		approvalTimeout: time.Duration(tc.ApprovalTimeout),
		flushDeadline:   h.o.Config.flushDeadline(tc.FlushDeadline),
		cooldown:        h.o.Config.cooldown(tc.Cooldown),
		trigger:         workflows.TriggerAPI,
		reason:          t.Reason,
		requestedBy:     by,
	}
	h.process(r.Context(), []*item{it})
	h.answer(w, endpoint, []*item{it})
}

// readAuthenticated reads the body of an authenticated request; otherwise
// it answers (401, 413) and returns false. A request without any
// credentials is refused before its body is read.
func (h *Handler) readAuthenticated(w http.ResponseWriter, r *http.Request, endpoint string) ([]byte, bool) {
	a := h.o.Auth
	if !a.hasCredentials(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
		h.refuse(w, endpoint, "unauthorized", http.StatusUnauthorized,
			"no credentials: send Authorization: Bearer <token> or "+SignatureHeader)
		return nil, false
	}
	bearer := a.bearerOK(r)
	body, err := jsonhttp.ReadBody(w, r, h.o.MaxBodyBytes)
	var be *jsonhttp.BodyError
	switch {
	case errors.As(err, &be) && be.TooLarge:
		h.refuse(w, endpoint, "too-large", http.StatusRequestEntityTooLarge, be.Msg)
		return nil, false
	case err != nil:
		h.refuse(w, endpoint, "malformed", http.StatusBadRequest, err.Error())
		return nil, false
	}
	if !bearer && !a.signatureOK(r, body) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
		h.refuse(w, endpoint, "unauthorized", http.StatusUnauthorized,
			"bad credentials: wrong bearer token or signature")
		return nil, false
	}
	return body, true
}

// refuse answers a request that went no further than its envelope.
func (h *Handler) refuse(w http.ResponseWriter, endpoint, result string, code int, msg string) {
	h.metrics.Received.WithLabelValues(endpoint, result).Inc()
	h.o.Logger.Info("webhook request refused",
		zap.String("endpoint", endpoint), zap.Int("code", code), zap.String("message", msg))
	status := "refused"
	if code >= 500 {
		status = "error"
	}
	jsonhttp.WriteIndentedJSON(w, code, Response{Status: status, Message: msg})
}

// answer writes the alerts' outcomes with the HTTP status verdict picks,
// counts the request and logs it.
func (h *Handler) answer(w http.ResponseWriter, endpoint string, items []*item) {
	resp := Response{Results: make([]Result, 0, len(items))}
	counts := map[string]int{}
	unavailable := false
	for _, it := range items {
		resp.Results = append(resp.Results, *it.res)
		counts[it.res.Outcome]++
		unavailable = unavailable || it.res.unavailable
	}
	code, result := verdict(&resp, items, counts, unavailable)
	h.metrics.Received.WithLabelValues(endpoint, result).Inc()
	fields := []zap.Field{
		zap.String("endpoint", endpoint),
		zap.Int("code", code),
		zap.String("summary", summary(counts)),
	}
	for _, r := range resp.Results {
		if r.Outcome == OutcomeError {
			fields = append(fields, zap.String("error", r.Message))
			break
		}
	}
	h.o.Logger.Info("webhook request", fields...)
	jsonhttp.WriteIndentedJSON(w, code, resp)
}

// verdict picks the HTTP status (and the request's result label) for the
// alerts' outcomes, and sets the response's status and message: 5xx if any
// call failed (a retry is harmless: what was done is recognized as a
// duplicate), else 2xx if anything was acted on, else the most telling 4xx.
func verdict(resp *Response, items []*item, counts map[string]int, unavailable bool) (code int, result string) {
	refused := func(code int, result, msg string) (int, string) {
		resp.Status, resp.Message = "refused", msg
		return code, result
	}
	acted := len(items) - counts[OutcomeUnmatched] - counts[OutcomeUnmapped] -
		counts[OutcomeUnknownAccount] - counts[OutcomeCooldown] - counts[OutcomeHeld]
	switch {
	case counts[OutcomeError] > 0 && unavailable:
		resp.Status, resp.Message = "error", "Temporal or the account directory could not be reached in time: "+
			"retry (what was done is recognized on retry)"
		return http.StatusServiceUnavailable, "unavailable"
	case counts[OutcomeError] > 0:
		resp.Status, resp.Message = "error", "a call failed: retry (what was done is recognized on retry)"
		return http.StatusInternalServerError, "error"
	case acted > 0:
		resp.Status, resp.Message = "ok", summary(counts)
		return http.StatusOK, "accepted"
	case counts[OutcomeHeld] > 0:
		// Received and deliberately held: a success for Alertmanager (no
		// retry, no failed notification); the alert comes back with its
		// next repeat, which starts it if the switch is off by then.
		resp.Status, resp.Message = "held", firstMessage(items, OutcomeHeld)
		return http.StatusOK, "held"
	case counts[OutcomeCooldown] > 0:
		return refused(http.StatusConflict, "cooldown", firstMessage(items, OutcomeCooldown))
	case counts[OutcomeUnknownAccount] > 0:
		return refused(http.StatusUnprocessableEntity, "unknown-account", firstMessage(items, OutcomeUnknownAccount))
	case counts[OutcomeUnmapped] > 0:
		return refused(http.StatusUnprocessableEntity, "unmapped", firstMessage(items, OutcomeUnmapped))
	default:
		return refused(http.StatusUnprocessableEntity, "unmatched",
			"no rule of the webhook config matches any alert of this notification: "+
				"add a rule, or stop routing these alerts to this receiver")
	}
}

// outcomeOrder is the order in which summary names the outcomes.
var outcomeOrder = []string{
	OutcomeStarted, OutcomeAttached, OutcomeDuplicate, OutcomeCancelled, OutcomeGoesOn, OutcomeNothingToCancel,
	OutcomeIgnored, OutcomeUnmatched, OutcomeUnmapped, OutcomeUnknownAccount, OutcomeCooldown, OutcomeHeld,
	OutcomeError,
}

// summary counts the outcomes in words, e.g. "1 started, 2 duplicate".
func summary(counts map[string]int) string {
	var parts []string
	for _, o := range outcomeOrder {
		if counts[o] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[o], o))
		}
	}
	return strings.Join(parts, ", ")
}

// firstMessage is the message of the first item with outcome.
func firstMessage(items []*item, outcome string) string {
	for _, it := range items {
		if it.res.Outcome == outcome {
			return it.res.Message
		}
	}
	return outcome
}

// process acts on the routed items: per workflow (an account's failover
// or reprotect, a stamp's evacuation), concurrently across them, within the
// request's time budget.
func (h *Handler) process(ctx context.Context, items []*item) {
	ctx, cancel := context.WithTimeout(ctx, h.o.Timeout)
	defer cancel()
	type key struct {
		subject string // the account, or the stamp to evacuate
		action  Action
	}
	var order []key
	byKey := map[key][]*item{}
	sw := h.switches()
	for _, it := range items {
		if it.res.Outcome != "" {
			continue // unmatched or unmapped
		}
		k := key{it.route.subject(), it.action}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], it)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, accountsAtOnce)
	for _, k := range order {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			h.handleAlerts(ctx, sw, k.subject, k.action, byKey[k])
		})
	}
	wg.Wait()
}

// takeSlot takes one of the workflow's concurrent-call slots (by its
// account or stamp); release gives it back.
func (h *Handler) takeSlot(ctx context.Context, subject string) (release func(), err error) {
	f := fnv.New32a()
	f.Write([]byte(subject))
	s := h.slots[f.Sum32()%uint32(len(h.slots))]
	select {
	case s <- struct{}{}:
		return func() { <-s }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for a free call slot for %s: %w", subject, ctx.Err())
	}
}

// recordedSet remembers (run, fingerprint) pairs seen recorded, bounded:
// when full it starts over, which only costs an update per alert again.
type recordedSet struct {
	mu  sync.Mutex
	max int
	m   map[string]struct{}
}

func newRecordedSet(max int) *recordedSet { return &recordedSet{max: max, m: map[string]struct{}{}} }

func (s *recordedSet) has(run, fp string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.m[run+"\x00"+fp]
	return ok
}

func (s *recordedSet) add(run, fp string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		s.m = map[string]struct{}{}
	}
	s.m[run+"\x00"+fp] = struct{}{}
}
