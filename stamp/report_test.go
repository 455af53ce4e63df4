package stamp

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestSecondaryKnowsWhatTheSourceWrote: the primary reports its LastWritten
// with shipments and heartbeats, so the secondary knows the range it is
// missing (even before the entries arrive) and how fresh that knowledge is:
// the data-loss ledger of an unplanned failover.
func TestSecondaryKnowsWhatTheSourceWrote(t *testing.T) {
	p := newPair(t, 2, Config{ReplicationBatch: 1, ReplicationDelay: 20 * time.Millisecond, HeartbeatInterval: 20 * time.Millisecond}, Config{})
	ctx := context.Background()
	for i := range 40 {
		_, err := p.ca.Put(ctx, p.acct, fmt.Sprintf("k%d", i), "v", 0)
		must(t, err)
	}
	var written uint64
	for _, ps := range status(t, p.ca, p.acct).Partitions {
		written += ps.LastWritten
	}
	eventually(t, 10*time.Second, "secondary learns the source's LastWritten", func() bool {
		var known uint64
		for _, ps := range status(t, p.cb, p.acct).Partitions {
			if ps.SourceWritten < ps.LastReceived {
				t.Fatalf("partition %d: source_written %d below last_received %d", ps.Partition, ps.SourceWritten, ps.LastReceived)
			}
			known += ps.SourceWritten
		}
		return known == written
	})
	// With nothing to ship, heartbeats keep the knowledge fresh.
	first := status(t, p.cb, p.acct).Partitions[0].SourceSeenAt
	if first.IsZero() {
		t.Fatal("source_seen_at not set on the secondary")
	}
	eventually(t, 10*time.Second, "a heartbeat refreshes source_seen_at", func() bool {
		return status(t, p.cb, p.acct).Partitions[0].SourceSeenAt.After(first)
	})
}

// TestSourceWriteRate: the secondary derives the source's write rate from
// the LastWritten it reports, over a second or more of reports, and counts
// a source that reported nothing new for 2 s as idle.
func TestSourceWriteRate(t *testing.T) {
	var p partition
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	reports := []struct {
		at      time.Duration
		written uint64
	}{{0, 0}, {500 * time.Millisecond, 60}, {time.Second, 100}, {1500 * time.Millisecond, 180}, {2 * time.Second, 300}}
	for _, r := range reports {
		p.noteSourceWrittenLocked(r.written, t0.Add(r.at))
	}
	if got := p.sourceRateAt(t0.Add(2 * time.Second)); got != 200 {
		t.Fatalf("rate over the last second of reports: got %v ops/s, want 200", got)
	}
	// Heartbeats with nothing new: still the rate before contact was lost
	// for a moment, then idle.
	p.noteSourceWrittenLocked(300, t0.Add(2500*time.Millisecond))
	if got := p.sourceRateAt(t0.Add(2500 * time.Millisecond)); got != 200 {
		t.Fatalf("half a second after the last write: got %v, want 200", got)
	}
	if got := p.sourceRateAt(t0.Add(5 * time.Second)); got != 0 {
		t.Fatalf("3 s after the last write: got %v, want 0 (idle)", got)
	}
	if p.sourceWritten != 300 {
		t.Fatalf("source written = %d, want 300", p.sourceWritten)
	}
}
