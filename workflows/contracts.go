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

// FailoverRequest starts an AccountFailover.
type FailoverRequest struct {
	Account string
	// FromStamp is the expected current primary; "" accepts the current one.
	FromStamp   string
	ToStamp     string
	Reason      string
	RequestedBy string
	Options     FailoverOptions
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
}

// MaxChildren caps a parent's children, well under Temporal's advice of
// about 1,000 per parent.
const MaxChildren = 500

// PartitionTable is the per-partition report in columns (one entry per
// partition, same index in every column), so that a 10,000-partition report
// stays a few hundred kilobytes in the history.
type PartitionTable struct {
	Partition    []int
	FinalLSN     []uint64
	SentLSN      []uint64
	ReplayedLSN  []uint64
	SendMillis   []int64
	ReplayMillis []int64
}

// FailoverResult is the report of a completed failover.
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

	Table PartitionTable
}

// GroupInput is one PartitionGroupFailover child's work.
type GroupInput struct {
	Account    string
	FromURL    string
	ToURL      string
	Partitions []int
	// FinalLSN[i] is Partitions[i]'s final LSN from the fence.
	FinalLSN        []uint64
	ReplayTimeout   time.Duration
	FlushSendGiveUp time.Duration
}

// GroupResult reports one group, aligned with GroupInput.Partitions.
type GroupResult struct {
	SentLSN      []uint64
	ReplayedLSN  []uint64
	SendMillis   []int64
	ReplayMillis []int64
}

// nil pointer through which workflows name activities, checked by the compiler.
var acts *activities.Activities
