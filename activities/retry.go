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

// outOfTime is the error of a step that stops with partitions still
// failing because its own time ran out, not theirs: its deadline passed or
// it was cancelled, or it is a local attempt (the fast path's), whose
// budget of a second is its own, not the step's. What it did not do is for
// another attempt (a local one goes on as an activity, with the step's
// whole bounds), not failures of the store to report: a best-effort fence
// would roll the failover back, a flush would set partitions aside.
func outOfTime(ctx context.Context, what string, failing int) error {
	switch {
	case failing == 0:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: out of time with %d partitions still to do: %w", what, failing, ctx.Err())
	case localAttempt(ctx):
		return fmt.Errorf("%s: out of time with %d partitions still to do in the local attempt: going on as an activity",
			what, failing)
	}
	return nil
}

// localAttempt: ctx is a local activity's (the fast path's first attempt
// of a step).
func localAttempt(ctx context.Context) bool {
	return activity.IsActivity(ctx) && activity.GetInfo(ctx).IsLocalActivity
}
