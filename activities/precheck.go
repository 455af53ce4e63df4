package activities

import (
	"context"
	"errors"
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
	// Operation names the failover asking (its run): if the account was
	// already moved by it, or its promote began, the precheck says so
	// (Resume) instead of refusing: the failover lost its record of those
	// steps with a worker and picks up where they left off.
	Operation string
}

// Resume says how far an earlier attempt of the same failover (Operation)
// got before its record was lost.
type Resume string

// Where a failover picks up.
const (
	// ResumeNone: from the start.
	ResumeNone Resume = ""
	// ResumePromote: the destination holds partitions promoted to the new
	// epoch and the source is fenced: finish the promote.
	ResumePromote Resume = "promote"
	// ResumeMoved: the location service moved the account for this
	// operation: the failover is done.
	ResumeMoved Resume = "moved"
)

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
	// Resume: an earlier attempt of this failover got this far (see
	// PrecheckInput.Operation); PromotedAhead counts destination
	// partitions already promoted to the new epoch.
	Resume        Resume
	PromotedAhead int
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
		return PrecheckResult{}, precheckFailed(
			"account %s: no destination stamp given: name the stamp to fail over to",
			in.Account,
		)
	}
	pc := &precheck{a: a, in: in, start: activityStart(ctx), until: budget(ctx, time.Time{}),
		local: localAttempt(ctx)}
	if err := pc.lookUp(ctx); errors.Is(err, errResumed) {
		return pc.res, nil
	} else if err != nil {
		return PrecheckResult{}, err
	}
	if pc.acct.Kind != "" {
		if err := pc.precheckStore(ctx); err != nil {
			return PrecheckResult{}, err
		}
		return pc.res, pc.checkResume()
	}
	if err := pc.checkDestination(ctx); err != nil {
		return PrecheckResult{}, err
	}
	if err := pc.checkSource(ctx); err != nil {
		return PrecheckResult{}, err
	}
	if err := pc.checkResume(); err != nil {
		return PrecheckResult{}, err
	}
	return pc.res, nil
}

// errResumed stops the precheck early: the failover is further along than
// its record says.
var errResumed = errors.New("resumed")

// checkResume: destination partitions already promoted to the new epoch
// (a promote that began, then lost its worker or failed) are accepted only
// with every reachable source partition fenced, and the failover picks up
// at promote; a source that still takes writes refuses.
func (pc *precheck) checkResume() error {
	res := &pc.res
	if res.PromotedAhead == 0 {
		return nil
	}
	if res.SourceReachable && res.AlreadyFenced < res.Partitions {
		return precheckFailed("account %s: %d partitions on %s are already primary at epoch %d, but %d partitions of %s are "+
			"not fenced: a promote began without a fenced source; check both stamps (baton status %s) before anything else",
			pc.in.Account, res.PromotedAhead, res.To, res.Epoch+1, res.Partitions-res.AlreadyFenced, res.From, pc.in.Account)
	}
	res.Resume = ResumePromote
	return nil
}

// precheck is one Precheck: what it asked and what it found. Answers that
// may go away (5xx, injected faults, a dropped connection) are asked again
// until the budget (until) is spent; a definitive one refuses at once.
type precheck struct {
	a     *Activities
	in    PrecheckInput
	start time.Time
	until time.Time
	// local: a local attempt (the fast path's), whose budget is its own,
	// not the precheck's.
	local bool
	acct  location.Account
	dst   stamp.AccountStatus
	res   PrecheckResult
}

// spent refuses once what kept failing has used up the budget. A local
// attempt's budget is not the precheck's: spent there, it fails to be
// tried again as an activity with the whole budget, refusing nothing.
func (pc *precheck) spent(what string, err error) error {
	if pc.local {
		return fmt.Errorf("precheck of %s: %s kept failing for the local attempt's %s (last: %v): going on as an activity",
			pc.in.Account, what, time.Since(pc.start).Round(100*time.Millisecond), err)
	}
	return precheckFailed(
		"precheck of %s gave up after %s: %s kept failing with answers that may go away (last: %v); nothing was touched: retry once it answers",
		pc.in.Account,
		time.Since(pc.start).Round(100*time.Millisecond),
		what,
		err,
	)
}

