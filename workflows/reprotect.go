package workflows

import (
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// NameReprotect is the workflow type of a reprotect: stable, it is recorded
// in every history.
const NameReprotect = "Reprotect"

// ReprotectWorkflowID is the workflow ID of an account's reprotect: one at a
// time per account.
func ReprotectWorkflowID(account string) string { return "reprotect-" + account }

// ReprotectRequest starts a Reprotect.
type ReprotectRequest struct {
	Account     string
	Reason      string
	RequestedBy string
	Trigger     Trigger
	// LagBudgetOps: reprotected once the new primary's writes not yet
	// replayed on the old one are at most this, summed over partitions
	// (default max(1000, 2 x partitions)).
	LagBudgetOps uint64
	// CatchUpTimeout bounds the wait for reverse replication to catch up
	// (default 10m); past it the reprotect fails, saying how far behind the
	// replica is.
	CatchUpTimeout time.Duration
	// HeartbeatTimeout of the activities (default 10s).
	HeartbeatTimeout time.Duration
}

// Phases of a reprotect (Phase values the progress query and BatonPhase
// report, besides PhasePrecheck, PhaseDone and PhaseFailed).
const (
	PhaseDemote    Phase = "demote"
	PhaseReconcile Phase = "reconcile"
	PhaseSeed      Phase = "seed"
	PhaseProtect   Phase = "protect"
	PhaseProtected Phase = "protected"
)

// ReprotectResult is the report of a reprotect.
type ReprotectResult struct {
	Account     string
	Primary     string // the new primary, which now ships
	Secondary   string // the old primary, now its replica
	Epoch       uint64
	Partitions  int
	Outcome     Outcome // completed, refused or failed
	Reason      string
	RequestedBy string
	Trigger     Trigger
	// Alerts the webhook attached (update UpdateAlert; at most maxAlerts
	// are kept, AlertsSeen counts them all).
	Alerts     []AlertRef `json:",omitempty"`
	AlertsSeen int        `json:",omitempty"`
	// AlreadyProtected: there was nothing to do.
	AlreadyProtected bool
	// Recovered[p] counts the writes partition p of the old primary held
	// past what the new primary replayed, set aside in its recovered area
	// (baton recovered ACCOUNT lists them); RecoveredOps sums them, and
	// RestoredKeys counts the keys rewound to the new primary's values.
	Recovered    []int
	RecoveredOps uint64
	RestoredKeys int
	// What the failover's data-loss ledger said, for comparison: it only
	// knows what the old primary reported before contact was lost, so it is
	// a lower bound; LedgerMissedOps = RecoveredOps - LedgerLostOps is what
	// it could not see.
	LastFailoverMode     string
	LedgerLostOps        uint64
	LedgerUnseenEstimate uint64
	LedgerMissedOps      uint64
	// Seeded lists the partitions copied from a snapshot (the old primary
	// had lost them); SeededBytes their keys' and values' bytes.
	Seeded      []int
	SeededBytes int64
	// LagOps is what the replica still had to replay when it was declared
	// caught up.
	LagOps        uint64
	StartedAt     time.Time
	FinishedAt    time.Time
	TotalMillis   int64
	CatchUpMillis int64
}

// Error types of a reprotect that did not complete (its details carry the
// ReprotectResult).
const (
	ErrTypeReprotectRefused = "ReprotectRefused"
	ErrTypeReprotectFailed  = "ReprotectFailed"
)

// Reprotect turns an account's old primary into the replica of its new one
// after a failover, so that the account is protected again and can fail
// back: precheck, demote the old primary's partitions (what they hold past
// the new primary's start goes to the recovered area, never dropped), rewind
// the keys that diverged, seed what the old primary lost, start reverse
// replication, wait until it caught up, and mark the account protected.
// Every step is idempotent, so a retried or resumed reprotect does each once.
func Reprotect(ctx workflow.Context, req ReprotectRequest) (ReprotectResult, error) {
	r := &reprotect{req: req.withDefaults(), res: &ReprotectResult{Account: req.Account, Reason: req.Reason,
		RequestedBy: req.RequestedBy, StartedAt: workflow.Now(ctx)}}
	r.res.Trigger = r.req.Trigger
	if err := workflow.SetQueryHandler(ctx, QueryProgress, func() (Phase, error) { return r.phase, nil }); err != nil {
		return *r.res, err
	}
	// Registered before the first command, so that an update-with-start's
	// alert is taken in the first workflow task. A handler is no command:
	// histories recorded without it replay the same.
	if err := workflow.SetUpdateHandler(ctx, UpdateAlert, r.alert); err != nil {
		return *r.res, fmt.Errorf("register update %s: %w", UpdateAlert, err)
	}
	return *r.res, r.run(ctx)
}

func (r ReprotectRequest) withDefaults() ReprotectRequest {
	if r.CatchUpTimeout <= 0 {
		r.CatchUpTimeout = 10 * time.Minute
	}
	if r.HeartbeatTimeout <= 0 {
		r.HeartbeatTimeout = 10 * time.Second
	}
	if r.Trigger == "" {
		r.Trigger = TriggerManual
	}
	return r
}

// reprotect is one run of Reprotect.
type reprotect struct {
	req   ReprotectRequest
	res   *ReprotectResult
	pre   activities.ReprotectPrecheckResult
	phase Phase
	// targets[p]: the LSN the replica stands at for partition p, from which
	// the new primary ships.
	targets []uint64
}

// run is the reprotect as named phases.
func (r *reprotect) run(ctx workflow.Context) error {
	if r.req.Account == "" {
		return r.end(ctx, OutcomeRefused, fmt.Errorf("no account: name the account to reprotect"))
	}
	r.enterPhase(ctx, PhasePrecheck, "account "+r.req.Account)
	_ = workflow.UpsertTypedSearchAttributes(ctx, SearchAccount.ValueSet(r.req.Account))
	if err := r.precheck(ctx); err != nil {
		return r.end(ctx, OutcomeRefused, because("reprotect of "+r.req.Account+" refused (nothing was touched)", err))
	}
	if r.pre.Protected {
		r.res.AlreadyProtected = true
		return r.end(ctx, OutcomeCompleted, nil)
	}
	for _, step := range []func(workflow.Context) error{r.demote, r.reconcile, r.seed, r.protect, r.catchUp, r.markProtected} {
		if err := step(ctx); err != nil {
			return r.end(ctx, OutcomeFailed, err)
		}
	}
	return r.end(ctx, OutcomeCompleted, nil)
}

// activity runs one step's activity with bounded attempts and timeouts.
func (r *reprotect) activity(ctx workflow.Context, attempt time.Duration, summary string) workflow.Context {
	return workflow.WithScheduleToCloseTimeout(withActivity(ctx, attempt, r.req.HeartbeatTimeout, 5, summary), 5*attempt)
}

// precheck reads the account's state, touching nothing.
func (r *reprotect) precheck(ctx workflow.Context) error {
	err := workflow.ExecuteActivity(r.activity(ctx, time.Minute, "reprotect precheck "+r.req.Account), acts.ReprotectPrecheck,
		activities.ReprotectPrecheckInput{Account: r.req.Account}).Get(ctx, &r.pre)
	if err != nil {
		return err
	}
	p, res := r.pre, r.res
	res.Primary, res.Secondary, res.Epoch, res.Partitions = p.Primary, p.Secondary, p.Epoch, p.Partitions
	res.LastFailoverMode, res.LedgerLostOps, res.LedgerUnseenEstimate = p.LastFailoverMode, p.LedgerLostOps, p.LedgerUnseenEstimate
	r.targets = append([]uint64(nil), p.Targets...)
	return nil
}

// demote turns the old primary's partitions into secondaries at the new
// epoch. Partitions it holds less of than the new primary started from are
// demoted where they stand and seeded after.
func (r *reprotect) demote(ctx workflow.Context) error {
	p := r.pre
	if p.SecondaryState == activities.SecondaryMissing {
		return nil
	}
	r.enterPhase(ctx, PhaseDemote, fmt.Sprintf("%d partitions on %s to secondaries at epoch %d", p.Partitions, p.Secondary, p.Epoch))
	targets := append([]uint64(nil), p.Targets...)
	for _, b := range p.Behind {
		targets[b] = p.OldWritten[b]
	}
	var dr activities.DemoteResult
	err := workflow.ExecuteActivity(r.activity(ctx, 2*time.Minute, "demote "+p.Secondary), acts.Demote,
		activities.DemoteInput{Account: p.Account, URL: p.SecondaryURL, Epoch: p.Epoch, Targets: targets}).Get(ctx, &dr)
	if err != nil {
		return because("demote the old primary "+p.Secondary, err)
	}
	r.res.Recovered = dr.Recovered
	for _, n := range dr.Recovered {
		r.res.RecoveredOps += uint64(n)
	}
	r.res.LedgerMissedOps = r.res.RecoveredOps - min(r.res.RecoveredOps, r.res.LedgerLostOps)
	return nil
}

// reconcile rewinds the keys the old primary wrote past the new primary's
// start to what the new primary holds.
func (r *reprotect) reconcile(ctx workflow.Context) error {
	p := r.pre
	if p.SecondaryState == activities.SecondaryMissing {
		return nil
	}
	r.enterPhase(ctx, PhaseReconcile, fmt.Sprintf("%d writes set aside; rewinding their keys", r.res.RecoveredOps))
	var rd activities.RestoreDivergedResult
	err := workflow.ExecuteActivity(r.activity(ctx, 5*time.Minute, "rewind the diverged keys on "+p.Secondary), acts.RestoreDiverged,
		activities.RestoreDivergedInput{Account: p.Account, SecondaryURL: p.SecondaryURL, PrimaryURL: p.PrimaryURL,
			OldEpoch: p.Epoch - 1, Targets: p.Targets}).Get(ctx, &rd)
	if err != nil {
		return because("rewind the diverged keys on "+p.Secondary, err)
	}
	r.res.RestoredKeys = rd.Keys
	return nil
}

// seed copies what the old primary lost (the account, or partitions it
// holds less of) from a snapshot of the new primary.
func (r *reprotect) seed(ctx workflow.Context) error {
	p := r.pre
	create := p.SecondaryState == activities.SecondaryMissing
	if !create && len(p.Behind) == 0 {
		return nil
	}
	in := activities.SeedInput{Account: p.Account, Partitions: p.Partitions, Epoch: p.Epoch, PrimaryURL: p.PrimaryURL,
		SecondaryURL: p.SecondaryURL, PrimaryName: p.Primary, Create: create, Only: p.Behind}
	if create {
		in.Only = nil
	}
	r.enterPhase(ctx, PhaseSeed, fmt.Sprintf("copying from a snapshot of %s to %s", p.Primary, p.Secondary))
	var sr activities.SeedResult
	err := workflow.ExecuteActivity(r.activity(ctx, 30*time.Minute, "seed "+p.Secondary+" from "+p.Primary), acts.Seed, in).Get(ctx, &sr)
	if err != nil {
		return because("seed "+p.Secondary, err)
	}
	seeded := in.Only
	if seeded == nil {
		seeded = activities.AllPartitions(p.Partitions)
	}
	for _, q := range seeded {
		r.targets[q] = sr.LSN[q]
		r.res.SeededBytes += sr.Bytes[q]
	}
	r.res.Seeded = seeded
	return nil
}

// protect starts reverse replication from where the replica stands.
func (r *reprotect) protect(ctx workflow.Context) error {
	p := r.pre
	r.enterPhase(ctx, PhaseProtect, fmt.Sprintf("%s ships to %s", p.Primary, p.Secondary))
	err := workflow.ExecuteActivity(r.activity(ctx, 2*time.Minute, p.Primary+" ships to "+p.Secondary), acts.Protect,
		activities.ProtectInput{Account: p.Account, PrimaryURL: p.PrimaryURL, Targets: r.targets}).Get(ctx, nil)
	return because("start reverse replication from "+p.Primary, err)
}

// catchUp waits, up to CatchUpTimeout, until the replica is within the lag
// budget.
func (r *reprotect) catchUp(ctx workflow.Context) error {
	p := r.pre
	budget := r.req.LagBudgetOps
	if budget == 0 {
		budget = max(1000, 2*uint64(p.Partitions))
	}
	t0 := workflow.Now(ctx)
	var cu activities.CatchUpResult
	err := workflow.ExecuteActivity(
		r.activity(ctx, r.req.CatchUpTimeout+time.Minute, fmt.Sprintf("%s catches up with %s", p.Secondary, p.Primary)),
		acts.CatchUp, activities.CatchUpInput{Account: p.Account, FromURL: p.PrimaryURL, ToURL: p.SecondaryURL,
			Partitions: p.Partitions, MaxLagOps: budget, Timeout: r.req.CatchUpTimeout}).Get(ctx, &cu)
	r.res.CatchUpMillis = workflow.Now(ctx).Sub(t0).Milliseconds()
	r.res.LagOps = cu.SendLagOps + cu.ReplayLagOps
	switch {
	case err != nil:
		return because(p.Secondary+" catching up with "+p.Primary, err)
	case !cu.CaughtUp:
		return fmt.Errorf("%s did not catch up with %s within %s: %d ops still behind (budget %d); "+
			"replication runs on: reprotect again to finish", p.Secondary, p.Primary, r.req.CatchUpTimeout, r.res.LagOps, budget)
	}
	return nil
}

// markProtected records in the location service that the account is
// protected again: it may fail over (back) from here.
func (r *reprotect) markProtected(ctx workflow.Context) error {
	p := r.pre
	err := workflow.ExecuteActivity(r.activity(ctx, 30*time.Second, "mark "+p.Account+" protected"), acts.MarkProtected,
		activities.MarkProtectedInput{Account: p.Account, Epoch: p.Epoch}).Get(ctx, nil)
	return because("mark "+p.Account+" protected", err)
}

// end records the outcome and returns the error a reprotect that did not
// complete fails with (nil when it completed).
func (r *reprotect) end(ctx workflow.Context, outcome Outcome, err error) error {
	res := r.res
	res.Outcome, res.FinishedAt = outcome, workflow.Now(ctx)
	res.TotalMillis = res.FinishedAt.Sub(res.StartedAt).Milliseconds()
	if err == nil {
		r.enterPhase(ctx, PhaseProtected, fmt.Sprintf("%s replicates %s to %s", res.Account, res.Primary, res.Secondary))
		return nil
	}
	r.enterPhase(ctx, PhaseFailed, err.Error())
	typ := ErrTypeReprotectFailed
	if outcome == OutcomeRefused {
		typ = ErrTypeReprotectRefused
	}
	return temporal.NewNonRetryableApplicationError(err.Error(), typ, err, *res)
}

// alert records an alert the webhook attached (update UpdateAlert), once
// per fingerprint, as the failover's alert update does.
func (r *reprotect) alert(ctx workflow.Context, a AlertRef) (AlertAck, error) {
	ack := AlertAck{WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Phase: r.phase}
	for _, seen := range r.res.Alerts {
		if seen.Fingerprint != "" && seen.Fingerprint == a.Fingerprint {
			ack.Alerts = r.res.AlertsSeen
			return ack, nil
		}
	}
	r.res.AlertsSeen++
	if len(r.res.Alerts) < maxAlerts {
		r.res.Alerts = append(r.res.Alerts, a)
	}
	ack.Attached, ack.Alerts = true, r.res.AlertsSeen
	return ack, nil
}

func (r *reprotect) enterPhase(ctx workflow.Context, p Phase, details string) {
	r.phase = p
	_ = workflow.UpsertTypedSearchAttributes(ctx, SearchPhase.ValueSet(string(p)))
	workflow.SetCurrentDetails(ctx, fmt.Sprintf("**%s** %s", p, details))
}
