package stamp

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
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
// the LastWritten it reports, over the last 5 s of reports, so that a
// partition written unevenly still shows its rate, and an idle one slows
// to 0.
func TestSourceWriteRate(t *testing.T) {
	var p partition
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// 200 ops/s for 2 s, reported every 100 ms (sampled every 250 ms).
	for ms := 0; ms <= 2000; ms += 100 {
		p.noteSourceWrittenLocked(uint64(ms/5), t0.Add(time.Duration(ms)*time.Millisecond))
	}
	if got := p.sourceRateAt(t0.Add(2 * time.Second)); got < 190 || got > 210 {
		t.Fatalf("rate over 2 s of reports at 200 ops/s: got %v", got)
	}
	// A burst, then nothing for a while: the rate covers the window.
	p.noteSourceWrittenLocked(400, t0.Add(2100*time.Millisecond))
	if got := p.sourceRateAt(t0.Add(4 * time.Second)); got < 90 || got > 110 {
		t.Fatalf("400 ops in the 4 s up to the last report: got %v, want about 100", got)
	}
	if got := p.sourceRateAt(t0.Add(time.Minute)); got > 10 {
		t.Fatalf("a minute later, idle: got %v, want close to 0", got)
	}
	// Old samples go, keeping one baseline before the window.
	for s := 3; s <= 60; s++ {
		p.noteSourceWrittenLocked(400+uint64(s), t0.Add(time.Duration(s)*time.Second))
	}
	if len(p.samples) > int(rateWindow/time.Second)+2 {
		t.Fatalf("%d samples kept for a %s window", len(p.samples), rateWindow)
	}
	if got := p.sourceRateAt(t0.Add(time.Minute)); got < 0.9 || got > 1.1 {
		t.Fatalf("1 op/s for the last minute: got %v", got)
	}
	if p.sourceWritten != 460 {
		t.Fatalf("source written = %d, want 460", p.sourceWritten)
	}
}

// TestHeartbeatsAreOneRequestPerPeer: a stamp's idle accounts all report to
// their peer in one heartbeat request per interval, not one each, and an
// account struck by a replication fault of its own is left out (its report
// is sent again once the fault clears).
func TestHeartbeatsAreOneRequestPerPeer(t *testing.T) {
	const accounts, interval = 50, 50 * time.Millisecond
	b := startLocal(t, Config{Name: "stamp-b"})
	var heartbeats, shipments atomic.Int64
	counted := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/internal/heartbeats":
			heartbeats.Add(1)
		case "/v1/internal/replicate":
			shipments.Add(1)
		}
		b.Server.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(counted.Close)
	a := startLocal(t, Config{Name: "stamp-a", HeartbeatInterval: interval})
	ca, cb := NewClient(a.URL(), nil), NewClient(b.URL(), nil)
	ctx := context.Background()
	must(t, cb.AddFault(ctx, Fault{Scope: "replication", Account: "hb-07", ErrorRate: 1}))
	for i := range accounts {
		name := fmt.Sprintf("hb-%02d", i)
		must(t, cb.CreateAccount(ctx, AccountSpec{Account: name, Partitions: 2, Role: RoleSecondary, Epoch: 1, Peer: a.URL()}))
		must(t, ca.CreateAccount(ctx, AccountSpec{Account: name, Partitions: 2, Role: RolePrimary, Epoch: 1, Peer: counted.URL}))
	}
	seen := func(name string) time.Time { return status(t, cb, name).Partitions[0].SourceSeenAt }
	eventually(t, 10*time.Second, "every account but the faulty one heard from", func() bool {
		for i := range accounts {
			if name := fmt.Sprintf("hb-%02d", i); name != "hb-07" && seen(name).IsZero() {
				return false
			}
		}
		return true
	})
	// Ten rounds of heartbeats (hb-00 hears from its source ten times) take
	// about ten requests, not ten per account.
	before, rounds, last := heartbeats.Load(), 0, seen("hb-00")
	eventually(t, 10*time.Second, "ten rounds of heartbeats", func() bool {
		if now := seen("hb-00"); now.After(last) {
			rounds, last = rounds+1, now
		}
		return rounds >= 10
	})
	if got := heartbeats.Load() - before; got > 2*int64(rounds)+2 {
		t.Fatalf("%d heartbeat requests for %d rounds of %d accounts: not batched", got, rounds, accounts)
	}
	if shipments.Load() != 0 {
		t.Fatalf("%d shipments of idle accounts", shipments.Load())
	}
	if !seen("hb-07").IsZero() {
		t.Fatal("the faulty account's heartbeat was recorded through its replication fault")
	}
	must(t, cb.ClearFaults(ctx))
	eventually(t, 10*time.Second, "the faulty account heard from once the fault clears", func() bool {
		return !seen("hb-07").IsZero()
	})
}
