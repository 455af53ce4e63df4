package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
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
// writes under the new epoch, then the location service points the account
// at them (a compare-and-set on the epoch), which moves live traffic. Both
// halves are idempotent, so a retry after either one is safe. Partitions
// refused with an answer that may go away are retried on their own until
// the activity's deadline.
func (a *Activities) Promote(ctx context.Context, in PromoteInput) (PromoteResult, error) {
	defer keepAlive(ctx)()
	if ss, ok, err := a.storeFor(ctx, in.Account, in.ToURL); ok || err != nil {
		if err != nil {
			return PromoteResult{}, classify("promote "+in.Account, err)
		}
		return a.promoteStore(ctx, ss, in)
	}
	dst := a.stamp(in.ToURL)
	res := PromoteResult{StartLSN: make([]uint64, in.Partitions)}
	done, failed, err := controlAll(
		ctx,
		budget(ctx, time.Time{}),
		AllPartitions(in.Partitions),
		func(ctx context.Context, chunk []int) (stamp.ControlResponse, error) {
			return dst.Promote(ctx, in.Account, stamp.ControlRequest{Partitions: chunk, Epoch: in.Epoch})
		},
	)
	what := fmt.Sprintf("promote %s at epoch %d", in.Account, in.Epoch)
	if err != nil {
		return res, classify(what, err)
	}
	if len(failed) > 0 {
		return res, stillFailing(what, failed)
	}
	for _, pr := range done {
		res.StartLSN[pr.Partition] = pr.LSN
	}
	res.Location, err = a.Location.Move(ctx, in.Account, location.MoveRequest{
		From: in.From, To: in.To, ExpectedEpoch: in.OldEpoch, Epoch: in.Epoch, Operation: in.Operation,
	})
	res.Timing = timing(ctx)
	return res, classify(fmt.Sprintf("repoint %s from %s to %s at epoch %d", in.Account, in.From, in.To, in.Epoch), err)
}
