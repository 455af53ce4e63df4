package stamp

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func putN(t testing.TB, c *Client, acct string, n int) {
	t.Helper()
	ops := make([]BatchOp, n)
	for i := range ops {
		ops[i] = BatchOp{Op: OpPut, Key: fmt.Sprintf("key-%05d", i), Value: fmt.Sprintf("value-%d", i)}
	}
	_, err := c.Batch(context.Background(), acct, ops, 0)
	must(t, err)
}

// twice calls a control op twice and checks both answers are identical,
// apart from the replication progress the background shipper and replayer
// may make in between.
func twice(t *testing.T, c *Client, acct, op string, req ControlRequest) ControlResponse {
	t.Helper()
	ctx := context.Background()
	first, err := c.Control(ctx, acct, op, req)
	must(t, err)
	second, err := c.Control(ctx, acct, op, req)
	must(t, err)
	stable := func(r ControlResponse) ControlResponse {
		r.Results = append([]ControlResult(nil), r.Results...)
		for i := range r.Results {
			s := &r.Results[i].Status
			s.LastSent, s.LastAcked, s.LastAckedAt, s.LastReceived, s.LastReplayed = 0, 0, time.Time{}, 0, 0
		}
		return r
	}
	if !reflect.DeepEqual(stable(first), stable(second)) {
		t.Fatalf("%s twice gave different answers:\n%+v\n%+v", op, first, second)
	}
	return first
}

func TestControlIdempotent(t *testing.T) {
	p := newPair(t, 3, Config{}, Config{})
	putN(t, p.ca, p.acct, 90)
	eventually(t, 10*time.Second, "catch-up", func() bool { return p.caughtUp(t) })
	all := ControlRequest{All: true}

	twice(t, p.ca, p.acct, CtlFence, all)
	twice(t, p.ca, p.acct, CtlUnfence, ControlRequest{All: true, Epoch: 1})
	if st := status(t, p.ca, p.acct); st.Partitions[0].Fenced {
		t.Fatal("still fenced after unfence")
	}
	putN(t, p.ca, p.acct, 30) // rewrites: new LSNs, not yet necessarily shipped
	fenced := twice(t, p.ca, p.acct, CtlFence, all)

	// flush-send: the second call finds nothing pending and ships nothing,
	// so the send timestamps stay those of the first call.
	sent := twice(t, p.ca, p.acct, CtlFlushSend, all)
	for i, r := range sent.Results {
		if r.LSN != fenced.Results[i].LSN {
			t.Fatalf("flush-send partition %d: LSN %d, want %d", i, r.LSN, fenced.Results[i].LSN)
		}
	}
	replayed := twice(t, p.cb, p.acct, CtlFlushReplay, ControlRequest{All: true, WaitMillis: 30000})
	for _, r := range replayed.Results {
		if !r.Done {
			t.Fatalf("flush-replay partition %d not done", r.Partition)
		}
	}
	promoted := twice(t, p.cb, p.acct, CtlPromote, ControlRequest{All: true, Epoch: 2})
	for i, r := range promoted.Results {
		if r.LSN != sent.Results[i].LSN {
			t.Fatalf("promote partition %d: LSN %d, want %d", i, r.LSN, sent.Results[i].LSN)
		}
	}
	// Flush-replay on the promoted partitions still answers the same.
	again, err := p.cb.FlushReplay(context.Background(), p.acct, ControlRequest{All: true})
	must(t, err)
	for i, r := range again.Results {
		if !r.Done || r.LSN != replayed.Results[i].LSN {
			t.Fatalf("flush-replay after promote: %+v", r)
		}
	}
}

func TestPerPartitionRoutes(t *testing.T) {
	p := newPair(t, 4, Config{}, Config{})
	putN(t, p.ca, p.acct, 40)
	code, _, body := raw(t, http.MethodPost, p.a.URL()+"/v1/accounts/"+p.acct+"/partitions/2/fence", "", nil, nil)
	if code != http.StatusOK {
		t.Fatalf("fence partition 2: %d %s", code, body)
	}
	var cr ControlResponse
	must(t, json.Unmarshal(body, &cr))
	if len(cr.Results) != 1 || cr.Results[0].Partition != 2 || !cr.Results[0].Status.Fenced {
		t.Fatalf("answer %+v", cr)
	}
	st := status(t, p.ca, p.acct)
	for _, ps := range st.Partitions {
		if ps.Fenced != (ps.Partition == 2) {
			t.Fatalf("partition %d fenced=%v", ps.Partition, ps.Fenced)
		}
	}
	code, _, body = raw(t, http.MethodPost, p.a.URL()+"/v1/accounts/"+p.acct+"/partitions/2/flush-send", "application/json", []byte(`{}`), nil)
	if code != http.StatusOK {
		t.Fatalf("flush-send partition 2: %d %s", code, body)
	}
	// A status subset comes back in ascending order.
	sub, err := p.ca.Status(context.Background(), p.acct, []int{3, 1, 3})
	must(t, err)
	if len(sub.Partitions) != 2 || sub.Partitions[0].Partition != 1 || sub.Partitions[1].Partition != 3 {
		t.Fatalf("status subset = %+v", sub.Partitions)
	}
}

