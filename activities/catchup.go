package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/batonhq/baton/internal/clock"
)

// CatchUpInput lets replication drain while writes still flow, so that the
// fenced window that follows is short (Vitess's planned reparent does the
// same before it demotes the primary).
type CatchUpInput struct {
	Account    string
	FromURL    string
	ToURL      string
	Partitions int
	// MaxLagOps: caught up once unacknowledged + unreplayed ops, summed over
	// all partitions, are at most this.
	MaxLagOps uint64
	// Timeout: give up waiting (and fence anyway) after this long.
	Timeout time.Duration
	// Poll is the pause between status polls; 0 means 100ms.
	Poll time.Duration
}

// CatchUpResult reports how far replication got.
type CatchUpResult struct {
	CaughtUp     bool
	SendLagOps   uint64
	ReplayLagOps uint64
	Polls        int
	// LastError is the last status poll that failed with an answer that
	// may go away (those are polled through, not fatal).
	LastError string
}

// CatchUp polls both sides until the lag is at most MaxLagOps or Timeout
// passes. A poll that fails with an answer that may go away is polled
// through; a final refusal fails it. It changes nothing, so it is trivially
// idempotent.
func (a *Activities) CatchUp(ctx context.Context, in CatchUpInput) (CatchUpResult, error) {
	defer keepAlive(ctx)()
	poll := in.Poll
	if poll <= 0 {
		poll = 100 * time.Millisecond
	}
	src, err := a.storeFor(ctx, in.Account, in.FromURL)
	if err != nil {
		return CatchUpResult{}, classify("catch up "+in.Account, err)
	}
	dst, err := a.storeFor(ctx, in.Account, in.ToURL)
	if err != nil {
		return CatchUpResult{}, classify("catch up "+in.Account, err)
	}
	measure := func(ctx context.Context) (uint64, uint64, error) {
		return storeLag(ctx, src.st, src.side, dst.side, in.Partitions)
	}
	end := time.Now().Add(in.Timeout)
	deadline := budget(ctx, end)
	var res CatchUpResult
	var settle settling
	for {
		res.Polls++
		send, replay, err := measure(ctx)
		switch {
		case err != nil && !retryable(err):
			return res, classify(fmt.Sprintf("catch up %s", in.Account), err)
		case err != nil:
			res.LastError = err.Error()
		default:
			res.SendLagOps, res.ReplayLagOps = send, replay
			if send+replay <= in.MaxLagOps && settle.done(send+replay, uint64(in.Partitions)) {
				res.CaughtUp = true
				return res, nil
			}
		}
		activity.RecordHeartbeat(ctx, res)
		switch {
		case time.Now().Before(deadline):
		case deadline.Before(end) && localAttempt(ctx):
			// The local attempt's budget, not the catch-up's timeout:
			// fencing now would fence the lag it was to drain.
			return res, fmt.Errorf("catch up %s: %d ops behind at the end of the local attempt: going on as an activity",
				in.Account, res.SendLagOps+res.ReplayLagOps)
		default:
			return res, nil
		}
		if !clock.Sleep(ctx, poll) {
			return res, ctx.Err()
		}
	}
}

// settling decides when a lag within MaxLagOps is as low as it will get:
// about one op in flight per partition, or no lower for settlePolls polls
// in a row. Fencing then rather than at MaxLagOps leaves less to flush
// inside the fenced window, at the cost of a few more polls while writes
// still flow.
type settling struct {
	best  uint64
	flat  int
	begun bool
}

// settlePolls is how many polls without a lower lag count as settled.
const settlePolls = 3

func (s *settling) done(lag, partitions uint64) bool {
	switch {
	case lag <= partitions:
		return true
	case !s.begun || lag < s.best:
		s.best, s.flat, s.begun = lag, 0, true
		return false
	}
	s.flat++
	return s.flat >= settlePolls
}
