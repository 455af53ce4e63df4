// Package probe reads what package readiness decides on: an account's
// status on its primary, and its secondary's health and status. The
// `baton status` command and the worker's readiness loop read through it.
package probe

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/batonhq/baton/internal/readiness"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// Read reads account a as the location service describes it: its status on
// the primary, the secondary's health and the account's status there, at
// once. A read that fails is recorded in the Input (it is a reason not to be
// ready), never returned. hc nil is http.DefaultClient's settings.
func Read(ctx context.Context, a location.Account, hc *http.Client) readiness.Input {
	in := readiness.Input{Account: a, Now: time.Now()}
	if a.Kind != "" {
		// Not asked: the stamps' statuses are what readiness decides on.
		err := fmt.Errorf("%s account: its shards' readiness is not checked yet (docs/STORES.md)", a.Kind)
		in.PrimaryErr, in.SecondaryHealthErr, in.SecondaryErr = err, err, err
		return in
	}
	primary, secondary := stamp.NewClient(a.PrimaryURL, hc), stamp.NewClient(a.SecondaryURL, hc)
	var wg sync.WaitGroup
	wg.Go(func() { in.Primary, in.PrimaryErr = primary.Status(ctx, a.Account, nil) })
	wg.Go(func() { in.SecondaryHealth, in.SecondaryHealthErr = secondary.Health(ctx) })
	wg.Go(func() { in.Secondary, in.SecondaryErr = secondary.Status(ctx, a.Account, nil) })
	wg.Wait()
	in.Now = time.Now()
	return in
}

// Check looks account up in the location service, reads it and decides.
// The error is the look-up's (location.IsNotFound tells an unknown
// account); what the stamps answer is in the verdict.
func Check(ctx context.Context, loc *location.Client, account string, b readiness.Budget,
	hc *http.Client) (readiness.Input, readiness.Verdict, error) {
	a, err := loc.Lookup(ctx, account)
	if err != nil {
		return readiness.Input{}, readiness.Verdict{}, err
	}
	in := Read(ctx, a, hc)
	return in, readiness.Evaluate(in, b), nil
}
