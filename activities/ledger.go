package activities

import (
	"context"
	"math"
	"time"

	"github.com/batonhq/baton/driver"
)

// LossLedgerInput asks the destination what it knows was written on the
// source of the given partitions but never reached it.
type LossLedgerInput struct {
	Account    string
	ToURL      string
	Partitions []int
	// GivenUpAt is when the failover gave the partitions up: the end of
	// the window in which the source may have acknowledged writes nobody
	// else saw (zero: no estimate).
	GivenUpAt time.Time
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
	// KnownAsOf is the last contact with the source (its clock when it
	// last reported): the ledger is exact up to it.
	KnownAsOf time.Time
	// SourceWriteRate (ops/s) is how fast the source wrote just before the
	// last contact; UnseenOpsEstimate = that rate x (GivenUpAt -
	// KnownAsOf): an estimate, not a count, of what it may have
	// acknowledged after the last contact.
	SourceWriteRate   float64
	UnseenOpsEstimate uint64
	// A store's account (Unit set: its positions' unit, PostgreSQL's WAL
	// bytes) counts no ops: FromLSN is where its replica's replay stopped
	// (From, as the store writes it), ToLSN what it received; what the old
	// primary wrote past that is in its own log only, and Pending says
	// where to read it.
	Unit    string `json:",omitempty"`
	From    string `json:",omitempty"`
	Pending string `json:",omitempty"`
}

// LossLedger reads the destination's view (replayed LSN, and the source's
// last reported LastWritten) for partitions whose source was given up on.
// Read only: idempotent.
func (a *Activities) LossLedger(ctx context.Context, in LossLedgerInput) ([]LossEntry, error) {
	if len(in.Partitions) == 0 {
		return nil, nil
	}
	what := "loss ledger of " + in.Account
	ss, err := a.storeFor(ctx, in.Account, in.ToURL)
	if err != nil {
		return nil, classify(what, err)
	}
	lr, ok := ss.st.(driver.LossReader)
	if !ok {
		return nil, classify(what, driver.Finalf("the %s driver reads no losses", ss.st.Kind()))
	}
	out := make([]LossEntry, 0, len(in.Partitions))
	for _, l := range lr.Losses(ctx, ss.side, in.Partitions) {
		if l.Err != nil {
			return nil, classify(what, refusal(l.Partition, l.Err))
		}
		out = append(out, lossEntry(l, in.GivenUpAt))
	}
	return out, nil
}

// lossEntry is one partition's ledger entry. A store whose positions
// count writes (the stamp) counts the writes its replica knows it missed,
// (Replayed, Written], and estimates those it never heard of from the
// source's write rate over (LastHeard, givenUpAt]. Another's (PostgreSQL's
// WAL bytes) is where its replica's replay stopped and what it received:
// what the old primary wrote past that is in its own log only (Pending).
func lossEntry(l driver.Loss, givenUpAt time.Time) LossEntry {
	if l.Unit != driver.UnitOps {
		return LossEntry{Partition: l.Partition, FromLSN: l.Replayed, ToLSN: l.Received, KnownAsOf: l.LastHeard,
			Unit: l.Unit, From: l.FromText, Pending: l.Pending}
	}
	e := LossEntry{Partition: l.Partition, FromLSN: l.Replayed + 1, ToLSN: l.Written, KnownAsOf: l.LastHeard,
		SourceWriteRate: l.WriteRate}
	if gap := givenUpAt.Sub(l.LastHeard); !givenUpAt.IsZero() && !l.LastHeard.IsZero() && gap > 0 {
		e.UnseenOpsEstimate = uint64(math.Round(l.WriteRate * gap.Seconds()))
	}
	if l.Written > l.Replayed {
		e.Ops = l.Written - l.Replayed
	} else {
		e.ToLSN = l.Replayed
	}
	return e
}
