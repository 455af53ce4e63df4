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
