package stamp

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

func TestReplicationCatchesUp(t *testing.T) {
	p := newPair(t, 8, Config{ReplicationBatch: 7}, Config{})
	ctx := context.Background()
	var ops []BatchOp
	for i := range 300 {
		ops = append(ops, BatchOp{Op: OpPut, Key: fmt.Sprintf("k%03d", i), Value: fmt.Sprintf("v%d", i)})
	}
	_, err := p.ca.Batch(ctx, p.acct, ops, 0)
	must(t, err)
	_, err = p.ca.Delete(ctx, p.acct, "k000", 1)
	must(t, err)
	eventually(t, 10*time.Second, "secondary to replay everything", func() bool { return p.caughtUp(t) })

	rr, err := p.cb.Read(ctx, p.acct, []string{"k000", "k001", "k299"})
	must(t, err)
	if len(rr.Missing) != 1 || rr.Missing[0] != "k000" || rr.Values["k299"].Value != "v299" || rr.Values["k001"].Value != "v1" {
		t.Fatalf("secondary read = %+v", rr)
	}
	sa := status(t, p.ca, p.acct)
	var total uint64
	for _, ps := range sa.Partitions {
		total += ps.LastWritten
		if ps.LastAckedAt.IsZero() && ps.LastWritten > 0 {
			t.Errorf("partition %d: LastAckedAt not set", ps.Partition)
		}
	}
	if total != 301 {
		t.Fatalf("sum of LastWritten = %d, want 301", total)
	}
}

func TestFailover(t *testing.T) {
	p := newPair(t, 4, Config{}, Config{ReplayRate: 2000})
	ctx := context.Background()
	for i := range 200 {
		_, err := p.ca.Put(ctx, p.acct, fmt.Sprintf("key-%d", i), fmt.Sprintf("val-%d", i), 1)
		must(t, err)
	}
	all := ControlRequest{All: true}

	fr, err := p.ca.Fence(ctx, p.acct, ControlRequest{All: true, Epoch: 1})
	must(t, err)
	targets := map[int]uint64{}
	var sum uint64
	for _, r := range fr.Results {
		if !r.Status.Fenced {
			t.Fatalf("partition %d not fenced after fence", r.Partition)
		}
		targets[r.Partition] = r.LSN
		sum += r.LSN
	}
	if sum != 200 {
		t.Fatalf("fence LSNs sum to %d, want 200", sum)
	}
	_, err = p.ca.Put(ctx, p.acct, "late", "x", 0)
	ae := wantAPIError(t, err, http.StatusServiceUnavailable, CodeFenced)
	if ae.RetryAfter != time.Second {
		t.Errorf("fenced Retry-After = %v, want 1s", ae.RetryAfter)
	}

	sr, err := p.ca.FlushSend(ctx, p.acct, all)
	must(t, err)
	for _, r := range sr.Results {
		if r.LSN != targets[r.Partition] || r.Status.LastAcked != r.LSN {
			t.Fatalf("flush-send partition %d: LSN %d acked %d, want %d", r.Partition, r.LSN, r.Status.LastAcked, targets[r.Partition])
		}
	}

	rr, err := p.cb.FlushReplay(ctx, p.acct, ControlRequest{All: true, Targets: targets, WaitMillis: 30000})
	must(t, err)
	for _, r := range rr.Results {
		if !r.Done || r.LSN != targets[r.Partition] || r.Status.ReplayDoneAt.IsZero() || r.Status.ReplayTarget != targets[r.Partition] {
			t.Fatalf("flush-replay partition %d not done: %+v", r.Partition, r)
		}
	}

	pr, err := p.cb.Promote(ctx, p.acct, ControlRequest{All: true, Epoch: 2})
	must(t, err)
	for _, r := range pr.Results {
		if r.Status.Role != RolePrimary || r.Status.Epoch != 2 || r.LSN != targets[r.Partition] || r.Status.Shipping {
			t.Fatalf("promote partition %d: %+v", r.Partition, r)
		}
	}

	// The new primary has the data and continues the LSNs.
	for i := range 200 {
		v, err := p.cb.Get(ctx, p.acct, fmt.Sprintf("key-%d", i))
		must(t, err)
		if v.Value != fmt.Sprintf("val-%d", i) {
			t.Fatalf("key-%d = %q on the new primary", i, v.Value)
		}
	}
	wr, err := p.cb.Put(ctx, p.acct, "key-0", "after", 2)
	must(t, err)
	if wr.LSN != targets[wr.Partition]+1 || wr.Epoch != 2 || wr.Stamp != "stamp-b" {
		t.Fatalf("write on new primary = %+v, want LSN %d", wr, targets[wr.Partition]+1)
	}
	// Old primary: a client at the new epoch is redirected, an old one is
	// told to wait, the new primary refuses the old epoch.
	_, err = p.ca.Put(ctx, p.acct, "key-1", "x", 2)
	ae = wantAPIError(t, err, http.StatusMisdirectedRequest, CodeNotPrimary)
	if ae.Primary != p.b.URL() {
		t.Errorf("redirect primary = %q, want %q", ae.Primary, p.b.URL())
	}
	_, err = p.ca.Put(ctx, p.acct, "key-1", "x", 1)
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeFenced)
	_, err = p.cb.Put(ctx, p.acct, "key-1", "x", 1)
	wantAPIError(t, err, http.StatusConflict, CodeStaleEpoch)
	// The old primary can no longer ship to the promoted partitions.
	_, err = p.ca.FlushSend(ctx, p.acct, all)
	if err != nil {
		t.Fatalf("flush-send with nothing pending: %v", err)
	}
}

