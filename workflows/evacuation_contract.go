package workflows

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/activities"
)

// NameStampEvacuation is the evacuation's workflow type.
const NameStampEvacuation = "StampEvacuation"

// EvacuationWorkflowID is the workflow ID of a stamp's evacuation: one at a
// time per stamp.
func EvacuationWorkflowID(stamp string) string { return "evacuate-" + stamp }

// Defaults of an evacuation.
const (
	DefaultMaxInFlight = 20
	DefaultAttempts    = 3
	DefaultRetryDelay  = 10 * time.Second
	DefaultMaxPause    = 24 * time.Hour
)

// Bounds of what an evacuation may be asked.
const (
	maxInFlightLimit = MaxChildren
	maxAttemptsLimit = 10
)

// Phases of an evacuation (the BatonPhase search attribute, the progress
// query). It shares PhaseApproval, PhaseDone, PhaseRejected and
// PhaseFailed with a failover.
const (
	PhaseListing    Phase = "listing"
	PhaseEvacuating Phase = "evacuating"
	PhasePaused     Phase = "paused"
	PhaseDraining   Phase = "draining" // aborted: waiting for the accounts in flight
	PhaseAborted    Phase = "aborted"
	PhaseIncomplete Phase = "incomplete"
)

// Updates an evacuation takes besides approve, reject and abort (each
// also as a same-named signal, for the Web UI).
const (
	UpdatePause  = "pause"  // Decision: start no new account until resumed
	UpdateResume = "resume" // Decision: start accounts again
	UpdateLimits = "limits" // EvacuationLimits: change K (or the cap per destination) while it runs
)

// Evacuation outcomes, besides a failover's (an account's row carries its
// failover's outcome).
const (
	// OutcomeIncomplete: the evacuation ended with accounts left on the
	// stamp (they failed every attempt, or a human must finish them).
	OutcomeIncomplete Outcome = "incomplete"
	// OutcomeMoved: an account no longer on the stamp when the evacuation
	// came back to it (someone else moved it).
	OutcomeMoved Outcome = "moved"
)

// Error types an evacuation that did not move every account fails with;
// its details carry the EvacuationResult.
const (
	ErrTypeEvacuationIncomplete = "EvacuationIncomplete"
	ErrTypeEvacuationAborted    = "EvacuationAborted"
)

// EvacuationRequest starts a StampEvacuation: every account whose primary
// is Stamp fails over to its own secondary, as that account's
// AccountFailover (workflow failover-<account>).
type EvacuationRequest struct {
	Stamp       string
	Mode        Mode
	Trigger     Trigger
	Reason      string
	RequestedBy string
	// Approval is applied once to the whole evacuation: if the policy
	// asks (Required, unplanned, an automatic trigger), the evacuation
	// waits for one approval, and every account's failover runs with it.
	Approval ApprovalPolicy
	Alerts   []AlertRef
	// MaxInFlight: at most this many accounts fail over at once (default
	// DefaultMaxInFlight); PerDestination, if set, caps those going to any
	// one destination stamp.
	MaxInFlight    int
	PerDestination int
	// Attempts per account (default DefaultAttempts): a refused or
	// rolled-back account is tried again after RetryDelay x attempts,
	// up to this many times, then reported; it never stops the others.
	Attempts   int
	RetryDelay time.Duration
	// MaxPause bounds a pause (default DefaultMaxPause): past it the
	// evacuation stops starting accounts and ends as aborted.
	MaxPause time.Duration
	// Options of every account's failover (flush deadline, timeouts).
	Options FailoverOptions
	// Carry is the state a run hands to the next (continue-as-new); nil on
	// the first run.
	Carry *EvacuationCarry `json:",omitempty"`
}

// Fields of an evacuation request, as FieldError names them.
const (
	FieldStamp          = "stamp"
	FieldMaxInFlight    = "max in flight"
	FieldPerDestination = "cap per destination"
	FieldAttempts       = "attempts"
	FieldRetryDelay     = "retry delay"
	FieldMaxPause       = "max pause"
)

