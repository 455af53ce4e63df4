// Package stamp is Baton's reference storage stamp: a partitioned key-value
// store whose partitions keep an ordered log (LSNs) and replicate
// asynchronously to a paired stamp, with the control calls a failover needs
// (fence, flush-send, flush-replay, promote, unfence), as in US 9274906.
//
// This file is the wire contract shared by the server (server.go), the Go
// client (client.go) and the docs (docs/STAMP_API.md). Keep the three in step.
package stamp

import (
	"fmt"
	"regexp"
	"time"
)

// Role is what a partition does for its account on this stamp.
type Role string

const (
	// RolePrimary partitions take client writes and ship their log.
	RolePrimary Role = "primary"
	// RoleSecondary partitions receive the log and replay it.
	RoleSecondary Role = "secondary"
)

// Op is a log operation.
type Op string

const (
	OpPut    Op = "put"
	OpDelete Op = "delete"
)

// Control operations, the patent's words. They are also the URL segments of
// the control routes: POST /v1/accounts/{account}/control/{op}.
const (
	CtlFence       = "fence"
	CtlFlushSend   = "flush-send"
	CtlFlushReplay = "flush-replay"
	CtlPromote     = "promote"
	CtlUnfence     = "unfence"
	// CtlDemote turns an old primary's partitions into secondaries of the
	// new primary at the new epoch: what each holds past its target (the LSN
	// the new primary continued from) moves to the recovered area, and its
	// log is cut back to the target (reprotect).
	CtlDemote = "demote"
	// CtlProtect makes a promoted primary ship to its peer again, from each
	// partition's target (what the peer holds): reverse replication.
	CtlProtect = "protect"
	// CtlSeed replaces a secondary's partitions with a snapshot of its
	// peer's (the primary's) and resumes replication from the snapshot's
	// LSN: for a stamp whose data is gone.
	CtlSeed = "seed"
)

// HeaderEpoch carries the epoch a client believes is current for the account.
// A write whose epoch is lower than the partition's is refused (409,
// stale_epoch); one whose epoch is higher tells this stamp it has been
// superseded (421, not_primary).
const HeaderEpoch = "X-Baton-Epoch"

// Error codes in ErrorBody.Code. HTTP status is given beside each.
const (
	CodeBadRequest     = "bad_request"       // 400: malformed body, key or parameter
	CodeNotFound       = "not_found"         // 404: unknown account, partition or key
	CodeConflict       = "conflict"          // 409: e.g. create with a different spec
	CodeStaleEpoch     = "stale_epoch"       // 409: the request's epoch is older than the partition's
	CodeBeyondReceived = "beyond_received"   // 409: flush-replay target above what was received
	CodeNotReplayed    = "not_replayed"      // 409: promote while received entries are unreplayed
	CodeNotPrimary     = "not_primary"       // 421 + Location header: write sent to a non-primary
	CodeFenced         = "fenced"            // 503 + Retry-After: partition is fenced, retry later
	CodeInjected       = "injected_fault"    // 503: fault injection
	CodeUnavailable    = "unavailable"       // 503: peer stamp or location service not answering, or stamp closing
	CodeTooLarge       = "payload_too_large" // 413
	CodeInternal       = "internal"          // 500
)

// ErrorBody is the JSON body of every non-2xx answer.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"` // says what was wrong and what to do
	// Primary is set with not_primary: base URL of the stamp to write to.
	Primary string `json:"primary,omitempty"`
	// Epoch is the partition's epoch, set with stale_epoch and not_primary.
	Epoch uint64 `json:"epoch,omitempty"`
}

// AccountSpec creates an account on a stamp (POST /v1/accounts).
type AccountSpec struct {
	Account    string `json:"account"`
	Partitions int    `json:"partitions"` // 1..MaxPartitions
	Role       Role   `json:"role"`
	Epoch      uint64 `json:"epoch"` // starting epoch, >= 1
	// Peer is the paired stamp's base URL: where a primary ships its log, and
	// where a secondary redirects writes to.
	Peer string `json:"peer"`
	// PeerName is the paired stamp's name, as its node certificate says:
	// with authentication on, shipments and heartbeats for the account are
	// accepted from that stamp only.
	PeerName string `json:"peer_name,omitempty"`
}

// MaxPartitions bounds AccountSpec.Partitions.
const MaxPartitions = 65536

var accountNameRE = regexp.MustCompile(`^[a-z0-9-]{1,63}$`)