// lookUp finds the account in the location service and checks the request
// against it: the expected primary, and a destination that holds the
// replica.
func (pc *precheck) lookUp(ctx context.Context) error {
	in := pc.in
	err := retryUntil(ctx, pc.until, func(ctx context.Context) (err error) {
		pc.acct, err = pc.a.Location.Lookup(ctx, in.Account)
		return err
	})
	acct := pc.acct
	switch {
	case err == nil && in.Operation != "" && acct.MovedBy == in.Operation && acct.Primary == in.To:
		// This failover moved it: its worker was lost before it recorded so.
		pc.res = PrecheckResult{
			Account: in.Account, Partitions: acct.Partitions, Epoch: acct.Epoch - 1, From: acct.Secondary,
			FromURL: acct.SecondaryURL, To: acct.Primary, ToURL: acct.PrimaryURL, Resume: ResumeMoved,
			LagOps: make([]uint64, acct.Partitions), LagAgeMillis: make([]int64, acct.Partitions),
		}
		return errResumed
	case location.IsNotFound(err):
		return precheckFailed("account %s is not known to the location service: check the name", in.Account)
	case err != nil:
		return pc.spent("the location service", err)
	case in.From != "" && acct.Primary != in.From:
		return precheckFailed(
			"account %s: its primary is %s (epoch %d), not the expected %s: re-check where it is (baton status) and retry",
			in.Account,
			acct.Primary,
			acct.Epoch,
			in.From,
		)
	case in.To == acct.Primary:
		return precheckFailed("account %s is already primary on %s: nothing to fail over", in.Account, in.To)
	case acct.Unprotected:
		return precheckFailed("account %s failed over to %s at epoch %d and %s does not replicate it yet: reprotect it first (baton reprotect %s)",
			in.Account, acct.Primary, acct.Epoch, acct.Secondary, in.Account)
	case in.To != acct.Secondary:
		return precheckFailed(
			"account %s replicates to %s, not %s: a failover can only go to the stamp that holds the replica",
			in.Account,
			acct.Secondary,
			in.To,
		)
	}
	pc.res = PrecheckResult{
		Account: in.Account, Partitions: acct.Partitions, Epoch: acct.Epoch,
		From: acct.Primary, FromURL: acct.PrimaryURL, To: acct.Secondary, ToURL: acct.SecondaryURL,
		LagOps: make([]uint64, acct.Partitions), LagAgeMillis: make([]int64, acct.Partitions),
	}
	return nil
}

// checkDestination checks the destination answers healthy and holds every
// partition as a secondary, and records its replay backlog.
func (pc *precheck) checkDestination(ctx context.Context) error {
	in, res := pc.in, &pc.res
	dst := pc.a.stamp(res.ToURL)
	err := retryUntil(ctx, pc.until, func(ctx context.Context) error {
		h, err := dst.Health(ctx)
		switch {
		case err != nil:
			return err
		case !h.OK:
			return fmt.Errorf("stamp %s reports unhealthy", h.Stamp)
		}
		pc.dst, err = dst.Status(ctx, in.Account, nil)
		return err
	})
	switch {
	case err != nil && !retryable(err):
		return classify(fmt.Sprintf("precheck %s: status on destination %s", in.Account, res.To), err)
	case err != nil:
		return pc.spent(fmt.Sprintf("the destination stamp %s at %s", res.To, res.ToURL), err)
	case len(pc.dst.Partitions) != res.Partitions:
		return precheckFailed("account %s: location says %d partitions, destination %s has %d: fix provisioning first",
			in.Account, res.Partitions, res.To, len(pc.dst.Partitions))
	}
	for _, dp := range pc.dst.Partitions {
		if dp.Role == stamp.RolePrimary && dp.Epoch == pc.acct.Epoch+1 {
			// Promoted to the new epoch by an attempt that did not finish:
			// checkResume decides.
			res.PromotedAhead++
			continue
		}
		if dp.Role != stamp.RoleSecondary {
			return precheckFailed(
				"account %s partition %d on %s is %s, expected secondary",
				in.Account,
				dp.Partition,
				res.To,
				dp.Role,
			)
		}
		backlog := dp.ReplayLag()
		res.ReplayLagOps += backlog
		res.LagOps[dp.Partition] = backlog
	}
	res.DestinationHealthy = true
	if in.MaxReplayBacklog > 0 && res.ReplayLagOps > in.MaxReplayBacklog {
		res.DestinationHealthy = false
		res.DestinationNote = fmt.Sprintf("%d received ops wait for replay (limit %d): the failover will wait for them",
			res.ReplayLagOps, in.MaxReplayBacklog)
	}
	return nil
}

