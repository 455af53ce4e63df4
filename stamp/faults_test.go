package stamp

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	p := newPair(t, 4, Config{}, Config{})
	ctx := context.Background()

	// Error rate 1.0 on data: every write and read fails, control and
	// health still answer.
	must(t, p.ca.AddFault(ctx, Fault{Scope: scopeData, ErrorRate: 1}))
	_, err := p.ca.Put(ctx, p.acct, "k", "v", 0)
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeInjected)
	_, err = p.ca.Get(ctx, p.acct, "k")
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeInjected)
	_, err = p.ca.Status(ctx, p.acct, nil)
	must(t, err)
	_, err = p.ca.Health(ctx)
	must(t, err)
	must(t, p.ca.ClearFaults(ctx))
	if st := status(t, p.ca, p.acct); st.Partitions[PartitionOf("k", 4)].LastWritten != 0 {
		t.Fatal("a faulted write was written")
	}

	// A fault narrowed to one partition hits only keys in it.
	kp := PartitionOf("k", 4)
	other := "k2"
	for PartitionOf(other, 4) == kp {
		other += "x"
	}
	must(t, p.ca.AddFault(ctx, Fault{Scope: scopeAll, Account: p.acct, Partition: &kp, ErrorRate: 1}))
	_, err = p.ca.Put(ctx, p.acct, "k", "v", 0)
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeInjected)
	_, err = p.ca.Put(ctx, p.acct, other, "v", 0)
	must(t, err)
	// Bulk control: the fault applies only if its partition is asked for.
	_, err = p.ca.Fence(ctx, p.acct, ControlRequest{Partitions: []int{kp}})
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeInjected)
	_, err = p.ca.Fence(ctx, p.acct, ControlRequest{Partitions: []int{PartitionOf(other, 4)}})
	must(t, err)
	_, err = p.ca.Unfence(ctx, p.acct, ControlRequest{All: true})
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeInjected)
	// Another account is not affected.
	must(t, p.ca.CreateAccount(ctx, AccountSpec{Account: "other", Partitions: 4, Role: RolePrimary, Epoch: 1, Peer: p.b.URL()}))
	_, err = p.ca.Put(ctx, "other", "k", "v", 0)
	must(t, err)
	must(t, p.ca.ClearFaults(ctx))

	// Unreachable: the connection is closed without an answer.
	must(t, p.ca.AddFault(ctx, Fault{Scope: scopeControl, Unreachable: true}))
	_, err = p.ca.Status(ctx, p.acct, nil)
	var ae *APIError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("unreachable fault: want a transport error, got %v", err)
	}
	_, err = p.ca.Put(ctx, p.acct, "k", "v", 0)
	must(t, err)
	must(t, p.ca.ClearFaults(ctx))

	// Replication faults on the secondary stall shipping; flush-send names
	// the peer; clearing the fault lets the shipper catch up.
	must(t, p.cb.AddFault(ctx, Fault{Scope: scopeReplication, Unreachable: true}))
	putN(t, p.ca, p.acct, 50)
	_, err = p.ca.FlushSend(ctx, p.acct, ControlRequest{All: true})
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeUnavailable)
	must(t, p.cb.ClearFaults(ctx))
	eventually(t, 15*time.Second, "catch-up after the replication fault cleared", func() bool { return p.caughtUp(t) })

	// Latency is added to matching calls; an initial fault from Config works.
	l := startLocal(t, Config{Name: "slow", Faults: []Fault{{Scope: scopeControl, ErrorRate: 1}}})
	c := NewClient(l.URL(), nil)
	err = c.CreateAccount(ctx, AccountSpec{Account: "x", Partitions: 1, Role: RoleSecondary, Epoch: 1})
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeInjected)
	must(t, c.ClearFaults(ctx))
	must(t, c.AddFault(ctx, Fault{Scope: scopeAll, LatencyMillis: 1}))
	must(t, c.CreateAccount(ctx, AccountSpec{Account: "x", Partitions: 1, Role: RoleSecondary, Epoch: 1}))
}

// TestFaultNarrowedToOneOpWithACode: a fault can hit a single control call
// with a non-retryable answer, leaving every other call alone.
func TestFaultNarrowedToOneOpWithACode(t *testing.T) {
	p := newPair(t, 2, Config{}, Config{})
	ctx := context.Background()
	must(t, p.cb.AddFault(ctx, Fault{Scope: "control", Op: CtlPromote, ErrorRate: 1, Code: CodeStaleEpoch}))
	_, err := p.cb.Status(ctx, p.acct, nil)
	must(t, err)
	_, err = p.cb.Promote(ctx, p.acct, ControlRequest{All: true, Epoch: 2})
	wantAPIError(t, err, http.StatusConflict, CodeStaleEpoch)
	for _, f := range []Fault{
		{Scope: "control", Op: "rename", ErrorRate: 1},
		{Scope: "data", Op: CtlFence, ErrorRate: 1},
		{Scope: "control", ErrorRate: 1, Code: "teapot"},
	} {
		wantAPIError(t, p.cb.AddFault(ctx, f), http.StatusBadRequest, CodeBadRequest)
	}
}

// TestUnreachableDropsDelayedCalls: a call held by latency when the stamp
// becomes unreachable loses its answer (as in a network partition), and
// what it asked for is not done.
func TestUnreachableDropsDelayedCalls(t *testing.T) {
	p := newPair(t, 2, Config{}, Config{})
	ctx := context.Background()
	must(t, p.ca.AddFault(ctx, Fault{Scope: scopeControl, Op: CtlFence, LatencyMillis: 1500}))
	done := make(chan error, 1)
	go func() {
		_, err := p.ca.Fence(ctx, p.acct, ControlRequest{All: true})
		done <- err
	}()
	eventually(t, 5*time.Second, "the fence held by its latency", func() bool {
		fs, err := p.ca.Faults(ctx)
		must(t, err)
		return len(fs) == 1 && fs[0].Struck == 1
	})
	must(t, p.ca.AddFault(ctx, Fault{Scope: scopeAll, Account: p.acct, Unreachable: true}))
	err := <-done
	var ae *APIError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("a call in flight when the stamp became unreachable: want a transport error, got %v", err)
	}
	must(t, p.ca.ClearFaults(ctx))
	for _, pt := range status(t, p.ca, p.acct).Partitions {
		if pt.Fenced {
			t.Fatalf("partition %d was fenced by a call whose answer was dropped", pt.Partition)
		}
	}
}
