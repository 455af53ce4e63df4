package activities

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/internal/clock"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// retryable reports whether err may go away by itself: a connection error,
// a 5xx or 429, an injected fault. A 4xx from a stamp or the location
// service is the system refusing the request as asked (bad input, stale
// epoch, conflict): asking again cannot change it.
func retryable(err error) bool {
	if driver.IsFinal(err) {
		return false
	}
	var se *stamp.APIError
	if errors.As(err, &se) {
		return se.Retryable()
	}
	var le *location.APIError
	if errors.As(err, &le) {
		return le.Status >= 500 || le.Status == http.StatusTooManyRequests
	}
	return true
}

// Backoff between attempts inside an activity: short at first, so a blip
// costs little, and capped, so a recovered stamp is noticed soon.
const (
	firstBackoff = 100 * time.Millisecond
	maxBackoff   = 2 * time.Second
)

// retryFor is retryUntil for a call that returns a value: the value of the
// attempt that succeeded, or fn's last error.
func retryFor[T any](ctx context.Context, until time.Time, fn func(ctx context.Context) (T, error)) (T, error) {
	var v T
	err := retryUntil(ctx, until, func(ctx context.Context) (err error) {
		v, err = fn(ctx)
		return err
	})
	return v, err
}

// retryUntil calls fn until it succeeds, fails with an error retrying
// cannot change, or the next attempt would start after until (or ctx
// ends). It returns fn's last error.
func retryUntil(ctx context.Context, until time.Time, fn func(ctx context.Context) error) error {
	wait := firstBackoff
	for {
		err := fn(ctx)
		if err == nil || !retryable(err) || !time.Now().Add(wait).Before(until) {
			return err
		}
		if !clock.Sleep(ctx, wait) {
			return err
		}
		wait = min(2*wait, maxBackoff)
	}
}

// budget is when an activity must stop retrying so that it still answers
// before Temporal times it out: until (if set) or its deadline, less a
// margin to answer in. Without either it is a minute from now.
func budget(ctx context.Context, until time.Time) time.Time {
	end, ok := ctx.Deadline()
	if !ok {
		end = time.Now().Add(time.Minute)
	}
	end = end.Add(-min(2*time.Second, time.Until(end)/10))
	if !until.IsZero() && until.Before(end) {
		return until
	}
	return end
}

// Timing is when the attempt that answered started (the server's clock)
// and when it answered (the worker's): from them the workflow tells the
// time spent waiting, for a worker or a retry before the work and for a
// workflow task after it, from the time spent working.
type Timing struct {
	Started  time.Time
	Finished time.Time
}

// timing is the Timing of the activity answering now.
func timing(ctx context.Context) Timing {
	return Timing{Started: startedAt(ctx), Finished: time.Now()}
}

// record sets t to the Timing of the activity answering now: deferred by
// an activity on its named result, it stamps whatever it returns.
func (t *Timing) record(ctx context.Context) { *t = timing(ctx) }

// startedAt is when this attempt of the activity started (zero outside an
// activity): the workflow compares it with when it scheduled the activity
// to tell the time spent waiting for a worker, or for a retry after a lost
// one, from the time spent working.
func startedAt(ctx context.Context) time.Time {
	if !activity.IsActivity(ctx) {
		return time.Time{}
	}
	return activity.GetInfo(ctx).StartedTime
}

// outOfTime is the error of an activity whose own time ran out (its
// deadline passed, or it was cancelled) while partitions were still
// failing: they failed because it stopped waiting, not because of their
// store, and must not be reported as the store's failures. A local
// attempt answering just after its budget would otherwise roll a fence
// back, or set partitions aside, on its own timeout. The step is tried
// again instead.
func outOfTime(ctx context.Context, what string, failing int) error {
	if err := ctx.Err(); err != nil && failing > 0 {
		return fmt.Errorf("%s: out of time with %d partitions still to do: %w", what, failing, err)
	}
	return nil
}
