// Package activities holds every side effect of a failover: the calls to
// the location service, and to each account's store. A failover's steps
// (catch-up, fence, flush-send, flush-replay, promote, unfence, the loss
// ledger) go through the store's driver (package driver: the reference
// stamp's, Redis's, PostgreSQL's); the stamp's precheck, reprotect and
// drills read more of it than the contract carries and call its client.
// Activities are methods on Activities,
// which holds the clients; the worker builds it once and registers the
// pointer, and workflows call the methods through a nil *Activities so the
// names are checked by the compiler.
//
// Every activity is idempotent: the stamp's control calls and the location
// service's compare-and-set answer a repeat with the same result, so a retry
// or a replayed history does the work once.
package activities

import (
	"context"
	"crypto/tls"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/stampdriver"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// Activity type names. They are the method names (the SDK registers a struct's
// methods under their own names) and they are part of every recorded history:
// never rename one without a versioned workflow change.
const (
	NamePrecheck    = "Precheck"
	NameCatchUp     = "CatchUp"
	NameFence       = "Fence"
	NameFlushSend   = "FlushSend"
	NameFlushReplay = "FlushReplay"
	NamePromote     = "Promote"
	NameUnfence     = "Unfence"
	NameLossLedger  = "LossLedger"
)

// Activities holds the clients every activity needs.
type Activities struct {
	// Location resolves accounts and stamps and moves an account on promote.
	Location *location.Client
	// HTTP is shared by every stamp client.
	HTTP *http.Client
	// ActionHTTP calls applications' endpoints for a plan's HTTP steps
	// (nil: a plain client with the system's CAs).
	ActionHTTP *http.Client
	// Temporal, when set, lets a reprotect check that no failover of the
	// account runs and read what the last one reported.
	Temporal client.Client
	// Stores drive the accounts of other kinds than the stamps', by kind
	// (an account of a kind without one is refused).
	Stores map[driver.Kind]driver.Store

	mu     sync.Mutex
	stamps map[string]*stamp.Client
	// stampd is the reference stamp's driver over those clients.
	stampOnce sync.Once
	stampd    *stampdriver.Driver
}

// New returns the activities for the location service at locationURL,
// calling it and the stamps with tlsCfg (the worker's client certificate;
// nil: plaintext, for servers started with --insecure).
func New(locationURL string, tlsCfg *tls.Config) *Activities {
	hc := stamp.HTTPClient(tlsCfg)
	return &Activities{
		Location: location.NewClient(locationURL, hc),
		HTTP:     hc,
		stamps:   map[string]*stamp.Client{},
	}
}

// stamp returns the (cached) client for the stamp at base.
func (a *Activities) stamp(base string) *stamp.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.stamps == nil {
		a.stamps = map[string]*stamp.Client{}
	}
	c, ok := a.stamps[base]
	if !ok {
		c = stamp.NewClient(base, a.HTTP)
		a.stamps[base] = c
	}
	return c
}

// keepAlive heartbeats every second until stop is called, so that the
// server notices a dead worker within the activity's heartbeat timeout
// instead of its (longer) start-to-close timeout, and a slow call is not
// mistaken for one. Outside an activity (a plain unit test) it does nothing.
func keepAlive(ctx context.Context) (stop func()) {
	if !activity.IsActivity(ctx) {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				activity.RecordHeartbeat(ctx)
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// AllPartitions returns 0..n-1.
func AllPartitions(n int) []int {
	ps := make([]int, n)
	for i := range ps {
		ps[i] = i
	}
	return ps
}
