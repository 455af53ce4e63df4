package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/readiness"
	"github.com/batonhq/baton/internal/readiness/probe"
	"github.com/batonhq/baton/location"
)

// The readiness gauges (docs/METRICS.md). They are the worker's own
// collector on the exporter's registry, not emitted through the SDK's
// handler: no SDK tags, and an account's series goes away with the
// account.
const (
	MetricAccountReady       = "baton_account_ready"
	MetricAccountsNotReady   = "baton_accounts_not_ready"
	MetricAccountsChecked    = "baton_accounts_checked"
	MetricReadinessCheckedAt = "baton_readiness_checked_at_seconds"
)

// Defaults of ReadinessOptions.
const (
	DefaultReadinessInterval    = 30 * time.Second
	DefaultReadinessMaxAccounts = 100
	readinessConcurrency        = 8
)

// ReadinessOptions configure the readiness loop.
type ReadinessOptions struct {
	// Location lists the accounts (required).
	Location *location.Client
	// Interval between two rounds (default 30s).
	Interval time.Duration
	// MaxAccounts bounds the baton_account_ready series: at most this many
	// accounts get one, those not ready first, then by name (default 100).
	// The counts cover every account.
	MaxAccounts int
	// Budget is readiness's budget (zero: its defaults).
	Budget readiness.Budget
	// HTTPClient reads the stamps (nil: the stamp client's default).
	HTTPClient *http.Client
	// Logger hears a failed round (nil: none).
	Logger *zap.Logger
}

// Readiness checks every account the location service lists, every
// Interval, with package readiness's verdict (the one `baton status`
// prints), and exports the result as gauges.
type Readiness struct {
	o                                   ReadinessOptions
	ready, notReady, checked, checkedAt *prometheus.Desc

	mu   sync.Mutex
	last *readinessRound // nil until a round completed
}

// readinessRound is what one round found.
type readinessRound struct {
	at       time.Time
	verdicts []readiness.Verdict // every account checked
}

// NewReadiness builds the loop and registers its gauges with reg.
func NewReadiness(reg prometheus.Registerer, o ReadinessOptions) (*Readiness, error) {
	if o.Location == nil {
		return nil, errors.New("readiness: no location client")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultReadinessInterval
	}
	if o.MaxAccounts <= 0 {
		o.MaxAccounts = DefaultReadinessMaxAccounts
	}
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	r := &Readiness{
		o: o,
		ready: prometheus.NewDesc(MetricAccountReady,
			"1 if the account is ready to fail over now, 0 if not (baton status ACCOUNT says why); "+
				"for at most --readiness-max-accounts accounts, those not ready first.",
			[]string{"account"}, nil),
		notReady: prometheus.NewDesc(MetricAccountsNotReady,
			"Accounts not ready to fail over at the last check.", nil, nil),
		checked: prometheus.NewDesc(MetricAccountsChecked,
			"Accounts checked at the last check (every account the location service lists).", nil, nil),
		checkedAt: prometheus.NewDesc(MetricReadinessCheckedAt,
			"Unix time the last readiness check completed.", nil, nil),
	}
	if err := reg.Register(r); err != nil {
		return nil, fmt.Errorf("register the readiness gauges: %w", err)
	}
	return r, nil
}

// Run checks now, then every Interval, until ctx is done.
func (r *Readiness) Run(ctx context.Context) {
	t := time.NewTicker(r.o.Interval)
	defer t.Stop()
	for {
		if err := r.CheckOnce(ctx); err != nil && ctx.Err() == nil {
			r.o.Logger.Warn("readiness check failed; the gauges keep the last round's values", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// CheckOnce runs one round: it lists the accounts and checks each, a few
// at a time, each within the interval. Only a failed list is an error;
// an account whose stamps do not answer is not ready.
func (r *Readiness) CheckOnce(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, r.o.Interval)
	defer cancel()
	accounts, err := r.o.Location.Accounts(lctx)
	if err != nil {
		return fmt.Errorf("list the accounts: %w", err)
	}
	verdicts := make([]readiness.Verdict, len(accounts))
	sem := make(chan struct{}, readinessConcurrency)
	var wg sync.WaitGroup
	for i, a := range accounts {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			actx, cancel := context.WithTimeout(ctx, r.o.Interval)
			defer cancel()
			verdicts[i] = readiness.Evaluate(probe.Read(actx, a, r.o.HTTPClient), r.o.Budget)
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	r.mu.Lock()
	r.last = &readinessRound{at: time.Now(), verdicts: verdicts}
	r.mu.Unlock()
	return nil
}

// Describe implements prometheus.Collector.
func (r *Readiness) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.ready
	ch <- r.notReady
	ch <- r.checked
	ch <- r.checkedAt
}

// Collect implements prometheus.Collector: the last round's values, none
// before the first round.
func (r *Readiness) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	last := r.last
	r.mu.Unlock()
	if last == nil {
		return
	}
	notReady := 0
	for _, v := range last.verdicts {
		if !v.Ready {
			notReady++
		}
	}
	ch <- prometheus.MustNewConstMetric(r.notReady, prometheus.GaugeValue, float64(notReady))
	ch <- prometheus.MustNewConstMetric(r.checked, prometheus.GaugeValue, float64(len(last.verdicts)))
	ch <- prometheus.MustNewConstMetric(r.checkedAt, prometheus.GaugeValue, float64(last.at.UnixNano())/1e9)
	for _, v := range exported(last.verdicts, r.o.MaxAccounts) {
		value := 0.0
		if v.Ready {
			value = 1
		}
		ch <- prometheus.MustNewConstMetric(r.ready, prometheus.GaugeValue, value, v.Account)
	}
}

// exported picks the verdicts that get a series: not ready first, then by
// account name, at most max.
func exported(verdicts []readiness.Verdict, max int) []readiness.Verdict {
	s := slices.Clone(verdicts)
	slices.SortFunc(s, func(a, b readiness.Verdict) int {
		if a.Ready != b.Ready {
			if !a.Ready {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Account, b.Account)
	})
	return s[:min(len(s), max)]
}