// ValidateAccountName checks the account-name rule that stamps and the
// location service share: 1-63 characters of a-z, 0-9 and -, so that a name
// is safe in a URL path segment, a workflow ID and a log line.
func ValidateAccountName(name string) error {
	if !accountNameRE.MatchString(name) {
		return fmt.Errorf("account name %q is invalid; use 1-63 characters of a-z, 0-9 and -", name)
	}
	return nil
}

// Entry is one log record.
type Entry struct {
	LSN   uint64 `json:"lsn"`
	Epoch uint64 `json:"epoch"`
	Op    Op     `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// WriteResult answers a put or delete.
type WriteResult struct {
	Account   string `json:"account"`
	Key       string `json:"key"`
	Partition int    `json:"partition"`
	LSN       uint64 `json:"lsn"`
	Epoch     uint64 `json:"epoch"`
	Stamp     string `json:"stamp"` // name of the stamp that acknowledged it
}

// BatchOp is one operation of POST /v1/accounts/{a}/batch.
type BatchOp struct {
	Op    Op     `json:"op"`
	Key   string `json:"key"`
	Value string `json:"value,omitempty"`
}

// BatchRequest writes many keys at once; every op gets its own LSN in its
// partition. The batch is refused whole (nothing written) if any partition it
// touches is fenced, not primary or at another epoch.
type BatchRequest struct {
	Ops []BatchOp `json:"ops"`
}

// BatchResult answers a batch, one result per op in order.
type BatchResult struct {
	Results []WriteResult `json:"results"`
}

// ReadRequest reads many keys at once (POST /v1/accounts/{a}/read).
type ReadRequest struct {
	Keys []string `json:"keys"`
}

// Value is a stored value with the LSN that wrote it.
type Value struct {
	Value     string `json:"value"`
	LSN       uint64 `json:"lsn"`
	Partition int    `json:"partition"`
}

// ReadResult answers a read: found keys and missing keys.
type ReadResult struct {
	Values  map[string]Value `json:"values"`
	Missing []string         `json:"missing"`
}

// ControlRequest is the body of the bulk control routes
// POST /v1/accounts/{a}/control/{op}. The per-partition routes
// POST /v1/accounts/{a}/partitions/{p}/{op} take the same body without
// Partitions/All.
type ControlRequest struct {
	// Partitions lists the partitions to act on; or set All.
	Partitions []int `json:"partitions,omitempty"`
	All        bool  `json:"all,omitempty"`
	// Epoch: promote sets it (must be above the partition's current epoch, or
	// equal to it for an idempotent repeat); fence and unfence check it when
	// non-zero.
	Epoch uint64 `json:"epoch,omitempty"`
	// Targets: flush-replay replays each partition up to its target LSN.
	// Missing partitions default to everything received.
	Targets map[int]uint64 `json:"targets,omitempty"`
	// WaitMillis: flush-replay waits up to this long for the targets to be
	// reached before answering with progress (long poll). 0 = answer now.
	WaitMillis int `json:"wait_ms,omitempty"`
}

// PartitionStatus is the state of one partition on one stamp.
type PartitionStatus struct {
	Partition int    `json:"partition"`
	Role      Role   `json:"role"`
	Epoch     uint64 `json:"epoch"`
	Fenced    bool   `json:"fenced"`
	Shipping  bool   `json:"shipping"` // a primary that replicates to Peer
	// On a primary.
	LastWritten uint64 `json:"last_written"`
	LastSent    uint64 `json:"last_sent"`
	LastAcked   uint64 `json:"last_acked"`
	// On a secondary (also kept after promote).
	LastReceived uint64 `json:"last_received"`
	LastReplayed uint64 `json:"last_replayed"`
	// LastAckedAt is when the secondary last acknowledged (primary side):
	// the age of the replication lag.
	LastAckedAt time.Time `json:"last_acked_at,omitzero"`
	// Flush-replay progress (secondary): the target of the last flush-replay
	// and when it was asked and reached.
	ReplayTarget    uint64    `json:"replay_target,omitempty"`
	ReplayStartedAt time.Time `json:"replay_started_at,omitzero"`
	ReplayDoneAt    time.Time `json:"replay_done_at,omitzero"`
	// What the secondary knows of its source (from the sizes the primary
	// reports with every shipment and heartbeat): the source's LastWritten as
	// of SourceSeenAt (the source's clock when it sent the report). After an
	// outage, (LastReplayed, SourceWritten] is the range known lost; writes
	// the source acknowledged after SourceSeenAt are not known here.
	SourceWritten uint64    `json:"source_written,omitempty"`
	SourceSeenAt  time.Time `json:"source_seen_at,omitzero"`
	// SourceWriteRate is the source's write rate, ops/s, over the 5 s of
	// its reports up to SourceSeenAt (lower when it was idle in them): the
	// basis of an estimate of what it may have acknowledged after contact
	// was lost.
	SourceWriteRate float64 `json:"source_write_rate,omitempty"`
	// Flush-send timing (primary): when the last flush-send started and was
	// acknowledged.
	SendStartedAt time.Time `json:"send_started_at,omitzero"`
	SendDoneAt    time.Time `json:"send_done_at,omitzero"`
}

// SendLag is what a primary partition wrote that its secondary has not
// acknowledged yet: LastWritten - LastAcked, never below 0.
func (p PartitionStatus) SendLag() uint64 { return p.LastWritten - min(p.LastAcked, p.LastWritten) }

// ReplayLag is what a secondary partition received but has not replayed
// yet: LastReceived - LastReplayed, never below 0.
func (p PartitionStatus) ReplayLag() uint64 {
	return p.LastReceived - min(p.LastReplayed, p.LastReceived)
}

// ReceiveLag is what a secondary partition knows its source wrote (from
// the source's last report) but has not received: SourceWritten -
// LastReceived, never below 0.
func (p PartitionStatus) ReceiveLag() uint64 {
	return p.SourceWritten - min(p.LastReceived, p.SourceWritten)
}

// ControlResult is one partition's answer to a control call.
type ControlResult struct {
	Partition int `json:"partition"`
	// LSN is the op's answer: fence -> final LSN; flush-send -> sent (and
	// acknowledged) LSN; flush-replay -> replayed LSN; promote -> LSN the new
	// primary continues from; unfence -> last written.
	LSN    uint64          `json:"lsn"`
	Done   bool            `json:"done"` // flush-replay: target reached
	Status PartitionStatus `json:"status"`
	// Recovered (demote) counts the partition's entries in the recovered
	// area; SeededBytes (seed) the bytes of keys and values it copied.
	Recovered   int   `json:"recovered,omitempty"`
	SeededBytes int64 `json:"seeded_bytes,omitempty"`
	// Error is set when this partition alone failed: a bulk call answers
	// 200 with the other partitions done, and this one's refusal as the
	// per-partition route would have answered it. LSN and Done are then no
	// answer; Status is the partition's state as it stands.
	Error *PartitionError `json:"error,omitempty"`
}

// PartitionError is one partition's refusal inside a bulk control answer.
type PartitionError struct {
	// StatusCode is the HTTP status the per-partition route would answer.
	StatusCode int `json:"status_code"`
	ErrorBody
}

// ControlResponse answers a control call.
type ControlResponse struct {
	Account string          `json:"account"`
	Op      string          `json:"op"`
	Stamp   string          `json:"stamp"`
	Results []ControlResult `json:"results"`
}

// AccountStatus answers GET /v1/accounts/{a}/status.
type AccountStatus struct {
	Account    string            `json:"account"`
	Stamp      string            `json:"stamp"`
	Peer       string            `json:"peer"`
	Partitions []PartitionStatus `json:"partitions"`
}

// SendLag sums the partitions' SendLag: on a primary, the writes its
// secondary has not acknowledged.
func (s AccountStatus) SendLag() uint64 {
	var n uint64
	for _, p := range s.Partitions {
		n += p.SendLag()
	}
	return n
}

// ReplayLag sums the partitions' ReplayLag: on a secondary, the entries it
// received but has not replayed.
func (s AccountStatus) ReplayLag() uint64 {
	var n uint64
	for _, p := range s.Partitions {
		n += p.ReplayLag()
	}
	return n
}

// Health answers GET /v1/health.
type Health struct {
	Stamp    string    `json:"stamp"`
	OK       bool      `json:"ok"`
	Accounts int       `json:"accounts"`
	Started  time.Time `json:"started"`
	Durable  bool      `json:"durable"` // false in memory mode
}

// Fault injects failures (POST /v1/faults adds one, DELETE /v1/faults clears
// all, GET /v1/faults lists them).
type Fault struct {
	// Scope: "control", "data", "replication" or "all".
	Scope string `json:"scope"`
	// Account and Partition narrow the fault; "" and -1 (or omitted with
	// AllPartitions) mean every account / partition.
	Account   string `json:"account,omitempty"`
	Partition *int   `json:"partition,omitempty"`
	// ErrorRate in [0,1]: share of matching calls answered 503 injected_fault.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// LatencyMillis added to each matching call.
	LatencyMillis int `json:"latency_ms,omitempty"`
	// Unreachable: matching calls get their connection closed, no answer.
	Unreachable bool `json:"unreachable,omitempty"`
	// Op narrows a control-scope fault to one call: fence, flush-send,
	// flush-replay, promote, unfence or status ("" = every call).
	Op string `json:"op,omitempty"`
	// Code is what an injected error answers: injected_fault (default, 503,
	// retryable), unavailable (503) or stale_epoch / conflict (409, which a
	// caller must not retry).
	Code string `json:"code,omitempty"`
	// Struck (answers only) counts the calls the fault struck: delayed,
	// dropped, or answered with its error.
	Struck int64 `json:"struck,omitempty"`
}

// HeartbeatBatch is a primary stamp's heartbeat to its peer (POST
// /v1/internal/heartbeats): for every account with nothing to ship, what
// each partition has written, as a shipment reports it.
type HeartbeatBatch struct {
	FromStamp string          `json:"from_stamp"`
	Accounts  []AccountReport `json:"accounts"`
}

// AccountReport is one account's heartbeat: partition -> LastWritten (the
// partitions whose value changed since the last report), at SentAt.
type AccountReport struct {
	Account string         `json:"account"`
	Written map[int]uint64 `json:"written,omitempty"`
	SentAt  time.Time      `json:"sent_at"`
}

// HeartbeatAck names the accounts whose report was recorded (an unknown
// account, or one a replication fault strikes, is left out: its report is
// sent again).
type HeartbeatAck struct {
	Accepted []string `json:"accepted"`
}

// ReplicateRequest is the internal log shipment from a primary to its
// secondary (POST /v1/internal/replicate). Entries of each partition are
// contiguous and ascending; entries at or below the secondary's
// LastReceived are ignored (idempotent); a gap is refused.
type ReplicateRequest struct {
	Account    string              `json:"account"`
	FromStamp  string              `json:"from_stamp"`
	Partitions []PartitionShipment `json:"partitions"`
	// SentAt is the primary's clock when it sent this shipment, and Written
	// its LastWritten (durable) at that moment for every partition whose
	// value changed since the last report. A shipment with no entries is a
	// heartbeat: it only carries these.
	SentAt  time.Time      `json:"sent_at,omitzero"`
	Written map[int]uint64 `json:"written,omitempty"`
}

// PartitionShipment is one partition's part of a shipment.
type PartitionShipment struct {
	Partition int     `json:"partition"`
	Entries   []Entry `json:"entries"`
}

// ReplicateResponse acknowledges a shipment: per partition, the last LSN
// durably received.
type ReplicateResponse struct {
	Acks map[int]uint64 `json:"acks"`
}

// RecoveredEntry is a write an old primary acknowledged past what the new
// primary replayed, set aside by demote instead of dropped
// (GET /v1/accounts/{a}/recovered answers them as JSON lines).
type RecoveredEntry struct {
	Partition   int       `json:"partition"`
	LSN         uint64    `json:"lsn"`
	Epoch       uint64    `json:"epoch"`
	Op          Op        `json:"op"`
	Key         string    `json:"key"`
	Value       string    `json:"value,omitempty"`
	RecoveredAt time.Time `json:"recovered_at"`
}

// RestoreRequest sets keys of a demoted stamp's secondary partitions to the
// new primary's values (POST /v1/accounts/{a}/restore): the rewind of what
// diverged, before reverse replication resumes.
type RestoreRequest struct {
	Values []RestoreValue `json:"values"`
}

// RestoreValue is one key as the new primary holds it; Deleted when it has
// no such key.
type RestoreValue struct {
	Key     string `json:"key"`
	Value   string `json:"value,omitempty"`
	LSN     uint64 `json:"lsn,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
}

// SnapshotHeader is the first line of a snapshot
// (GET /v1/accounts/{a}/snapshot?partitions=...): the LSN each partition's
// data stands at. Every further line is a SnapshotValue.
type SnapshotHeader struct {
	LSNs map[int]uint64 `json:"lsns"`
}

// SnapshotValue is one key of a snapshot.
type SnapshotValue struct {
	Partition int    `json:"p"`
	Key       string `json:"k"`
	Value     string `json:"v"`
	LSN       uint64 `json:"l"`
}
