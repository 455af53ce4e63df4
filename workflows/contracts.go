// Package workflows holds Baton's deterministic orchestration: the account
// failover of US 9274906 (AccountFailover, fanning out to
// PartitionGroupFailover children). It performs no I/O; every side effect is
// an activity in package activities.
package workflows

import (
	"time"

	"github.com/batonhq/baton/activities"
)

// TaskQueue is where Baton's workers poll.
const TaskQueue = "baton"

// Workflow type names: stable, they are recorded in every history.
const (
	NameAccountFailover        = "AccountFailover"
	NamePartitionGroupFailover = "PartitionGroupFailover"
)

// FailoverWorkflowID is the workflow ID of an account's failover. Deriving it
// from the account makes Temporal refuse a second concurrent failover.
func FailoverWorkflowID(account string) string { return "failover-" + account }

// Mode is how a failover treats its source.
type Mode string

// Failover modes.
const (
	// ModePlanned: the source is reachable; zero data loss or refusal.
	ModePlanned Mode = "planned"
	// ModeUnplanned (forced): the source is down or partly down; reachable
	// partitions are still fenced and flushed, unreachable ones are given up
	// on, and the result carries a data-loss ledger.
	ModeUnplanned Mode = "unplanned"
)

// Valid reports whether m is a mode a failover knows ("" is not: fill the
// defaults first).
func (m Mode) Valid() bool { return m == ModePlanned || m == ModeUnplanned }

// Trigger says what started a failover.
type Trigger string

// What started a failover.
const (
	TriggerManual Trigger = "manual" // an operator (CLI, Web UI)
	TriggerAlert  Trigger = "alert"  // an alert webhook (Alertmanager)
	TriggerAPI    Trigger = "api"    // another tool's plain JSON trigger
)

// Valid reports whether t is a trigger a failover knows.
func (t Trigger) Valid() bool { return t == TriggerManual || t == TriggerAlert || t == TriggerAPI }

// Phase is where a failover stands, as the progress query, the BatonPhase
// search attribute and the workflow's current details report it.
type Phase string

// Phases of an account failover.
const (
	PhasePrecheck   Phase = "precheck"
	PhaseApproval   Phase = "awaiting-approval"
	PhaseCatchUp    Phase = "catch-up"
	PhaseFence      Phase = "fence"
	PhaseFlush      Phase = "flush" // flush-send + flush-replay, per partition
	PhasePromote    Phase = "promote"
	PhaseRollback   Phase = "rollback"
	PhaseDone       Phase = "done"
	PhaseDryRun     Phase = "dry-run"
	PhaseRejected   Phase = "rejected"
	PhaseRolledBack Phase = "rolled-back"
	PhaseFailed     Phase = "failed"
)

// FailoverRequest starts an AccountFailover.
type FailoverRequest struct {
	Account string
	// FromStamp is the expected current primary; "" accepts the current one.
	FromStamp   string
	ToStamp     string
	Reason      string
	RequestedBy string
	// Mode is ModePlanned (default) or ModeUnplanned.
	Mode Mode
	// Trigger is TriggerManual (default), TriggerAlert or TriggerAPI.
	Trigger Trigger
	// DryRun runs the precheck only and returns the plan; nothing is touched.
	DryRun bool
	// Approval decides whether the failover waits for a human.
	Approval ApprovalPolicy
	// Alerts that caused this failover (more attach later through
	// UpdateAlert).
	Alerts  []AlertRef
	Options FailoverOptions
}

// ApprovalPolicy: a failover waits for an approval when Required is set, in
// unplanned mode, when the trigger is not manual, or when the estimated loss
// exceeds LossBudgetOps (if non-zero).
type ApprovalPolicy struct {
	Required      bool
	LossBudgetOps uint64
	// Timeout without an answer aborts the failover (default 1h).
	Timeout time.Duration
	// PreApproved records an approval given with the request (an operator
	// who starts an unplanned failover by hand and means it).
	PreApproved *Decision
}

// Updates the failover accepts. Each is also accepted as a signal of the
// same name with the same argument, so that it can be sent from the Temporal
// Web UI; the update form answers with an error when refused (e.g. an abort
// after promote started), the signal form records the refusal.
const (
	UpdateApprove = "approve" // Decision: go past the approval gate
	UpdateReject  = "reject"  // Decision: refuse at the approval gate (nothing touched)
	UpdateAbort   = "abort"   // Decision: stop and roll back; refused from promote on
	UpdateAlert   = "alert"   // AlertRef: attach an alert to the failover's record
)

// Decision is an operator's answer, recorded in the workflow.
type Decision struct {
	By     string
	Reason string
	At     time.Time // set by the workflow when recorded
}