// WithDefaults fills the request's defaults.
func (r EvacuationRequest) WithDefaults() EvacuationRequest {
	commonDefaults(&r.Mode, &r.Trigger, &r.Approval)
	if r.MaxInFlight == 0 {
		r.MaxInFlight = DefaultMaxInFlight
	}
	if r.Attempts == 0 {
		r.Attempts = DefaultAttempts
	}
	if r.RetryDelay == 0 {
		r.RetryDelay = DefaultRetryDelay
	}
	if r.MaxPause == 0 {
		r.MaxPause = DefaultMaxPause
	}
	return r
}

// Validate says what is wrong with the request (call it on WithDefaults),
// as a *FieldError, or nil: the one check of the CLI, the webhook and the
// workflow.
func (r EvacuationRequest) Validate() error {
	as := FailoverRequest{Account: "-", ToStamp: "-", Mode: r.Mode, Trigger: r.Trigger, Approval: r.Approval,
		Options: r.Options}
	switch {
	case r.Stamp == "":
		return &FieldError{FieldStamp, "", "name the stamp to evacuate"}
	case r.MaxInFlight < 0 || r.MaxInFlight > maxInFlightLimit:
		return &FieldError{FieldMaxInFlight, strconv.Itoa(r.MaxInFlight),
			fmt.Sprintf("must be between 1 and %d", maxInFlightLimit)}
	case r.PerDestination < 0:
		return &FieldError{FieldPerDestination, strconv.Itoa(r.PerDestination),
			"must be positive (or none, for no cap)"}
	case r.Attempts < 0 || r.Attempts > maxAttemptsLimit:
		return &FieldError{FieldAttempts, strconv.Itoa(r.Attempts),
			fmt.Sprintf("must be between 1 and %d", maxAttemptsLimit)}
	case r.RetryDelay < 0:
		return &FieldError{FieldRetryDelay, r.RetryDelay.String(), "must be positive (or none, for the default)"}
	case r.MaxPause < 0:
		return &FieldError{FieldMaxPause, r.MaxPause.String(), "must be positive (or none, for the default)"}
	}
	return as.Validate()
}

// EvacuationLimits changes an evacuation's admission while it runs
// (UpdateLimits): MaxInFlight if non-zero, PerDestination if set (0
// removes the cap).
type EvacuationLimits struct {
	By             string
	MaxInFlight    int
	PerDestination *int `json:",omitempty"`
}

// Validate says what is wrong with a change of limits.
func (l EvacuationLimits) Validate() error {
	switch {
	case l.By == "":
		return errNoWho
	case l.MaxInFlight < 0 || l.MaxInFlight > maxInFlightLimit:
		return &FieldError{FieldMaxInFlight, strconv.Itoa(l.MaxInFlight),
			fmt.Sprintf("must be between 1 and %d", maxInFlightLimit)}
	case l.PerDestination != nil && *l.PerDestination < 0:
		return &FieldError{FieldPerDestination, strconv.Itoa(*l.PerDestination),
			"must be positive (0 removes the cap)"}
	case l.MaxInFlight == 0 && l.PerDestination == nil:
		return fmt.Errorf("nothing to change: give a max in flight or a cap per destination")
	}
	return nil
}

// EvacuationTable is the per-account report in columns (one entry per
// account, in the order they ended; same index in every column), so that
// 10,000 accounts stay a few hundred kilobytes.
type EvacuationTable struct {
	Account    []string
	Tier       []int
	Partitions []int
	To         []string
	Outcome    []Outcome
	Attempts   []int
	// StartedAfterMillis: when the account's last attempt started, from the
	// evacuation's start; Millis how long it took; UnavailableMillis its
	// write-unavailability window (fence to promote).
	StartedAfterMillis []int64
	Millis             []int64
	UnavailableMillis  []int64
	LostOps            []uint64
	// Attached lists the rows whose failover was already running (started
	// elsewhere): the evacuation waited for it instead of starting one.
	Attached []int `json:",omitempty"`
	// Errors gives, for rows that did not complete, the last error.
	Errors []AccountIssue `json:",omitempty"`
}

// AccountIssue is the reason a row of an EvacuationTable did not complete.
type AccountIssue struct {
	Row   int
	Error string
}

// Len is the number of rows.
func (t *EvacuationTable) Len() int { return len(t.Account) }

// ErrorOf returns the error recorded for row i ("" if none).
func (t *EvacuationTable) ErrorOf(i int) string {
	for _, e := range t.Errors {
		if e.Row == i {
			return e.Error
		}
	}
	return ""
}

