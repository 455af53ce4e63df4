package stamp

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/http"
	"sort"
	"testing"
	"time"

	"go.etcd.io/bbolt"
)

// TestReprotectAfterAnUnplannedFailover runs the stamp's side of a
// reprotect: the old primary, cut off, took writes the new primary never
// got; demote moves exactly those to the recovered area, restore rewinds
// their keys to the new primary's values, protect ships the new primary's
// writes back, and both stamps end up holding the same data.
func TestReprotectAfterAnUnplannedFailover(t *testing.T) {
	const parts = 4
	p := newPair(t, parts, Config{}, Config{})
	ctx := context.Background()
	putN(t, p.ca, p.acct, 40)
	eventually(t, 10*time.Second, "catch-up", func() bool { return p.caughtUp(t) })

	// Cut replication; the old primary goes on taking writes: they diverge.
	must(t, p.cb.AddFault(ctx, Fault{Scope: scopeReplication, Unreachable: true}))
	diverged := map[string]bool{}
	for i := range 30 {
		k := fmt.Sprintf("diverged-%d", i)
		_, err := p.ca.Put(ctx, p.acct, k, "old-primary", 0)
		must(t, err)
		diverged[k] = true
	}
	// Overwrite a replicated key too: its rewind must bring the old value back.
	_, err := p.ca.Put(ctx, p.acct, "key-00001", "overwritten-on-old-primary", 0)
	must(t, err)
	diverged["key-00001"] = true

	// Unplanned failover: B replays what it received and is promoted.
	_, err = p.cb.FlushReplay(ctx, p.acct, ControlRequest{All: true, WaitMillis: 5000})
	must(t, err)
	_, err = p.cb.Promote(ctx, p.acct, ControlRequest{All: true, Epoch: 2})
	must(t, err)
	must(t, p.cb.ClearFaults(ctx))
	targets := map[int]uint64{}
	for _, ps := range status(t, p.cb, p.acct).Partitions {
		targets[ps.Partition] = ps.LastReplayed
	}
	_, err = p.cb.Put(ctx, p.acct, "new-on-b", "v", 2)
	must(t, err)

	// Demote: the diverged writes move, once; a repeat answers the same.
	var res ControlResponse
	for range 2 {
		res, err = p.ca.Demote(ctx, p.acct, ControlRequest{All: true, Epoch: 2, Targets: targets})
		must(t, err)
	}
	recovered := 0
	for _, r := range res.Results {
		recovered += r.Recovered
		if r.Status.Role != RoleSecondary || r.Status.Epoch != 2 || r.LSN != targets[r.Partition] {
			t.Fatalf("partition %d after demote: %+v", r.Partition, r)
		}
	}
	var keys []string
	must(t, p.ca.Recovered(ctx, p.acct, func(e RecoveredEntry) error {
		keys = append(keys, e.Key)
		if e.Epoch != 1 || e.LSN <= targets[e.Partition] {
			t.Fatalf("recovered entry %+v: want epoch 1, past LSN %d", e, targets[e.Partition])
		}
		return nil
	}))
	if recovered != len(diverged) || len(keys) != len(diverged) {
		t.Fatalf("recovered %d (listed %d), want the %d diverged writes", recovered, len(keys), len(diverged))
	}
	for _, k := range keys {
		if !diverged[k] {
			t.Fatalf("recovered %q, which did not diverge", k)
		}
	}
	// Writes to the demoted stamp go to the new primary.
	_, err = p.ca.Put(ctx, p.acct, "late", "x", 0)
	wantAPIError(t, err, http.StatusMisdirectedRequest, CodeNotPrimary)

	// Restore the diverged keys to what the new primary holds, then protect.
	var values []RestoreValue
	for k := range diverged {
		rr, err := p.cb.Read(ctx, p.acct, []string{k})
		must(t, err)
		v, ok := rr.Values[k]
		values = append(values, RestoreValue{Key: k, Value: v.Value, LSN: v.LSN, Deleted: !ok})
	}
	must(t, p.ca.Restore(ctx, p.acct, values))
	_, err = p.cb.Protect(ctx, p.acct, ControlRequest{All: true, Targets: targets})
	must(t, err)
	eventually(t, 10*time.Second, "reverse replication", func() bool {
		b := status(t, p.cb, p.acct)
		for i, ap := range status(t, p.ca, p.acct).Partitions {
			if ap.LastReplayed != b.Partitions[i].LastWritten {
				return false
			}
		}
		return true
	})
	if a, b := dump(t, p.a.Server, p.acct), dump(t, p.b.Server, p.acct); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("after reprotect the stamps differ:\nold primary %v\nnew primary %v", a, b)
	}
}

