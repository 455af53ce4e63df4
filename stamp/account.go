package stamp

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// partition is one key range of an account on this stamp. All fields are
// guarded by mu. There is no goroutine per partition: the account's shipper
// and replayer find work through the account's dirty sets.
type partition struct {
	mu       sync.Mutex
	id       int
	role     Role
	epoch    uint64
	fenced   bool
	shipping bool

	// next is the last LSN handed to an accepted write; durable is the last
	// LSN committed to disk (LastWritten). They differ only while writes sit
	// in the commit queue. durable is atomic because the committer advances
	// it without taking mu: writers hold mu while they enqueue, so the
	// committer waiting for mu could deadlock against a full queue.
	next    uint64
	durable atomic.Uint64

	lastSent    uint64
	lastAcked   uint64
	lastAckedAt time.Time

	lastReceived uint64
	lastReplayed uint64

	// reported (primary) is the LastWritten last reported to the peer;
	// sourceWritten (secondary) is the peer's last report.
	reported      uint64
	sourceWritten uint64
	// samples (secondary) are the source's reports of its LastWritten, at
	// most one per sampleEvery, over the last rateWindow and one before it:
	// the basis of its write rate.
	samples []sourceSample

	// pruned is the highest LSN dropped from the log (0 after a restart:
	// the first round seeks from the start).
	pruned uint64

	replayTarget    uint64
	replayStartedAt time.Time
	replayDoneAt    time.Time
	sendStartedAt   time.Time
	sendDoneAt      time.Time

	// Replay throttle: a token bucket refilled at Config.ReplayRate.
	tokens   float64
	tokensAt time.Time
}

func (p *partition) statusLocked() PartitionStatus {
	return PartitionStatus{
		Partition:       p.id,
		Role:            p.role,
		Epoch:           p.epoch,
		Fenced:          p.fenced,
		Shipping:        p.shipping,
		LastWritten:     p.durable.Load(),
		LastSent:        p.lastSent,
		LastAcked:       p.lastAcked,
		LastReceived:    p.lastReceived,
		LastReplayed:    p.lastReplayed,
		LastAckedAt:     p.lastAckedAt,
		ReplayTarget:    p.replayTarget,
		ReplayStartedAt: p.replayStartedAt,
		ReplayDoneAt:    p.replayDoneAt,
		SendStartedAt:   p.sendStartedAt,
		SendDoneAt:      p.sendDoneAt,
		SourceWritten:   max(p.sourceWritten, p.lastReceived),
	}
}

func (p *partition) status() PartitionStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.statusLocked()
}

// promoted reports whether p became primary through promote: created
// primaries always ship to their peer, promoted ones never do.
func (p *partition) promotedLocked() bool { return p.role == RolePrimary && !p.shipping }

// account is one account hosted on this stamp.
type account struct {
	spec  AccountSpec
	parts []*partition

	// shipMu keeps one shipment in flight per account, so the background
	// shipper and flush-send never interleave and LSNs arrive contiguous.
	shipMu sync.Mutex
	// recvMu serializes received shipments with promote, so no entry lands
	// on a partition between promote's checks and its role change.
	recvMu sync.Mutex
	// replayMu is held by each replay round and by what rewrites a
	// partition's replicated state under it (demote, seed), so a round never
	// applies entries those are replacing. Lock order: shipMu, replayMu,
	// recvMu, the partitions.
	replayMu sync.Mutex

	dirtyMu     sync.Mutex
	shipDirty   map[int]struct{} // primaries with committed entries not yet acked
	replayDirty map[int]struct{} // secondaries with received entries not yet replayed
	shipKick    chan struct{}
	replayKick  chan struct{}

	// progress is closed and replaced whenever replay advances, waking
	// flush-replay long polls.
	progressMu sync.Mutex
	progress   chan struct{}

	// sourceSeenAt (secondary) is the SentAt of the last shipment or
	// heartbeat received from the primary; lastReport (primary) is when this
	// stamp last reported to the peer. Both guarded by dirtyMu.
	sourceSeenAt time.Time
	lastReport   time.Time
}

func newAccount(spec AccountSpec) *account {
	a := &account{
		spec:        spec,
		parts:       make([]*partition, spec.Partitions),
		shipDirty:   map[int]struct{}{},
		replayDirty: map[int]struct{}{},
		shipKick:    make(chan struct{}, 1),
		replayKick:  make(chan struct{}, 1),
		progress:    make(chan struct{}),
	}
	for i := range a.parts {
		a.parts[i] = &partition{
			id:       i,
			role:     spec.Role,
			epoch:    spec.Epoch,
			shipping: spec.Role == RolePrimary,
		}
	}
	return a
}