func TestRedirectFromSecondary(t *testing.T) {
	p := newPair(t, 2, Config{}, Config{})
	code, hdr, body := raw(t, http.MethodPut, p.b.URL()+"/v1/accounts/"+p.acct+"/keys/some-key?x=1", "text/plain", []byte("v"), nil)
	if code != http.StatusMisdirectedRequest {
		t.Fatalf("status %d: %s", code, body)
	}
	if want := p.a.URL() + "/v1/accounts/" + p.acct + "/keys/some-key?x=1"; hdr.Get("Location") != want {
		t.Fatalf("Location = %q, want %q", hdr.Get("Location"), want)
	}
	_, err := p.cb.Put(context.Background(), p.acct, "some-key", "v", 0)
	ae := wantAPIError(t, err, http.StatusMisdirectedRequest, CodeNotPrimary)
	if ae.Primary != p.a.URL() || ae.Epoch != 1 {
		t.Fatalf("not_primary body = %+v", ae.ErrorBody)
	}
}

func TestStaleEpochWrites(t *testing.T) {
	l := startLocal(t, Config{Name: "s"})
	c := NewClient(l.URL(), nil)
	ctx := context.Background()
	must(t, c.CreateAccount(ctx, AccountSpec{Account: "e", Partitions: 1, Role: RolePrimary, Epoch: 5, Peer: "http://127.0.0.1:1"}))
	_, err := c.Put(ctx, "e", "k", "v", 4)
	ae := wantAPIError(t, err, http.StatusConflict, CodeStaleEpoch)
	if ae.Epoch != 5 {
		t.Errorf("stale_epoch body epoch = %d, want 5", ae.Epoch)
	}
	_, err = c.Batch(ctx, "e", []BatchOp{{Op: OpPut, Key: "k", Value: "v"}}, 4)
	wantAPIError(t, err, http.StatusConflict, CodeStaleEpoch)
	_, err = c.Put(ctx, "e", "k", "v", 6)
	wantAPIError(t, err, http.StatusMisdirectedRequest, CodeNotPrimary)
	w, err := c.Put(ctx, "e", "k", "v", 5)
	must(t, err)
	if w.LSN != 1 || w.Epoch != 5 {
		t.Fatalf("write = %+v", w)
	}
	_, err = c.Get(ctx, "e", "k")
	must(t, err)
}

// TestFenceUnderLoad fences while writers are busy: every acknowledged
// write must be at or below its partition's fence LSN, and the full
// fail-over must carry each of them to the new primary.
func TestFenceUnderLoad(t *testing.T) {
	p := newPair(t, 8, Config{ReplicationBatch: 50}, Config{})
	ctx := context.Background()
	type ack struct {
		key string
		res WriteResult
	}
	acks := make(chan ack, 1<<16)
	done := make(chan struct{})
	for w := range 16 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; ; i++ {
				key := fmt.Sprintf("w%d-%d", w, i)
				r, err := p.ca.Put(ctx, p.acct, key, key, 0)
				if IsCode(err, CodeFenced) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				acks <- ack{key, r}
			}
		}()
	}
	eventually(t, 10*time.Second, "writes flowing", func() bool { return len(acks) > 300 })
	fr, err := p.ca.Fence(ctx, p.acct, ControlRequest{All: true})
	must(t, err)
	for range 16 {
		<-done
	}
	close(acks)
	final := map[int]uint64{}
	for _, r := range fr.Results {
		final[r.Partition] = r.LSN
	}
	var keys []string
	want := map[string]WriteResult{}
	for a := range acks {
		if a.res.LSN > final[a.res.Partition] {
			t.Fatalf("write %s acknowledged at LSN %d above partition %d's fence LSN %d", a.key, a.res.LSN, a.res.Partition, final[a.res.Partition])
		}
		keys = append(keys, a.key)
		want[a.key] = a.res
	}
	_, err = p.ca.FlushSend(ctx, p.acct, ControlRequest{All: true})
	must(t, err)
	_, err = p.cb.FlushReplay(ctx, p.acct, ControlRequest{All: true, Targets: final, WaitMillis: 30000})
	must(t, err)
	_, err = p.cb.Promote(ctx, p.acct, ControlRequest{All: true, Epoch: 2})
	must(t, err)
	for len(keys) > 0 {
		n := min(len(keys), MaxReadKeys)
		rr, err := p.cb.Read(ctx, p.acct, keys[:n])
		must(t, err)
		for _, k := range keys[:n] {
			if v := rr.Values[k]; v.Value != k || v.LSN != want[k].LSN {
				t.Fatalf("key %s on the new primary = %+v, acknowledged %+v", k, v, want[k])
			}
		}
		keys = keys[n:]
	}
}
