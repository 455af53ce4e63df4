package traffic

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/location/locationtest"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/stamp/stamptest"
)

const acct = "acct"

type env struct {
	loc    *locationtest.Local
	lc     *location.Client
	a, b   *stamptest.Local
	ac, bc *stamp.Client
}

// newEnv starts a location service and two stamps (stamp-a primary,
// stamp-b secondary) and provisions acct with the given partitions.
func newEnv(t *testing.T, partitions int) *env {
	t.Helper()
	ctx := context.Background()
	loc, err := locationtest.StartLocal(location.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = loc.Close() })
	e := &env{loc: loc, lc: location.NewClient(loc.URL(), nil)}
	for _, name := range []string{"stamp-a", "stamp-b"} {
		l, err := stamptest.StartLocal(stamp.Config{Name: name, LocationURL: loc.URL(), EnableFaults: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		if err := e.lc.RegisterStamp(ctx, location.Stamp{Name: name, URL: l.URL()}); err != nil {
			t.Fatal(err)
		}
		if name == "stamp-a" {
			e.a, e.ac = l, stamp.NewClient(l.URL(), nil)
		} else {
			e.b, e.bc = l, stamp.NewClient(l.URL(), nil)
		}
	}
	if _, err := location.Provision(ctx, e.lc, e.ac, e.bc, "stamp-a", "stamp-b", acct, partitions); err != nil {
		t.Fatalf("provision: %v", err)
	}
	return e
}

// waitFor polls cond until it holds or a generous deadline passes. The
// deadline only guards against a hang; no assertion depends on timing.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func acksBy(g *Generator, stampName string) int64 { return g.Stats().AcksByStamp[stampName] }

func startGen(t *testing.T, e *env, workers int) *Generator {
	t.Helper()
	g := New(Config{Location: e.lc, Account: acct, Workers: workers, MaxBackoff: 20 * time.Millisecond})
	if err := g.Start(context.Background()); err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { g.Stop() })
	return g
}

func audit(t *testing.T, e *env, acks []Ack) AuditReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Audit(ctx, e.lc, acct, acks, AuditConfig{BatchSize: 97}) // small batches exercise batching
	if err != nil {
		t.Fatalf("audit: %v", err)
	}
	return rep
}

// failover moves acct from one stamp to the other the clean way: fence,
// flush-send, flush-replay to the fenced LSNs, promote, move the location.
func failover(t *testing.T, e *env, from, to *stamp.Client, fromName, toName string, epoch uint64) {
	t.Helper()
	ctx := context.Background()
	fr, err := from.Fence(ctx, acct, stamp.ControlRequest{All: true})
	if err != nil {
		t.Fatalf("fence: %v", err)
	}
	targets := map[int]uint64{}
	for _, r := range fr.Results {
		targets[r.Partition] = r.LSN
	}
	if _, err := from.FlushSend(ctx, acct, stamp.ControlRequest{All: true}); err != nil {
		t.Fatalf("flush-send: %v", err)
	}
	waitFor(t, "flush-replay to reach the fenced LSNs", func() bool {
		res, err := to.FlushReplay(ctx, acct, stamp.ControlRequest{All: true, Targets: targets, WaitMillis: 1000})
		if err != nil {
			t.Fatalf("flush-replay: %v", err)
		}
		for _, r := range res.Results {
			if !r.Done {
				return false
			}
		}
		return true
	})
	if _, err := to.Promote(ctx, acct, stamp.ControlRequest{All: true, Epoch: epoch}); err != nil {
		t.Fatalf("promote: %v", err)
	}
	if _, err := e.lc.Move(ctx, acct, location.MoveRequest{From: fromName, To: toName, ExpectedEpoch: epoch - 1, Epoch: epoch}); err != nil {
		t.Fatalf("move: %v", err)
	}
}