func kick(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// markShipDirty queues ps for the shipper and wakes it.
func (a *account) markShipDirty(ps []int) {
	a.addDirty(&a.shipDirty, ps)
	kick(a.shipKick)
}

// markReplayDirty queues ps for the replayer and wakes it.
func (a *account) markReplayDirty(ps []int) {
	a.addDirty(&a.replayDirty, ps)
	kick(a.replayKick)
}

// addDirty adds ps to a dirty set. The set is read under dirtyMu: takeDirty
// replaces it.
func (a *account) addDirty(set *map[int]struct{}, ps []int) {
	a.dirtyMu.Lock()
	for _, p := range ps {
		(*set)[p] = struct{}{}
	}
	a.dirtyMu.Unlock()
}

// takeDirty empties a dirty set and returns its partitions in order.
func (a *account) takeDirty(set *map[int]struct{}) []int {
	a.dirtyMu.Lock()
	m := *set
	if len(m) == 0 {
		a.dirtyMu.Unlock()
		return nil
	}
	*set = map[int]struct{}{}
	a.dirtyMu.Unlock()
	out := make([]int, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	sort.Ints(out)
	return out
}

// markRecovered queues the work a restart left pending: unacked entries to
// ship and received entries to replay.
func (a *account) markRecovered() {
	var ship, replay []int
	for _, p := range a.parts {
		if p.role == RolePrimary && p.shipping && p.lastAcked < p.durable.Load() {
			ship = append(ship, p.id)
		}
		if p.lastReplayed < p.lastReceived {
			replay = append(replay, p.id)
		}
	}
	if len(ship) > 0 {
		a.markShipDirty(ship)
	}
	if len(replay) > 0 {
		a.markReplayDirty(replay)
	}
}

// notifyProgress wakes everyone waiting for replay progress.
func (a *account) notifyProgress() {
	a.progressMu.Lock()
	close(a.progress)
	a.progress = make(chan struct{})
	a.progressMu.Unlock()
}

func (a *account) progressCh() <-chan struct{} {
	a.progressMu.Lock()
	defer a.progressMu.Unlock()
	return a.progress
}

// lockParts locks the given partitions (ascending, no duplicates) in order,
// the one lock order every multi-partition caller uses.
func (a *account) lockParts(ps []int) {
	for _, p := range ps {
		a.parts[p].mu.Lock()
	}
}

func (a *account) unlockParts(ps []int) {
	for _, p := range ps {
		a.parts[p].mu.Unlock()
	}
}

// anyShipping reports whether some partition still replicates to the peer.
func (a *account) anyShipping() bool {
	for _, p := range a.parts {
		p.mu.Lock()
		ship := p.role == RolePrimary && p.shipping
		p.mu.Unlock()
		if ship {
			return true
		}
	}
	return false
}

// recordReport keeps, on a secondary, what the primary reported of its
// LastWritten and when, for the data-loss ledger of an unplanned failover.
func (a *account) recordReport(req *ReplicateRequest) {
	for pi, w := range req.Written {
		if pi < 0 || pi >= len(a.parts) {
			continue
		}
		p := a.parts[pi]
		p.mu.Lock()
		if p.role == RoleSecondary {
			p.noteSourceWrittenLocked(w, req.SentAt)
		}
		p.mu.Unlock()
	}
	a.dirtyMu.Lock()
	if req.SentAt.After(a.sourceSeenAt) {
		a.sourceSeenAt = req.SentAt
	}
	a.dirtyMu.Unlock()
}

// sourceSample is one report of the source's LastWritten, at its clock.
type sourceSample struct {
	at      time.Time
	written uint64
}

// The source's write rate is measured over the last rateWindow of its
// reports, sampled at most every sampleEvery.
const (
	rateWindow  = 5 * time.Second
	sampleEvery = 250 * time.Millisecond
)

// noteSourceWrittenLocked records the source's report that it had written
// w at its clock's at.
func (p *partition) noteSourceWrittenLocked(w uint64, at time.Time) {
	p.sourceWritten = max(p.sourceWritten, w)
	if n := len(p.samples); n > 0 && at.Before(p.samples[n-1].at) {
		return // a heartbeat overtaken by a later shipment: only its value counts
	}
	s := sourceSample{at: at, written: p.sourceWritten}
	if n := len(p.samples); n >= 2 && p.samples[n-1].at.Sub(p.samples[n-2].at) < sampleEvery {
		p.samples[n-1] = s // the newest report stands for the samples too close to the previous one
		return
	}
	p.samples = append(p.samples, s)
	// Keep one sample older than the window: the baseline of the rate.
	drop := 0
	for drop+1 < len(p.samples) && at.Sub(p.samples[drop+1].at) > rateWindow {
		drop++
	}
	p.samples = append(p.samples[:0], p.samples[drop:]...)
}

// sourceRateAt is the source's write rate, ops/s, over the rateWindow
// before seen (its last report): what it wrote from the baseline sample to
// its last report, over the time from the baseline to seen, so that a
// source idle before seen counts as slow.
func (p *partition) sourceRateAt(seen time.Time) float64 {
	if len(p.samples) < 2 {
		return 0
	}
	base := p.samples[0]
	for _, s := range p.samples {
		if !s.at.After(seen.Add(-rateWindow)) {
			base = s
		}
	}
	span := seen.Sub(base.at)
	last := p.samples[len(p.samples)-1]
	if span <= 0 || last.written <= base.written {
		return 0
	}
	return float64(last.written-base.written) / span.Seconds()
}

// sourceSeen is when the primary last reported (secondary side).
func (a *account) sourceSeen() time.Time {
	a.dirtyMu.Lock()
	defer a.dirtyMu.Unlock()
	return a.sourceSeenAt
}
