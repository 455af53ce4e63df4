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
	// Unplanned tolerates an unreachable source (it is why one fails over
	// unplanned); a planned precheck refuses.
	Unplanned bool
	// MaxAckAge: replication counts as unhealthy when a partition has unsent
	// or unacknowledged writes and its secondary has not acknowledged
	// anything for longer than this. 0 means 30s.
	MaxAckAge time.Duration
	// MaxReplayBacklog: the destination counts as not healthy enough to take
	// the load when more than this many received ops wait for replay
	// (0 = no limit).
	MaxReplayBacklog uint64
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
	// SourceReachable is false when the source (or its status) could not be
	// read; only an unplanned precheck returns it so.
	SourceReachable bool
	SourceError     string
	// SendLagOps: writes on the source not yet acknowledged by the
	// destination: what would be lost if the source vanished now (the RPO).
	// ReplayLagOps: received on the destination but not yet replayed.
	SendLagOps   uint64
	ReplayLagOps uint64
	// OldestAckAge is the longest time since a lagging partition was last
	// acknowledged (the RPO in time).
	OldestAckAge time.Duration
	// LagOps[p] is partition p's send + replay lag; LagAgeMillis[p] how long
	// its secondary has not acknowledged while it lags (0 = no lag).
	LagOps       []uint64
	LagAgeMillis []int64
	// With the source unreachable, the estimate comes from what the
	// destination last heard from it: EstimatedLossOps as of KnownAsOf.
	EstimatedLossOps uint64
	KnownAsOf        time.Time
	// DestinationHealthy: the destination answers, holds every partition as
	// secondary, and its replay backlog is within MaxReplayBacklog.
	DestinationHealthy bool
	DestinationNote    string
	// AlreadyFenced counts source partitions fenced by an earlier attempt.
	AlreadyFenced int
}