// OutcomeCount counts the accounts with an outcome.
type OutcomeCount struct {
	Outcome  Outcome
	Accounts int
}

// TierCount is one tier's accounts, by where they stand.
type TierCount struct {
	Tier    int // activities.NoTier: no tier label
	Done    int // failed over (or moved by someone else)
	Running int
	Failed  int // every attempt failed, or it needs a human
	Waiting int // to retry
}

// AccountTiming is one account's time in an evacuation.
type AccountTiming struct {
	Account string
	Tier    int
	Millis  int64
}

// EvacuationResult is the report of an evacuation. One that did not move
// every account returns an error whose details carry it.
type EvacuationResult struct {
	Stamp       string
	Mode        Mode
	Trigger     Trigger
	Reason      string
	RequestedBy string
	Outcome     Outcome

	ApprovalRequired bool
	ApprovalReason   string
	Approval         *Decision
	Rejection        *Decision
	Abort            *Decision
	// Pauses records every pause and resume, in order.
	Pauses []Decision `json:",omitempty"`
	// Changes records every change of limits, in order.
	Changes  []string   `json:",omitempty"`
	Refusals []string   `json:",omitempty"`
	Alerts   []AlertRef `json:",omitempty"`
	// AlertsSeen counts every alert attached (Alerts keeps maxAlerts).
	AlertsSeen int

	MaxInFlight    int
	PerDestination int
	Attempts       int

	// OnStamp: accounts the stamp was primary for when the evacuation
	// first listed it; NotStarted: accounts it never started (aborted).
	OnStamp    int
	NotStarted int
	ByOutcome  []OutcomeCount
	Tiers      []TierCount
	Partitions int
	// Unplanned: the accounts' data-loss ledgers, summed; StoreShardsLost
	// counts the given-up shards of store accounts (PostgreSQL), whose
	// ledgers count no ops: their loss is counted when they rejoin.
	LostOps           uint64
	UnseenOpsEstimate uint64
	StoreShardsLost   int `json:",omitempty"`
	// MaxUnavailableMillis is the longest write-unavailability window of an
	// account.
	MaxUnavailableMillis int64
	Slowest              []AccountTiming

	StartedAt   time.Time
	FinishedAt  time.Time
	TotalMillis int64
	// Runs counts the workflow's runs (it continues as new to keep each
	// history bounded).
	Runs int

	Table EvacuationTable
}

// EvacuationProgress is what the progress query answers.
type EvacuationProgress struct {
	Stamp          string
	Phase          Phase
	Mode           Mode
	Trigger        Trigger
	Paused         *Decision
	Abort          *Decision
	MaxInFlight    int
	PerDestination int
	// OnStamp: accounts still on the stamp at the last listing, plus the
	// ones evacuated before it.
	OnStamp  int
	Done     int
	Running  int
	Waiting  int // not started yet
	Retrying int // failed an attempt, to be tried again
	Failed   int
	Tiers    []TierCount
	// Running accounts that have run longest, and the slowest done.
	SlowestRunning []AccountTiming
	Slowest        []AccountTiming
	Runs           int
	StartedAt      time.Time
	PhaseAt        time.Time
}

// EvacuationRetry is an account waiting to be tried again.
type EvacuationRetry struct {
	Account   activities.EvacuationAccount
	Attempts  int
	NotBefore time.Time
	LastError string
	Outcome   Outcome
}

// EvacuationCarry is what one run of an evacuation hands the next.
type EvacuationCarry struct {
	Result EvacuationResult
	// Cursor: the accounts up to it (evacuation order) were taken; Sweep
	// counts the passes over the stamp that came back to the start.
	Cursor   activities.EvacuationKey
	Sweep    int
	Found    bool // this pass started an account
	Retries  []EvacuationRetry
	Paused   *Decision
	GateDone bool
}

// EvacuationOutcomeOf returns the report an evacuation that did not
// complete carries in its error (as its run's Get returns it).
func EvacuationOutcomeOf(err error) (EvacuationResult, bool) {
	var ae *temporal.ApplicationError
	var res EvacuationResult
	if errors.As(err, &ae) && ae.HasDetails() && ae.Details(&res) == nil && res.Outcome != "" {
		return res, true
	}
	return res, false
}