// checkSource reads the source. Planned, it must answer, every partition
// must be the replicating primary at the account's epoch, and replication
// must not be stuck; the lag is the RPO. Unplanned, a source that does not
// answer is expected: the loss is estimated from what the destination last
// heard of it.
func (pc *precheck) checkSource(ctx context.Context) error {
	in, res := pc.in, &pc.res
	// An unplanned failover does not spend the budget on a source it
	// expects to be down: a few seconds tell.
	until := pc.until
	if probe := time.Now().Add(unplannedSourceProbe); in.Unplanned && probe.Before(until) {
		until = probe
	}
	var src stamp.AccountStatus
	err := retryUntil(ctx, until, func(ctx context.Context) (err error) {
		src, err = pc.a.sourceStatus(ctx, res.FromURL, in.Account)
		return err
	})
	switch {
	case err != nil && !in.Unplanned && !retryable(err):
		return classify(fmt.Sprintf("precheck %s: status on source %s", in.Account, res.From), err)
	case err != nil && !in.Unplanned && pc.local:
		return pc.spent(fmt.Sprintf("the source stamp %s at %s", res.From, res.FromURL), err)
	case err != nil && !in.Unplanned:
		return classifyUnreachableSource(in.Account, res.From, err)
	case err != nil:
		pc.estimateFromDestination(err)
		return nil
	case len(src.Partitions) != res.Partitions:
		return precheckFailed("account %s: location says %d partitions, source %s has %d: fix provisioning first",
			in.Account, res.Partitions, res.From, len(src.Partitions))
	}
	res.SourceReachable = true
	return pc.measureLag(src)
}

// estimateFromDestination (unplanned, source unreachable) estimates the
// loss from the source's last reports to the destination.
func (pc *precheck) estimateFromDestination(srcErr error) {
	res := &pc.res
	res.SourceError = srcErr.Error()
	for _, dp := range pc.dst.Partitions {
		res.EstimatedLossOps += dp.ReceiveLag()
		if dp.SourceSeenAt.After(res.KnownAsOf) {
			res.KnownAsOf = dp.SourceSeenAt
		}
	}
}

// measureLag checks every source partition is the replicating primary at
// the account's epoch and records its send lag and how long it has not been
// acknowledged; planned, a lag unacknowledged for longer than MaxAckAge is
// stuck replication and refuses.
func (pc *precheck) measureLag(src stamp.AccountStatus) error {
	in, res := pc.in, &pc.res
	maxAge := in.MaxAckAge
	if maxAge <= 0 {
		maxAge = 30 * time.Second
	}
	now := time.Now()
	res.KnownAsOf = now.UTC()
	for _, sp := range src.Partitions {
		switch {
		case sp.Role != stamp.RolePrimary || sp.Epoch != pc.acct.Epoch:
			return precheckFailed("account %s partition %d on %s is %s at epoch %d, expected primary at epoch %d",
				in.Account, sp.Partition, res.From, sp.Role, sp.Epoch, pc.acct.Epoch)
		case !sp.Shipping:
			return precheckFailed(
				"account %s partition %d on %s does not replicate: re-protect it first",
				in.Account,
				sp.Partition,
				res.From,
			)
		}
		if sp.Fenced {
			res.AlreadyFenced++
		}
		lag := sp.SendLag()
		res.SendLagOps += lag
		res.LagOps[sp.Partition] += lag
		if lag == 0 || sp.LastAckedAt.IsZero() {
			continue
		}
		age := now.Sub(sp.LastAckedAt)
		res.LagAgeMillis[sp.Partition] = age.Milliseconds()
		res.OldestAckAge = max(res.OldestAckAge, age)
		if age > maxAge && !in.Unplanned {
			return precheckFailed(
				"account %s partition %d: replication is stuck (%d writes unacknowledged, last ack %s ago): fix replication or use an unplanned failover",
				in.Account,
				sp.Partition,
				lag,
				age.Round(time.Millisecond),
			)
		}
	}
	res.EstimatedLossOps = res.SendLagOps
	return nil
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
	return precheckFailed(
		"precheck %s: the source %s (or one of its partitions) does not answer (%v), and a planned failover needs every source partition to flush: retry when it is back, or run an unplanned failover (--mode unplanned), which may lose the unreplicated writes",
		account,
		from,
		err,
	)
}

// activityStart is when this activity attempt started (now, outside one).
func activityStart(ctx context.Context) time.Time {
	if t := startedAt(ctx); !t.IsZero() {
		return t
	}
	return time.Now()
}