// Precheck checks, without changing anything, that the account exists, its
// primary is the expected one, the destination holds its replica and is
// healthy, and (planned) that the source answers and replication is
// healthy. It reports the lag per partition and the RPO. A failed check is
// non-retryable.
func (a *Activities) Precheck(ctx context.Context, in PrecheckInput) (PrecheckResult, error) {
	defer keepAlive(ctx)()
	if in.Account == "" {
		return PrecheckResult{}, precheckFailed("no account given: name the account to fail over")
	}
	if in.To == "" {
		return PrecheckResult{}, precheckFailed("account %s: no destination stamp given: name the stamp to fail over to", in.Account)
	}
	// Answers that may go away (5xx, injected faults, a dropped connection)
	// are asked again until the budget is spent; a definitive one refuses
	// at once.
	start, until := activityStart(ctx), budget(ctx, time.Time{})
	spent := func(what string, err error) error {
		return precheckFailed("precheck of %s gave up after %s: %s kept failing with answers that may go away (last: %v); nothing was touched: retry once it answers",
			in.Account, time.Since(start).Round(100*time.Millisecond), what, err)
	}
	var acct location.Account
	err := retryUntil(ctx, until, func(ctx context.Context) (err error) {
		acct, err = a.Location.Lookup(ctx, in.Account)
		return err
	})
	if location.IsNotFound(err) {
		return PrecheckResult{}, precheckFailed("account %s is not known to the location service: check the name", in.Account)
	}
	if err != nil {
		return PrecheckResult{}, spent("the location service", err)
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
		LagOps: make([]uint64, acct.Partitions), LagAgeMillis: make([]int64, acct.Partitions),
	}

	dst := a.stamp(res.ToURL)
	var dstSt stamp.AccountStatus
	err = retryUntil(ctx, until, func(ctx context.Context) error {
		h, err := dst.Health(ctx)
		switch {
		case err != nil:
			return err
		case !h.OK:
			return fmt.Errorf("stamp %s reports unhealthy", h.Stamp)
		}
		dstSt, err = dst.Status(ctx, in.Account, nil)
		return err
	})
	if err != nil && !retryable(err) {
		return PrecheckResult{}, classify(fmt.Sprintf("precheck %s: status on destination %s", in.Account, res.To), err)
	}
	if err != nil {
		return PrecheckResult{}, spent(fmt.Sprintf("the destination stamp %s at %s", res.To, res.ToURL), err)
	}
	if len(dstSt.Partitions) != acct.Partitions {
		return PrecheckResult{}, precheckFailed("account %s: location says %d partitions, destination %s has %d: fix provisioning first",
			in.Account, acct.Partitions, res.To, len(dstSt.Partitions))
	}
	for _, dp := range dstSt.Partitions {
		if dp.Role != stamp.RoleSecondary {
			return PrecheckResult{}, precheckFailed("account %s partition %d on %s is %s, expected secondary", in.Account, dp.Partition, res.To, dp.Role)
		}
		backlog := dp.ReplayLag()
		res.ReplayLagOps += backlog
		res.LagOps[dp.Partition] = backlog
	}
	res.DestinationHealthy = true
	if in.MaxReplayBacklog > 0 && res.ReplayLagOps > in.MaxReplayBacklog {
		res.DestinationHealthy = false
		res.DestinationNote = fmt.Sprintf("%d received ops wait for replay (limit %d): the failover will wait for them", res.ReplayLagOps, in.MaxReplayBacklog)
	}

	// An unplanned failover expects a source that does not answer: a few
	// seconds tell, the budget is not spent on it.
	srcUntil := until
	if probe := time.Now().Add(unplannedSourceProbe); in.Unplanned && probe.Before(until) {
		srcUntil = probe
	}
	var srcSt stamp.AccountStatus
	srcErr := retryUntil(ctx, srcUntil, func(ctx context.Context) (err error) {
		srcSt, err = a.sourceStatus(ctx, res.FromURL, in.Account)
		return err
	})
	if srcErr != nil {
		switch {
		case !in.Unplanned && !retryable(srcErr):
			return PrecheckResult{}, classify(fmt.Sprintf("precheck %s: status on source %s", in.Account, res.From), srcErr)
		case !in.Unplanned:
			return PrecheckResult{}, classifyUnreachableSource(in.Account, res.From, srcErr)
		}
		// Unplanned: estimate the loss from what the destination last heard.
		res.SourceError = srcErr.Error()
		for _, dp := range dstSt.Partitions {
			res.EstimatedLossOps += dp.ReceiveLag()
			if dp.SourceSeenAt.After(res.KnownAsOf) {
				res.KnownAsOf = dp.SourceSeenAt
			}
		}
		return res, nil
	}
	res.SourceReachable = true
	if len(srcSt.Partitions) != acct.Partitions {
		return PrecheckResult{}, precheckFailed("account %s: location says %d partitions, source %s has %d: fix provisioning first",
			in.Account, acct.Partitions, res.From, len(srcSt.Partitions))
	}
	maxAge := in.MaxAckAge
	if maxAge <= 0 {
		maxAge = 30 * time.Second
	}
	now := time.Now()
	res.KnownAsOf = now.UTC()
	for _, sp := range srcSt.Partitions {
		switch {
		case sp.Role != stamp.RolePrimary || sp.Epoch != acct.Epoch:
			return PrecheckResult{}, precheckFailed("account %s partition %d on %s is %s at epoch %d, expected primary at epoch %d",
				in.Account, sp.Partition, res.From, sp.Role, sp.Epoch, acct.Epoch)
		case !sp.Shipping:
			return PrecheckResult{}, precheckFailed("account %s partition %d on %s does not replicate: re-protect it first", in.Account, sp.Partition, res.From)
		}
		if sp.Fenced {
			res.AlreadyFenced++
		}
		lag := sp.SendLag()
		res.SendLagOps += lag
		res.LagOps[sp.Partition] += lag
		if lag > 0 && !sp.LastAckedAt.IsZero() {
			age := now.Sub(sp.LastAckedAt)
			res.LagAgeMillis[sp.Partition] = age.Milliseconds()
			res.OldestAckAge = max(res.OldestAckAge, age)
			if age > maxAge && !in.Unplanned {
				return PrecheckResult{}, precheckFailed("account %s partition %d: replication is stuck (%d writes unacknowledged, last ack %s ago): fix replication or use an unplanned failover",
					in.Account, sp.Partition, lag, age.Round(time.Millisecond))
			}
		}
	}
	res.EstimatedLossOps = res.SendLagOps
	return res, nil
}

// sourceStatus reads the source's health and every partition's status.
func (a *Activities) sourceStatus(ctx context.Context, url, account string) (stamp.AccountStatus, error) {
	src := a.stamp(url)
	h, err := src.Health(ctx)
	if err != nil {
		return stamp.AccountStatus{}, err
	}
	if !h.OK {
		return stamp.AccountStatus{}, fmt.Errorf("stamp %s reports unhealthy", h.Stamp)
	}
	return src.Status(ctx, account, nil)
}

// unplannedSourceProbe is how long an unplanned precheck keeps asking a
// source that does not answer.
const unplannedSourceProbe = 3 * time.Second

// classifyUnreachableSource refuses a planned failover whose source does not
// answer, after the precheck budget was spent on it: refusing is the only
// way not to lose data quietly.
func classifyUnreachableSource(account, from string, err error) error {
	return precheckFailed("precheck %s: the source %s (or one of its partitions) does not answer (%v), and a planned failover needs every source partition to flush: retry when it is back, or run an unplanned failover (--mode unplanned), which may lose the unreplicated writes",
		account, from, err)
}

// activityStart is when this activity attempt started (now, outside one).
func activityStart(ctx context.Context) time.Time {
	if t := startedAt(ctx); !t.IsZero() {
		return t
	}
	return time.Now()
}
