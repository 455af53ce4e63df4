package activities

import (
	"context"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/location"
)

// PromoteInput promotes every partition on the destination and moves the
// account there.
type PromoteInput struct {
	Account    string
	From       string // stamp names, for the location service
	To         string
	ToURL      string
	Partitions int
	OldEpoch   uint64 // the epoch the account must still be at
	Epoch      uint64 // the new epoch
	// Operation names the failover (its run) in the location service's
	// record of the move.
	Operation string
	// Unplanned: a store's promote does not wait for old primaries that do
	// not answer; GivenUp are the partitions whose source was given up on
	// (not rejoined: they may have lost writes).
	Unplanned bool  `json:",omitempty"`
	GivenUp   []int `json:",omitempty"`
}

// PromoteResult gives the LSN each new primary partition continues from and
// where the location service now points.
type PromoteResult struct {
	StartLSN []uint64
	Location location.Account
	// Timing: Finished is when the location service moved the account,
	// the moment traffic moves to the new primary.
	Timing
}

// Promote is the patent's promote step: the destination partitions take
// writes (a stamp's under the new epoch), then the location service points
// the account at them (a compare-and-set on the epoch), which moves live
// traffic. Both halves are idempotent, so a retry after either one is
// safe. Partitions refused with an answer that may go away are retried on
// their own until the activity's deadline.
//
// A store whose fence is not an epoch's (driver.EpochFencer) has its old
// primaries confirmed fenced first (refence), and rejoins them after as
// replicas of the new ones, which ends their fence (the writes it held are
// refused). Rejoined, the account is protected again. A driver that cannot
// rejoin (PostgreSQL: by hand) leaves it unprotected and its old primaries
// fenced; an old primary that does not answer the rejoin fails the
// activity, to be retried (every step is idempotent), rather than leave a
// fence to lapse on a server that is still a primary.
func (a *Activities) Promote(ctx context.Context, in PromoteInput) (PromoteResult, error) {
	defer keepAlive(ctx)()
	what := fmt.Sprintf("promote %s at epoch %d", in.Account, in.Epoch)
	ss, err := a.storeFor(ctx, in.Account, in.ToURL)
	if err != nil {
		return PromoteResult{}, classify(what, err)
	}
	ss.side.Epoch = in.Epoch
	_, byEpoch := ss.st.(driver.EpochFencer)
	res := PromoteResult{StartLSN: make([]uint64, in.Partitions)}
	until := budget(ctx, time.Time{})
	all := AllPartitions(in.Partitions)
	var gone []int
	if !byEpoch {
		if gone, err = refence(ctx, ss, all, in.Unplanned); err != nil {
			return res, classify(what, err)
		}
	}
	done, failed, final := untilAll(ctx, until, all,
		func(ctx context.Context, ps []int) []driver.Result { return ss.st.Promote(ctx, ss.side, ps) })
	if final != nil {
		return res, classify(what, final)
	}
	if len(failed) > 0 {
		return res, stillFailing(what, failed)
	}
	for _, r := range done {
		res.StartLSN[r.Partition] = r.Position
	}
	res.Location, err = a.Location.Move(ctx, in.Account, location.MoveRequest{
		From: in.From, To: in.To, ExpectedEpoch: in.OldEpoch, Epoch: in.Epoch, Operation: in.Operation,
	})
	res.Timing = timing(ctx)
	if err != nil || byEpoch {
		return res, classify(fmt.Sprintf("repoint %s from %s to %s at epoch %d", in.Account, in.From, in.To, in.Epoch), err)
	}
	return res, a.rejoinOld(ctx, ss, in, without(without(all, in.GivenUp), gone), until)
}

// rejoinOld rejoins the old primaries of ps as replicas of the new ones
// and, when that is every shard, records the account protected. A driver
// that cannot rejoin (PostgreSQL: by hand), or old primaries given up on or
// gone, leave it unprotected, their fences held, until an operator rejoins
// them and runs baton reprotect.
func (a *Activities) rejoinOld(ctx context.Context, ss storeSide, in PromoteInput, ps []int, until time.Time) error {
	_, failed, final := untilAll(ctx, until, ps,
		func(ctx context.Context, ps []int) []driver.Result { return ss.st.Rejoin(ctx, ss.other, ss.side, ps) })
	switch {
	case final != nil:
		activity.GetLogger(ctx).Warn("old primaries not rejoined: the account stays unprotected, its old primaries fenced, "+
			"until they rejoin by hand and baton reprotect", "account", in.Account, "why", final.Error())
		return nil
	case len(failed) > 0:
		return stillFailing(fmt.Sprintf("rejoin the old primaries of %s", in.Account), failed)
	case len(ps) < in.Partitions:
		activity.GetLogger(ctx).Warn("old primaries given up on or gone are not rejoined: the account stays unprotected "+
			"until they rejoin by hand and baton reprotect", "account", in.Account, "rejoined", ps)
		return nil
	}
	if _, err := a.Location.Protect(ctx, in.Account, in.Epoch); err != nil {
		activity.GetLogger(ctx).Warn("rejoined, but not recorded protected: baton reprotect records it",
			"account", in.Account, "error", err)
	}
	return nil
}

// without is ps less those in drop.
func without(ps, drop []int) []int {
	out := make([]int, 0, len(ps))
	for _, p := range ps {
		if !slices.Contains(drop, p) {
			out = append(out, p)
		}
	}
	return out
}

// refence confirms, before a promote, that the old primaries take no
// writes: those still primaries are fenced again (which renews a Redis
// fence's lease), those already replicas (a promote that rejoined them) are
// safe. One that does not answer holds a planned promote: it may have come
// back without its fence. Unplanned, it is gone (given up on, or down
// since): it is answered in gone, and the promote goes on; one that came
// back is fenced like the others.
func refence(ctx context.Context, ss storeSide, ps []int, unplanned bool) (gone []int, err error) {
	var still []int
	for _, p := range ss.st.Positions(ctx, ss.other, ps) {
		switch {
		case p.Err != nil && unplanned:
			gone = append(gone, p.Partition)
		case p.Err != nil:
			return nil, fmt.Errorf("the old primary of shard %d (%s) does not answer, so its fence is not confirmed: %w",
				p.Partition, ss.other.Endpoint(p.Partition), p.Err)
		case p.Primary:
			still = append(still, p.Partition)
		}
	}
	for _, r := range ss.st.Fence(ctx, ss.other, still, fenceLease) {
		if r.Err != nil {
			return nil, refusal(r.Partition, r.Err)
		}
	}
	return gone, nil
}
