package auth

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Guard is one server's use of an Authenticator: its own copy, logging
// with the server's logger and counting every refusal in a Prometheus
// counter (by route and reason) that Metrics serves. A Guard made from a
// nil Authenticator lets everyone do everything: the operator's explicit
// --insecure.
type Guard struct {
	auth     *Authenticator
	reg      *prometheus.Registry
	refusals *prometheus.CounterVec
}

// NewGuard guards with a (nil: insecure), counting refusals in the counter
// named metric.
func NewGuard(a *Authenticator, log *zap.Logger, metric, help string) *Guard {
	g := &Guard{reg: prometheus.NewRegistry()}
	g.refusals = prometheus.NewCounterVec(prometheus.CounterOpts{Name: metric, Help: help}, []string{"route", "reason"})
	g.reg.MustRegister(g.refusals)
	if a != nil {
		c := *a
		c.Log = log
		c.Refused = func(route, reason string, _ Role) { g.refusals.WithLabelValues(route, reason).Inc() }
		g.auth = &c
	}
	return g
}

// Insecure reports whether the guard lets everyone in.
func (g *Guard) Insecure() bool { return g.auth == nil }

// Require serves h to callers holding one of roles (any authenticated
// caller if none is given), as Authenticator.Require.
func (g *Guard) Require(h http.Handler, roles ...Role) http.Handler {
	if g.auth == nil {
		return h
	}
	return g.auth.Require(h, roles...)
}

// Refuse answers 403 for a check a handler makes itself, logged and
// counted.
func (g *Guard) Refuse(w http.ResponseWriter, r *http.Request, role Role, who, msg string) {
	g.auth.Refuse(w, r, role, who, msg)
}

// Refused logs and counts a refusal that is not the whole request's answer
// (one entry of a batch).
func (g *Guard) Refused(r *http.Request, who, msg string) {
	if g.auth.Log != nil {
		g.auth.Log.Warn("refused", zap.String("reason", "forbidden"), zap.String("who", who),
			zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.String("why", msg))
	}
	g.refusals.WithLabelValues(Route(r), "forbidden").Inc()
}

// Metrics serves the guard's counter (and any collector registered with
// Registry) to any authenticated caller.
func (g *Guard) Metrics() http.Handler {
	return g.Require(promhttp.HandlerFor(g.reg, promhttp.HandlerOpts{}))
}

// Registry is where the server may register more collectors for Metrics.
func (g *Guard) Registry() prometheus.Registerer { return g.reg }