// AlertRef is an alert attached to a failover.
type AlertRef struct {
	Source      string // e.g. "alertmanager"
	Name        string // alertname
	Fingerprint string
	Status      string // firing | resolved
	StartsAt    time.Time
	Labels      map[string]string
}

// AlertAck answers UpdateAlert.
type AlertAck struct {
	WorkflowID string
	Attached   bool // false: this fingerprint was already recorded
	Alerts     int  // alerts recorded so far
	Phase      Phase
}

// FailoverOptions tune a failover; the zero value gives the defaults.
type FailoverOptions struct {
	// GroupSize is the partitions per PartitionGroupFailover child (default
	// 250; raised so that there are at most MaxChildren children).
	GroupSize int
	// CatchUpMaxLagOps: fence once at most this many ops are unacknowledged
	// or unreplayed in total (default max(1000, 2 x partitions)).
	CatchUpMaxLagOps uint64
	// CatchUpTimeout bounds the catch-up wait before fencing anyway
	// (default 2m; negative skips catch-up).
	CatchUpTimeout time.Duration
	// ReplayTimeout bounds one flush-replay activity attempt (default 30m).
	ReplayTimeout time.Duration
	// FlushSendGiveUp bounds how long a group keeps retrying partitions whose
	// flush-send fails (default 10m) before the failover rolls back.
	FlushSendGiveUp time.Duration
	// SourceTimeout (unplanned): how long to keep trying to fence and flush
	// an unreachable source partition before giving up on it (default 30s).
	SourceTimeout time.Duration
	// HeartbeatTimeout: activities heartbeat, so a dead worker's activity is
	// retried on another worker after this long (default 10s).
	HeartbeatTimeout time.Duration
	// FlushDeadline bounds the fenced window before promote: fence,
	// flush-send and flush-replay of every partition, counted from the
	// moment the fence starts (default 2m). Past it the failover rolls back:
	// in-flight work is cancelled, the source is unfenced, and the report
	// names the partitions that held it up with their last error.
	FlushDeadline time.Duration
	// PrecheckBudget bounds how long the precheck retries answers that may
	// go away by themselves (5xx, injected faults, connection errors) before
	// it refuses (default 1m). A definitive answer refuses at once.
	PrecheckBudget time.Duration
}

// MaxChildren caps a parent's children, well under Temporal's advice of
// about 1,000 per parent.
const MaxChildren = 500

// PartitionTable is the per-partition report in columns (one entry per
// partition, same index in every column), so that a 10,000-partition report
// stays a few hundred kilobytes in the history.
type PartitionTable struct {
	Partition   []int
	FinalLSN    []uint64
	SentLSN     []uint64
	ReplayedLSN []uint64
	// The stamps' view: how long flush-send and flush-replay took on them.
	SendMillis   []int64
	ReplayMillis []int64
	// The workflow's view, from the fence: when it saw the partition sent,
	// and replayed. The difference to the stamps' view is time spent
	// outside the stamps (waiting for a worker, retries, scheduling).
	SentAfterMillis     []int64
	ReplayedAfterMillis []int64
}

// PartitionIssue names a partition that held a failover up, the step it
// was in and the last error it got.
type PartitionIssue struct {
	Partition int
	Step      string // StepFence, StepFlushSend or StepFlushReplay
	Error     string
}

// PhaseTiming is one phase of the write-unavailability window, from the
// workflow's view: how long it took and, of that, how long its activities
// waited to run (for a worker, or for a retry after a failed attempt or a
// lost worker) rather than ran.
type PhaseTiming struct {
	Phase      string
	Millis     int64
	WaitMillis int64
}

// Outcome is how a failover ended (FailoverResult.Outcome, and the
// baton_failovers metric's outcome tag).
type Outcome string

// Outcomes of a failover.
const (
	OutcomeCompleted  Outcome = "completed"
	OutcomeDryRun     Outcome = "dry-run"
	OutcomeRefused    Outcome = "refused"     // the precheck (or the request) said no; nothing touched
	OutcomeRejected   Outcome = "rejected"    // refused at the approval gate; nothing touched
	OutcomeTimedOut   Outcome = "timed-out"   // no approval in time; nothing touched
	OutcomeAborted    Outcome = "aborted"     // aborted before promote; rolled back
	OutcomeRolledBack Outcome = "rolled-back" // failed before promote; rolled back
	OutcomeFailed     Outcome = "failed"      // failed at or after promote, or rollback failed
)

