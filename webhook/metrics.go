package webhook

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the receiver's Prometheus counters (see docs/WEBHOOK.md).
type Metrics struct {
	// Received counts requests by endpoint (alertmanager, trigger) and
	// result: accepted, unauthorized, too-large, malformed, unmapped,
	// unknown-account, cooldown, unavailable, error.
	Received *prometheus.CounterVec
	// Alerts counts alerts by rule and status (firing, resolved) once a
	// request is authenticated and parsed; unmatched alerts have rule "".
	Alerts *prometheus.CounterVec
	// Started counts failovers a request started, by rule and mode.
	Started *prometheus.CounterVec
	// ReprotectsStarted counts reprotects a request started, by rule.
	ReprotectsStarted *prometheus.CounterVec
	// EvacuationsStarted counts stamp evacuations a request started (rules
	// with scope: stamp), by rule and mode.
	EvacuationsStarted *prometheus.CounterVec
	// Attached counts alerts attached to a running failover, reprotect or
	// evacuation, by rule and result: attached (new to it) or duplicate
	// (already recorded).
	Attached *prometheus.CounterVec
	// Refused counts alerts refused, by rule and reason: cooldown,
	// unmapped, unknown-account, unmatched.
	Refused *prometheus.CounterVec
	// Held counts firing alerts held by a maintenance switch (nothing
	// started or attached), by rule and switch: "global" or the stamp.
	Held *prometheus.CounterVec
	// Cancelled counts resolved alerts sent to a pending failover, by rule
	// and result: rejected (it was cancelled) or goes-on (past its gate).
	Cancelled *prometheus.CounterVec
	// Errors counts failed calls by operation (describe, start, reject,
	// lookup, maintenance) and kind: unavailable (Temporal or the location service could
	// not be reached in time) or other.
	Errors *prometheus.CounterVec
}

// NewMetrics creates the counters and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		v := prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "baton_webhook",
			Name:      name,
			Help:      help,
		}, labels)
		if reg != nil {
			reg.MustRegister(v)
		}
		return v
	}
	return &Metrics{
		Received: c("requests_total",
			"Requests received, by endpoint and result.", "endpoint", "result"),
		Alerts: c("alerts_total",
			"Alerts in authenticated, well-formed notifications, by rule and status.", "rule", "status"),
		Started: c("failovers_started_total",
			"Failovers started by an alert or trigger, by rule and mode.", "rule", "mode"),
		ReprotectsStarted: c("reprotects_started_total",
			"Reprotects started by an alert, by rule.", "rule"),
		EvacuationsStarted: c("evacuations_started_total",
			"Stamp evacuations started by an alert (scope: stamp), by rule and mode.", "rule", "mode"),
		Attached: c("alerts_attached_total",
			"Alerts attached to a running failover, reprotect or evacuation, by rule and result (attached, duplicate).",
			"rule", "result"),
		Refused: c("alerts_refused_total",
			"Alerts refused, by rule and reason.", "rule", "reason"),
		Held: c("alerts_held_total",
			"Firing alerts held by a maintenance switch, by rule and switch (global, or the stamp).", "rule", "switch"),
		Cancelled: c("resolved_cancels_total",
			"Resolved alerts sent to a pending failover, by rule and result (rejected, goes-on).", "rule", "result"),
		Errors: c("errors_total",
			"Failed calls, by operation and kind (unavailable, other).", "op", "kind"),
	}
}