func TestPromoteNeedsReplay(t *testing.T) {
	// A very slow replayer keeps entries received but unreplayed.
	p := newPair(t, 1, Config{}, Config{ReplayRate: 0.5})
	putN(t, p.ca, p.acct, 50)
	_, err := p.ca.Fence(context.Background(), p.acct, ControlRequest{All: true})
	must(t, err)
	_, err = p.ca.FlushSend(context.Background(), p.acct, ControlRequest{All: true})
	must(t, err)
	before := status(t, p.cb, p.acct)
	if before.Partitions[0].LastReplayed == before.Partitions[0].LastReceived {
		t.Skip("replayer unexpectedly caught up; cannot test not_replayed")
	}
	_, err = p.cb.Promote(context.Background(), p.acct, ControlRequest{All: true, Epoch: 2})
	wantAPIError(t, err, http.StatusConflict, CodeNotReplayed)
	if st := status(t, p.cb, p.acct); st.Partitions[0].Role != RoleSecondary || st.Partitions[0].Epoch != 1 {
		t.Fatalf("refused promote changed the partition: %+v", st.Partitions[0])
	}
	// Flush-replay answers progress without waiting.
	fr, err := p.cb.FlushReplay(context.Background(), p.acct, ControlRequest{All: true})
	must(t, err)
	if fr.Results[0].Status.ReplayTarget != 50 || fr.Results[0].Status.ReplayStartedAt.IsZero() {
		t.Fatalf("flush-replay did not record its target: %+v", fr.Results[0].Status)
	}
}

func TestThrottledReplayReachesTarget(t *testing.T) {
	p := newPair(t, 2, Config{}, Config{ReplayRate: 400})
	putN(t, p.ca, p.acct, 400)
	_, err := p.ca.Fence(context.Background(), p.acct, ControlRequest{All: true})
	must(t, err)
	_, err = p.ca.FlushSend(context.Background(), p.acct, ControlRequest{All: true})
	must(t, err)
	fr, err := p.cb.FlushReplay(context.Background(), p.acct, ControlRequest{All: true, WaitMillis: 60000})
	must(t, err)
	for _, r := range fr.Results {
		if !r.Done || r.Status.ReplayDoneAt.Before(r.Status.ReplayStartedAt) {
			t.Fatalf("partition %d: %+v", r.Partition, r)
		}
	}
}

func TestFlushSendPeerDown(t *testing.T) {
	p := newPair(t, 2, Config{}, Config{})
	peer := p.b.URL()
	must(t, p.b.Close())
	putN(t, p.ca, p.acct, 20)
	_, err := p.ca.Fence(context.Background(), p.acct, ControlRequest{All: true})
	must(t, err)
	_, err = p.ca.FlushSend(context.Background(), p.acct, ControlRequest{All: true})
	ae := wantAPIError(t, err, http.StatusServiceUnavailable, CodeUnavailable)
	if !strings.Contains(ae.Message, peer) {
		t.Fatalf("message %q does not name the peer %s", ae.Message, peer)
	}
	for _, ps := range status(t, p.ca, p.acct).Partitions {
		if ps.LastSent != ps.LastAcked {
			t.Fatalf("partition %d: LastSent %d not rewound to LastAcked %d", ps.Partition, ps.LastSent, ps.LastAcked)
		}
	}
}