// FailoverResult is the report of a failover. A failover that does not
// complete returns an error whose details carry this result.
type FailoverResult struct {
	Account     string
	From        string
	To          string
	OldEpoch    uint64
	NewEpoch    uint64
	Partitions  int
	Groups      int
	Reason      string
	RequestedBy string
	Mode        Mode
	Trigger     Trigger
	Outcome     Outcome

	// Precheck is the plan: lag per partition, RPO, destination health.
	Precheck         activities.PrecheckResult
	ApprovalRequired bool
	ApprovalReason   string
	Approval         *Decision
	Rejection        *Decision
	Abort            *Decision
	// Refusals lists requests the workflow refused (e.g. an abort signal
	// after promote started), for the record.
	Refusals []string
	Alerts   []AlertRef

	// Unplanned: partitions whose source was given up on, and the
	// data-loss ledger (known lost LSN ranges) for them. LostOps is what is
	// known lost up to each partition's last contact with the source;
	// UnseenOpsEstimate is an estimate of what the source may have
	// acknowledged after it (its write rate then x the time until it was
	// given up): nobody but the source knows those.
	GivenUp           []int
	Ledger            []activities.LossEntry
	LostOps           uint64
	UnseenOpsEstimate uint64

	// FlushDeadline bounded the fenced window; HeldUp names the partitions
	// that held up a failover that rolled back, with their last error.
	FlushDeadline time.Duration
	HeldUp        []PartitionIssue
	// GroupsDone counts the groups that finished their flush.
	GroupsDone int
	// Resumed says how this failover picked up after an earlier attempt
	// got further than its record (activities.Resume); its fenced window
	// is then not known.
	Resumed string `json:",omitempty"`
	// Inline: the groups flushed inside the failover, with local
	// activities, rather than as child workflows (versionFastPath, for
	// accounts of at most 1,000 partitions).
	Inline bool `json:",omitempty"`

	StartedAt  time.Time
	FencedAt   time.Time
	PromotedAt time.Time
	FinishedAt time.Time
	// TotalMillis is start to finish; UnavailableMillis is the write
	// unavailability window, from fence to promote.
	TotalMillis       int64
	UnavailableMillis int64
	CatchUpMillis     int64

	// Lag at precheck and at the moment of the fence decision.
	PrecheckSendLagOps   uint64
	PrecheckReplayLagOps uint64
	CaughtUp             bool
	LagAtFenceOps        uint64

	SlowestSendMillis   int64
	SlowestReplayMillis int64
	// SlowestFlushMillis is the slowest partition's send + replay.
	SlowestFlushMillis int64
	// Window breaks UnavailableMillis down by phase: fence, flush-send,
	// flush-replay, promote.
	Window []PhaseTiming

	Table PartitionTable
}

// GroupInput is one PartitionGroupFailover child's work.
type GroupInput struct {
	Account    string
	FromURL    string
	ToURL      string
	Group      int
	Partitions []int
	// FinalLSN[i] is Partitions[i]'s final LSN from the fence.
	FinalLSN        []uint64
	ReplayTimeout   time.Duration
	FlushSendGiveUp time.Duration
	// Unplanned: Skip[i] marks a partition whose source was given up on at
	// the fence (it only replays what was received); partitions whose
	// flush-send keeps failing are given up on after FlushSendGiveUp instead
	// of failing the group.
	Unplanned bool
	Skip      []bool
	// HeartbeatTimeout of the group's activities (see FailoverOptions).
	HeartbeatTimeout time.Duration
	// FencedAt is when the parent started the fence; Deadline when the
	// group must be done (FencedAt + FlushDeadline). Past it the group
	// stops, cancels its work and fails with ErrTypeFlushDeadline, naming
	// the partitions that held it up.
	FencedAt time.Time
	Deadline time.Time
}

// GroupResult reports one group, aligned with GroupInput.Partitions. A
// group that fails carries it as its error's details.
type GroupResult struct {
	SentLSN      []uint64
	ReplayedLSN  []uint64
	SendMillis   []int64
	ReplayMillis []int64
	GivenUp      []int // unplanned: partitions only replayed, not flushed
	// From the fence, in the workflow's view (PartitionTable).
	SentAfterMillis     []int64
	ReplayedAfterMillis []int64
	// Time the group's flush-send and flush-replay activities waited to run
	// (for a worker, or a retry) on its slowest path.
	SendWaitMillis   int64
	ReplayWaitMillis int64
	// HeldUp: the partitions not done when the group stopped.
	HeldUp []PartitionIssue
}

// SignalGroupProgress is how a group child tells its parent how many
// partitions it has sent, for the progress query.
const SignalGroupProgress = "group-progress"

// GroupProgress is the SignalGroupProgress payload.
type GroupProgress struct {
	Group int
	Sent  int
}

// nil pointer through which workflows name activities, checked by the compiler.
var acts *activities.Activities