func TestTrafficFlowsAndAuditClean(t *testing.T) {
	e := newEnv(t, 4)
	var log bytes.Buffer
	g := New(Config{Location: e.lc, Account: acct, Workers: 4, AckLog: &log})
	if err := g.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "300 acks", func() bool { return g.AckCount() >= 300 })
	st := g.Stop()
	if err := g.Err(); err != nil {
		t.Fatal(err)
	}
	acks := g.Acked()
	if int64(len(acks)) != st.Acks || st.Acks < 300 {
		t.Fatalf("acks %d, stats %+v", len(acks), st)
	}
	if st.AcksByStamp["stamp-a"] != st.Acks {
		t.Fatalf("acks by stamp %v, want all on stamp-a", st.AcksByStamp)
	}
	parts := map[int]bool{}
	keys := map[string]bool{}
	for _, a := range acks {
		if a.Epoch != 1 || a.Stamp != "stamp-a" || a.Value != ValueFor(a.Key) || a.LSN == 0 {
			t.Fatalf("odd ack %+v", a)
		}
		if keys[a.Key] {
			t.Fatalf("key %s acknowledged twice", a.Key)
		}
		keys[a.Key] = true
		parts[a.Partition] = true
	}
	if len(parts) != 4 {
		t.Fatalf("writes reached partitions %v, want all 4", parts)
	}
	// The ack log holds exactly the acks.
	logged, err := ReadAcks(&log)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(normalize(logged), normalize(acks)) {
		t.Fatalf("ack log differs from Acked(): %d vs %d records", len(logged), len(acks))
	}
	rep := audit(t, e, acks)
	if !rep.OK() || rep.Checked != len(acks) || rep.Stamp != "stamp-a" {
		t.Fatalf("audit:\n%s", rep)
	}
}

// normalize drops the monotonic clock reading, which JSON does not keep.
func normalize(acks []Ack) []Ack {
	out := append([]Ack(nil), acks...)
	for i := range out {
		out[i].At = out[i].At.Round(0)
	}
	return out
}

func TestFailoverRedirectsFollowedNoLoss(t *testing.T) {
	e := newEnv(t, 8)
	g := startGen(t, e, 6)
	waitFor(t, "200 acks on stamp-a", func() bool { return acksBy(g, "stamp-a") >= 200 })
	failover(t, e, e.ac, e.bc, "stamp-a", "stamp-b", 2)
	waitFor(t, "200 acks on stamp-b", func() bool { return acksBy(g, "stamp-b") >= 200 })
	st := g.Stop()
	acks := g.Acked()
	for _, a := range acks {
		if a.Stamp == "stamp-b" && a.Epoch != 2 || a.Stamp == "stamp-a" && a.Epoch != 1 {
			t.Fatalf("ack at the wrong epoch: %+v", a)
		}
	}
	if st.Resolves < 2 {
		t.Fatalf("the generator never re-resolved: %+v", st)
	}
	rep := audit(t, e, acks)
	if !rep.OK() || rep.Stamp != "stamp-b" || rep.Epoch != 2 || rep.Checked != len(acks) {
		t.Fatalf("audit after a clean failover:\n%s", rep)
	}
	t.Logf("stats: %+v", st)
}

