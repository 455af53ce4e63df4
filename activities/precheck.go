package activities

import (
	"context"
	"fmt"
	"time"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// PrecheckInput asks whether Account can fail over to To.
type PrecheckInput struct {
	Account string
	// From is the expected current primary; "" accepts whatever the location
	// service says.
	From string
	To   string
	// MaxAckAge: replication counts as unhealthy when a partition has unsent
	// or unacknowledged writes and its secondary has not acknowledged
	// anything for longer than this. 0 means 30s.
	MaxAckAge time.Duration
}

// PrecheckResult is what the failover needs to know before it touches
// anything, plus the RPO picture at that moment.
type PrecheckResult struct {
	Account    string
	Partitions int
	From       string
	FromURL    string
	To         string
	ToURL      string
	Epoch      uint64
	// SendLagOps: writes on the source not yet acknowledged by the destination
	// (lost if the source vanished now). ReplayLagOps: received on the
	// destination but not yet replayed.
	SendLagOps   uint64
	ReplayLagOps uint64
	// OldestAckAge is the longest time since a lagging partition was last
	// acknowledged.
	OldestAckAge time.Duration
	// AlreadyFenced counts source partitions fenced by an earlier attempt.
	AlreadyFenced int
}

// Precheck checks, without changing anything, that both stamps answer, the
// account exists, its primary is the expected one, the destination holds its
// replica, and replication is healthy. A failed check is non-retryable.
func (a *Activities) Precheck(ctx context.Context, in PrecheckInput) (PrecheckResult, error) {
	if in.Account == "" {
		return PrecheckResult{}, precheckFailed("no account given: name the account to fail over")
	}
	if in.To == "" {
		return PrecheckResult{}, precheckFailed("account %s: no destination stamp given: name the stamp to fail over to", in.Account)
	}
	acct, err := a.Location.Lookup(ctx, in.Account)
	if location.IsNotFound(err) {
		return PrecheckResult{}, precheckFailed("account %s is not known to the location service: check the name", in.Account)
	}
	if err != nil {
		return PrecheckResult{}, fmt.Errorf("precheck %s: look up the account: %w", in.Account, err)
	}
	if in.From != "" && acct.Primary != in.From {
		return PrecheckResult{}, precheckFailed("account %s: its primary is %s (epoch %d), not the expected %s: re-check where it is (baton status) and retry",
			in.Account, acct.Primary, acct.Epoch, in.From)
	}
	if in.To == acct.Primary {
		return PrecheckResult{}, precheckFailed("account %s is already primary on %s: nothing to fail over", in.Account, in.To)
	}
	if in.To != acct.Secondary {
		return PrecheckResult{}, precheckFailed("account %s replicates to %s, not %s: a failover can only go to the stamp that holds the replica",
			in.Account, acct.Secondary, in.To)
	}
	res := PrecheckResult{
		Account: in.Account, Partitions: acct.Partitions, Epoch: acct.Epoch,
		From: acct.Primary, FromURL: acct.PrimaryURL, To: acct.Secondary, ToURL: acct.SecondaryURL,
	}
	src, dst := a.stamp(res.FromURL), a.stamp(res.ToURL)
	for _, s := range []struct {
		name string
		c    *stamp.Client
	}{{res.From, src}, {res.To, dst}} {
		h, err := s.c.Health(ctx)
		if err != nil {
			return PrecheckResult{}, fmt.Errorf("precheck %s: stamp %s at %s is not reachable: %w", in.Account, s.name, s.c.Base(), err)
		}
		if !h.OK {
			return PrecheckResult{}, fmt.Errorf("precheck %s: stamp %s reports unhealthy", in.Account, s.name)
		}
	}
	srcSt, err := src.Status(ctx, in.Account, nil)
	if err != nil {
		return PrecheckResult{}, classify(fmt.Sprintf("precheck %s: status on source %s", in.Account, res.From), err)
	}
	dstSt, err := dst.Status(ctx, in.Account, nil)
	if err != nil {
		return PrecheckResult{}, classify(fmt.Sprintf("precheck %s: status on destination %s", in.Account, res.To), err)
	}
	if len(srcSt.Partitions) != acct.Partitions || len(dstSt.Partitions) != acct.Partitions {
		return PrecheckResult{}, precheckFailed("account %s: location says %d partitions, source has %d, destination %d: the stamps disagree, fix provisioning first",
			in.Account, acct.Partitions, len(srcSt.Partitions), len(dstSt.Partitions))
	}
	maxAge := in.MaxAckAge
	if maxAge <= 0 {
		maxAge = 30 * time.Second
	}
	now := time.Now()
	for i, sp := range srcSt.Partitions {
		dp := dstSt.Partitions[i]
		switch {
		case sp.Role != stamp.RolePrimary || sp.Epoch != acct.Epoch:
			return PrecheckResult{}, precheckFailed("account %s partition %d on %s is %s at epoch %d, expected primary at epoch %d",
				in.Account, sp.Partition, res.From, sp.Role, sp.Epoch, acct.Epoch)
		case dp.Role != stamp.RoleSecondary:
			return PrecheckResult{}, precheckFailed("account %s partition %d on %s is %s, expected secondary", in.Account, dp.Partition, res.To, dp.Role)
		case !sp.Shipping:
			return PrecheckResult{}, precheckFailed("account %s partition %d on %s does not replicate: re-protect it first", in.Account, sp.Partition, res.From)
		}
		if sp.Fenced {
			res.AlreadyFenced++
		}
		lag := sp.LastWritten - min(sp.LastAcked, sp.LastWritten)
		res.SendLagOps += lag
		res.ReplayLagOps += dp.LastReceived - min(dp.LastReplayed, dp.LastReceived)
		if lag > 0 && !sp.LastAckedAt.IsZero() {
			age := now.Sub(sp.LastAckedAt)
			res.OldestAckAge = max(res.OldestAckAge, age)
			if age > maxAge {
				return PrecheckResult{}, precheckFailed("account %s partition %d: replication is stuck (%d writes unacknowledged, last ack %s ago): fix replication or use an unplanned failover",
					in.Account, sp.Partition, lag, age.Round(time.Millisecond))
			}
		}
	}
	return res, nil
}