// dump reads every key and value of an account's data.
func dump(t *testing.T, s *Server, acct string) []string {
	t.Helper()
	var out []string
	must(t, s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(accountBucketName(acct)).Bucket(bucketData).ForEach(func(k, v []byte) error {
			val, err := decodeValue(v)
			out = append(out, fmt.Sprintf("%s=%s@%d", k, val.Value, val.LSN))
			return err
		})
	}))
	sort.Strings(out)
	return out
}

// TestSeedFromThePrimary: a secondary that holds nothing is seeded from a
// snapshot of its primary, then replication streams on from there.
func TestSeedFromThePrimary(t *testing.T) {
	p := newPair(t, 4, Config{}, Config{})
	ctx := context.Background()
	must(t, p.cb.AddFault(ctx, Fault{Scope: scopeReplication, ErrorRate: 1}))
	putN(t, p.ca, p.acct, 500)
	if st := status(t, p.cb, p.acct); st.Partitions[0].LastReceived != 0 {
		t.Fatalf("the secondary should hold nothing yet: %+v", st.Partitions[0])
	}
	res, err := p.cb.Seed(ctx, p.acct, ControlRequest{All: true})
	must(t, err)
	var seeded int64
	for _, r := range res.Results {
		seeded += r.SeededBytes
	}
	if seeded == 0 {
		t.Fatal("seed reported no bytes copied")
	}
	must(t, p.cb.ClearFaults(ctx))
	putN(t, p.ca, p.acct, 50) // overwrites: streamed after the snapshot
	eventually(t, 10*time.Second, "catch-up after the seed", func() bool { return p.caughtUp(t) })
	if a, b := dump(t, p.a.Server, p.acct), dump(t, p.b.Server, p.acct); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("after the seed the stamps differ")
	}
	_, err = p.ca.Seed(ctx, p.acct, ControlRequest{All: true})
	wantAPIError(t, err, http.StatusConflict, CodeConflict) // a primary is not seeded
}

// TestLogIsPruned: entries the secondary durably received (on the primary)
// and replayed (on the secondary) are dropped, keeping LogRetain of them.
func TestLogIsPruned(t *testing.T) {
	p := newPair(t, 2, Config{LogRetain: 5}, Config{LogRetain: 5})
	putN(t, p.ca, p.acct, 200)
	eventually(t, 10*time.Second, "catch-up", func() bool { return p.caughtUp(t) })
	for _, s := range []*Server{p.a.Server, p.b.Server} {
		eventually(t, 10*time.Second, "the log pruned to 5 entries a partition", func() bool {
			n := logLen(t, s, p.acct)
			return n[0] <= 5 && n[1] <= 5
		})
	}
	// Flush-send still works from where the peer stands.
	putN(t, p.ca, p.acct, 10)
	_, err := p.ca.FlushSend(context.Background(), p.acct, ControlRequest{All: true})
	must(t, err)
}

// logLen counts each partition's log entries.
func logLen(t *testing.T, s *Server, acct string) map[int]int {
	t.Helper()
	n := map[int]int{}
	must(t, s.db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(accountBucketName(acct)).Bucket(bucketLog).ForEach(func(k, _ []byte) error {
			n[int(binary.BigEndian.Uint32(k))]++
			return nil
		})
	}))
	return n
}