// The location service points at the secondary (as it would right after a
// lost move answer): the stamp's 421 hint must get writes to the primary.
func TestRedirectFollowsStampHint(t *testing.T) {
	e := newEnv(t, 2)
	ctx := context.Background()
	const other = "misrouted"
	if err := e.bc.CreateAccount(ctx, stamp.AccountSpec{Account: other, Partitions: 2, Role: stamp.RoleSecondary, Epoch: 1, Peer: e.a.URL()}); err != nil {
		t.Fatal(err)
	}
	if err := e.ac.CreateAccount(ctx, stamp.AccountSpec{Account: other, Partitions: 2, Role: stamp.RolePrimary, Epoch: 1, Peer: e.b.URL()}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.lc.CreateAccount(ctx, location.CreateRequest{Account: other, Partitions: 2, Primary: "stamp-b", Secondary: "stamp-a"}); err != nil {
		t.Fatal(err)
	}
	g := New(Config{Location: e.lc, Account: other, Workers: 2, MaxBackoff: 5 * time.Millisecond})
	if err := g.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer g.Stop()
	waitFor(t, "50 acks", func() bool { return g.AckCount() >= 50 })
	st := g.Stop()
	if st.Redirects == 0 || st.Retries[ReasonNotPrimary] == 0 {
		t.Fatalf("no redirect counted: %+v", st)
	}
	if st.AcksByStamp["stamp-a"] != st.Acks {
		t.Fatalf("acks went to %v, want all on stamp-a", st.AcksByStamp)
	}
}

func TestAuditFindsDeletedAndChangedKeys(t *testing.T) {
	e := newEnv(t, 4)
	g := startGen(t, e, 4)
	waitFor(t, "500 acks", func() bool { return g.AckCount() >= 500 })
	g.Stop()
	acks := g.Acked()
	ctx := context.Background()
	var deleted []string
	for _, a := range acks[:7] {
		if _, err := e.ac.Delete(ctx, acct, a.Key, 1); err != nil {
			t.Fatal(err)
		}
		deleted = append(deleted, a.Key)
	}
	for _, a := range acks[100:103] {
		if _, err := e.ac.Put(ctx, acct, a.Key, "tampered", 1); err != nil {
			t.Fatal(err)
		}
	}
	rep := audit(t, e, acks)
	if rep.OK() || rep.Lost != 7 || rep.Mismatched != 3 || rep.Checked != len(acks) {
		t.Fatalf("audit:\n%s", rep)
	}
	sort.Strings(deleted)
	if !reflect.DeepEqual(rep.LostKeys, deleted) {
		t.Fatalf("lost keys %v, want %v", rep.LostKeys, deleted)
	}
	for _, m := range rep.Mismatches {
		if m.Got != "tampered" || m.Want != ValueFor(m.Key) {
			t.Fatalf("mismatch %+v", m)
		}
	}
	// The list is capped but the count is not.
	rep2, err := Audit(ctx, e.lc, acct, acks, AuditConfig{ListLimit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Lost != 7 || len(rep2.LostKeys) != 2 || len(rep2.Mismatches) != 2 {
		t.Fatalf("capped audit: %+v", rep2)
	}
}

// A failover without flushing loses exactly the writes the new primary had
// not replayed, and the audit must count exactly those.
func TestAuditCountsUnreplicatedLossExactly(t *testing.T) {
	e := newEnv(t, 4)
	ctx := context.Background()
	g := startGen(t, e, 4)
	waitFor(t, "200 acks", func() bool { return g.AckCount() >= 200 })
	// Cut replication: stamp-b refuses every shipment from now on.
	if err := e.bc.AddFault(ctx, stamp.Fault{Scope: "replication", ErrorRate: 1}); err != nil {
		t.Fatal(err)
	}
	before := g.AckCount()
	waitFor(t, "200 more acks", func() bool { return g.AckCount() >= before+200 })
	if _, err := e.ac.Fence(ctx, acct, stamp.ControlRequest{All: true}); err != nil {
		t.Fatal(err)
	}
	// Replay whatever had been received, then promote; a shipment accepted
	// just before the fault may land late, so retry on not_replayed.
	waitFor(t, "promote of stamp-b", func() bool {
		if _, err := e.bc.FlushReplay(ctx, acct, stamp.ControlRequest{All: true, WaitMillis: 1000}); err != nil {
			t.Fatalf("flush-replay: %v", err)
		}
		_, err := e.bc.Promote(ctx, acct, stamp.ControlRequest{All: true, Epoch: 2})
		if stamp.IsCode(err, stamp.CodeNotReplayed) {
			return false
		}
		if err != nil {
			t.Fatalf("promote: %v", err)
		}
		return true
	})
	if _, err := e.lc.Move(ctx, acct, location.MoveRequest{From: "stamp-a", To: "stamp-b", ExpectedEpoch: 1, Epoch: 2}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "100 acks on stamp-b", func() bool { return acksBy(g, "stamp-b") >= 100 })
	g.Stop()
	acks := g.Acked()

	st, err := e.bc.Status(ctx, acct, nil)
	if err != nil {
		t.Fatal(err)
	}
	cutoff := map[int]uint64{}
	for _, p := range st.Partitions {
		cutoff[p.Partition] = p.LastReplayed
	}
	want := 0
	for _, a := range acks {
		if a.Stamp == "stamp-a" && a.LSN > cutoff[a.Partition] {
			want++
		}
	}
	if want == 0 {
		t.Fatalf("nothing was unreplicated; cutoffs %v", cutoff)
	}
	rep := audit(t, e, acks)
	if rep.Lost != want || rep.Mismatched != 0 || len(rep.SplitBrain) != 0 {
		t.Fatalf("audit lost %d, want exactly %d unreplicated:\n%s", rep.Lost, want, rep)
	}
	t.Logf("lost %d of %d acks, as unreplicated", rep.Lost, len(acks))
}

func TestCheckSplitBrain(t *testing.T) {
	base := []Ack{
		{Key: "k1", Stamp: "a", Epoch: 1, Partition: 0, LSN: 1},
		{Key: "k2", Stamp: "a", Epoch: 1, Partition: 0, LSN: 2},
		{Key: "k3", Stamp: "b", Epoch: 2, Partition: 0, LSN: 2}, // after failover LSNs continue
		{Key: "k1", Stamp: "b", Epoch: 2, Partition: 0, LSN: 3}, // rewrite at a new epoch is fine
	}
	cases := []struct {
		name  string
		extra []Ack
		kinds []string
	}{
		{"clean", nil, nil},
		{"key on two stamps same epoch", []Ack{{Key: "k2", Stamp: "b", Epoch: 1, Partition: 0, LSN: 9}},
			[]string{KindKeyTwoStamps, KindPartitionTwoPrimaries}},
		{"lsn reused", []Ack{{Key: "k9", Stamp: "a", Epoch: 1, Partition: 0, LSN: 2}}, []string{KindLSNTwoKeys}},
		{"two primaries", []Ack{{Key: "k8", Stamp: "a", Epoch: 2, Partition: 0, LSN: 7}}, []string{KindPartitionTwoPrimaries}},
		{"same lsn other partition is fine", []Ack{{Key: "k7", Stamp: "a", Epoch: 1, Partition: 1, LSN: 2}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := CheckSplitBrain(append(append([]Ack(nil), base...), tc.extra...))
			var kinds []string
			for _, x := range v {
				kinds = append(kinds, x.Kind)
			}
			if !reflect.DeepEqual(kinds, tc.kinds) {
				t.Fatalf("kinds %v, want %v (%v)", kinds, tc.kinds, v)
			}
		})
	}
}

// An audit of no acknowledged write proves nothing: it fails, and says why.
func TestAuditOfNoAcksFails(t *testing.T) {
	e := newEnv(t, 2)
	for _, acks := range [][]Ack{nil, {}} {
		rep := audit(t, e, acks)
		if rep.OK() || rep.Err() == nil {
			t.Fatalf("an audit of 0 acks passed:\n%s", rep)
		}
		if !strings.Contains(rep.Err().Error(), "nothing was acknowledged: the traffic never reached the account") {
			t.Fatalf("error %q does not say nothing was acknowledged", rep.Err())
		}
		s := rep.String()
		if !strings.HasPrefix(s, "audit FAIL") || !strings.Contains(s, "nothing was acknowledged") {
			t.Fatalf("report does not fail for 0 acks:\n%s", s)
		}
	}
	// One acknowledged write that is there passes.
	ctx := context.Background()
	if _, err := e.ac.Put(ctx, acct, "k", "v", 1); err != nil {
		t.Fatal(err)
	}
	rep := audit(t, e, []Ack{{Account: acct, Key: "k", Value: "v"}})
	if !rep.OK() || rep.Err() != nil || !strings.HasPrefix(rep.String(), "audit PASS") {
		t.Fatalf("an audit of 1 ack found:\n%s", rep)
	}
}

func TestAuditRejectsForeignAcks(t *testing.T) {
	e := newEnv(t, 1)
	_, err := Audit(context.Background(), e.lc, acct, []Ack{{Account: "other", Key: "k"}}, AuditConfig{})
	if err == nil {
		t.Fatal("audit accepted an ack of another account")
	}
}

func TestStopIsIdempotentAndConcurrentSafe(t *testing.T) {
	e := newEnv(t, 2)
	g := startGen(t, e, 2)
	waitFor(t, "10 acks", func() bool { return g.AckCount() >= 10 })
	var wg sync.WaitGroup
	res := make([]Stats, 2)
	for range 3 {
		wg.Add(1)
		go func() { defer wg.Done(); _ = g.Stats(); _ = g.Acked() }()
	}
	wg.Wait()
	res[0] = g.Stop()
	res[1] = g.Stop()
	if fmt.Sprint(res[0]) != fmt.Sprint(res[1]) {
		t.Fatalf("second Stop answered differently: %+v vs %+v", res[0], res[1])
	}
}
