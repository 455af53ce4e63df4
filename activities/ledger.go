package activities

import (
	"context"
	"fmt"
	"time"
)

// LossLedgerInput asks the destination what it knows was written on the
// source of the given partitions but never reached it.
type LossLedgerInput struct {
	Account    string
	ToURL      string
	Partitions []int
}

// LossEntry is one partition's known loss: LSNs FromLSN..ToLSN were written
// on the source and never replayed on the destination. KnownAsOf says how
// fresh that knowledge is: writes the source acknowledged after it are not
// known to anyone but the source.
type LossEntry struct {
	Partition int
	FromLSN   uint64 // first lost LSN (replayed + 1)
	ToLSN     uint64 // last LSN the source reported written
	Ops       uint64 // ToLSN - FromLSN + 1, or 0
	KnownAsOf time.Time
}

// LossLedger reads the destination's view (replayed LSN, and the source's
// last reported LastWritten) for partitions whose source was given up on.
// Read only: idempotent.
func (a *Activities) LossLedger(ctx context.Context, in LossLedgerInput) ([]LossEntry, error) {
	if len(in.Partitions) == 0 {
		return nil, nil
	}
	st, err := a.stamp(in.ToURL).Status(ctx, in.Account, in.Partitions)
	if err != nil {
		return nil, classify(fmt.Sprintf("loss ledger of %s: status on destination", in.Account), err)
	}
	out := make([]LossEntry, 0, len(st.Partitions))
	for _, p := range st.Partitions {
		e := LossEntry{Partition: p.Partition, FromLSN: p.LastReplayed + 1, ToLSN: p.SourceWritten, KnownAsOf: p.SourceSeenAt}
		if p.SourceWritten > p.LastReplayed {
			e.Ops = p.SourceWritten - p.LastReplayed
		} else {
			e.ToLSN = p.LastReplayed
		}
		out = append(out, e)
	}
	return out, nil
}