func TestUnfenceChecksLocation(t *testing.T) {
	var answer atomic.Value
	answer.Store(`{"account":"acct-1","primary":"stamp-a","epoch":1}`)
	loc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/accounts/acct-1" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte(answer.Load().(string)))
	}))
	defer loc.Close()
	p := newPair(t, 2, Config{LocationURL: loc.URL}, Config{})
	ctx := context.Background()
	_, err := p.ca.Fence(ctx, p.acct, ControlRequest{All: true})
	must(t, err)
	_, err = p.ca.Unfence(ctx, p.acct, ControlRequest{All: true})
	must(t, err)
	_, err = p.ca.Fence(ctx, p.acct, ControlRequest{All: true})
	must(t, err)
	answer.Store(`{"account":"acct-1","primary":"stamp-b","epoch":2}`)
	_, err = p.ca.Unfence(ctx, p.acct, ControlRequest{All: true})
	ae := wantAPIError(t, err, http.StatusConflict, CodeStaleEpoch)
	if !strings.Contains(ae.Message, "promoted elsewhere") {
		t.Fatalf("message %q", ae.Message)
	}
	if !status(t, p.ca, p.acct).Partitions[0].Fenced {
		t.Fatal("refused unfence unfenced the partition")
	}
}

func TestLargeAccount(t *testing.T) {
	l := startLocal(t, Config{Name: "big"})
	c := NewClient(l.URL(), nil)
	ctx := context.Background()
	must(t, c.CreateAccount(ctx, AccountSpec{Account: "big", Partitions: 10000, Role: RolePrimary, Epoch: 1, Peer: "http://127.0.0.1:1"}))
	start := time.Now()
	st, err := c.Status(ctx, "big", nil)
	must(t, err)
	if len(st.Partitions) != 10000 {
		t.Fatalf("%d partitions in status", len(st.Partitions))
	}
	t.Logf("status of 10,000 partitions: %v", time.Since(start))
	ps := make([]int, 1000)
	for i := range ps {
		ps[i] = i * 10
	}
	start = time.Now()
	fr, err := c.Fence(ctx, "big", ControlRequest{Partitions: ps})
	must(t, err)
	t.Logf("fence of 1,000 partitions: %v", time.Since(start))
	for i, r := range fr.Results {
		if r.Partition != ps[i] || !r.Status.Fenced {
			t.Fatalf("result %d = %+v", i, r)
		}
	}
}

func TestPartitionOf(t *testing.T) {
	counts := make([]int, 16)
	for i := range 16000 {
		p := PartitionOf(fmt.Sprintf("key-%d", i), 16)
		if p < 0 || p >= 16 {
			t.Fatalf("partition %d out of range", p)
		}
		counts[p]++
	}
	for p, n := range counts {
		if n < 700 || n > 1300 {
			t.Errorf("partition %d got %d of 16000 keys", p, n)
		}
	}
	// Key ranges: partition follows the hash order.
	if PartitionOf("", 1) != 0 || PartitionOf("anything", 1) != 0 {
		t.Error("one partition must hold every key")
	}
}

// TestLargeFailover runs a whole fail-over of a 10,000-partition account
// with all=true and logs how long each step took.
func TestLargeFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("large account")
	}
	p := newPair(t, 10000, Config{}, Config{})
	ctx := context.Background()
	for range 4 {
		putN(t, p.ca, p.acct, 5000)
	}
	all := ControlRequest{All: true}
	step := func(name string, c *Client, op string, req ControlRequest) ControlResponse {
		start := time.Now()
		r, err := c.Control(ctx, p.acct, op, req)
		must(t, err)
		t.Logf("%s of 10,000 partitions: %v", name, time.Since(start))
		if len(r.Results) != 10000 {
			t.Fatalf("%s answered %d partitions", name, len(r.Results))
		}
		return r
	}
	step("fence", p.ca, CtlFence, all)
	sent := step("flush-send", p.ca, CtlFlushSend, all)
	replayed := step("flush-replay", p.cb, CtlFlushReplay, ControlRequest{All: true, WaitMillis: 60000})
	for i, r := range replayed.Results {
		if !r.Done || r.LSN != sent.Results[i].LSN {
			t.Fatalf("partition %d: replayed %d of %d", i, r.LSN, sent.Results[i].LSN)
		}
	}
	step("promote", p.cb, CtlPromote, ControlRequest{All: true, Epoch: 2})
	start := time.Now()
	st := status(t, p.cb, p.acct)
	t.Logf("status of 10,000 partitions: %v", time.Since(start))
	var total uint64
	for _, ps := range st.Partitions {
		total += ps.LastWritten
	}
	if total != 20000 {
		t.Fatalf("new primary continues from %d writes in total, want 20000", total)
	}
}
