package stamp

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// TestBulkControlAnswersPerPartition: a bulk control call in which one
// partition is refused does the others and answers the refusal in that
// partition's result; the client reports it as *PartitionErrors, which
// unwraps to the refusal that matters most.
func TestBulkControlAnswersPerPartition(t *testing.T) {
	p := newPair(t, 4, Config{}, Config{})
	ctx := context.Background()
	putN(t, p.ca, p.acct, 80)
	_, err := p.ca.Fence(ctx, p.acct, ControlRequest{All: true})
	must(t, err)

	// flush-send: partition 2 fails on its own, the others are shipped.
	two := 2
	must(t, p.ca.AddFault(ctx, Fault{Scope: scopeControl, Op: CtlFlushSend, Account: p.acct, Partition: &two, ErrorRate: 1}))
	r, err := p.ca.FlushSend(ctx, p.acct, ControlRequest{All: true})
	var pe *PartitionErrors
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Partition != 2 || pe.Of != 4 {
		t.Fatalf("flush-send with partition 2 faulted: err %v", err)
	}
	ae := wantAPIError(t, err, http.StatusServiceUnavailable, CodeInjected)
	if !ae.Retryable() {
		t.Fatal("an injected 503 must be retryable")
	}
	if len(r.Results) != 4 {
		t.Fatalf("want an answer per partition, got %+v", r.Results)
	}
	for _, res := range r.Results {
		switch {
		case res.Partition == 2 && (res.Error == nil || res.Error.StatusCode != 503 || res.Error.Code != CodeInjected):
			t.Fatalf("partition 2: want its own 503 injected_fault, got %+v", res.Error)
		case res.Partition != 2 && (res.Error != nil || res.LSN != res.Status.LastWritten):
			t.Fatalf("partition %d: want it shipped to its last written LSN, got %+v", res.Partition, res)
		}
	}
	fl, err := p.ca.Faults(ctx)
	must(t, err)
	if len(fl) != 1 || fl[0].Struck != 1 {
		t.Fatalf("the fault struck one call: %+v", fl)
	}
	must(t, p.ca.ClearFaults(ctx))
	_, err = p.ca.FlushSend(ctx, p.acct, ControlRequest{Partitions: []int{2}})
	must(t, err)

	// flush-replay: partition 1's target is beyond what it received (final),
	// partition 3 is faulted (retryable); 0 and 2 replay and are done.
	three := 3
	must(t, p.cb.AddFault(ctx, Fault{Scope: scopeControl, Op: CtlFlushReplay, Partition: &three, ErrorRate: 1}))
	st := status(t, p.cb, p.acct)
	r, err = p.cb.FlushReplay(ctx, p.acct, ControlRequest{All: true, WaitMillis: 5000,
		Targets: map[int]uint64{1: st.Partitions[1].LastReceived + 100}})
	if !errors.As(err, &pe) || len(pe.Failed) != 2 {
		t.Fatalf("flush-replay with two refused partitions: err %v", err)
	}
	wantAPIError(t, err, http.StatusConflict, CodeBeyondReceived) // the final one comes first
	for _, res := range r.Results {
		ok := res.Error == nil && res.Done && res.LSN == st.Partitions[res.Partition].LastReceived
		if (res.Partition == 0 || res.Partition == 2) != ok {
			t.Fatalf("partition %d: %+v", res.Partition, res)
		}
	}

	// With targets named for every partition, the faulted one's target goes
	// with it: the others still replay.
	targets := map[int]uint64{}
	for _, ps := range st.Partitions {
		targets[ps.Partition] = ps.LastReceived
	}
	r, err = p.cb.FlushReplay(ctx, p.acct, ControlRequest{All: true, Targets: targets, WaitMillis: 5000})
	if !errors.As(err, &pe) || len(pe.Failed) != 1 || pe.Failed[0].Partition != 3 {
		t.Fatalf("flush-replay with targets and partition 3 faulted: %v", err)
	}
	for _, res := range r.Results {
		if res.Partition != 3 && !res.Done {
			t.Fatalf("partition %d not replayed: %+v", res.Partition, res)
		}
	}

	// The per-partition route still answers a refusal as its status.
	_, err = p.cb.Control(ctx, p.acct, CtlFlushReplay, ControlRequest{Partitions: []int{3}})
	wantAPIError(t, err, http.StatusServiceUnavailable, CodeInjected)
	code, _, _ := raw(t, "POST", p.b.URL()+"/v1/accounts/"+p.acct+"/partitions/3/flush-replay", "", nil, nil)
	if code != http.StatusServiceUnavailable {
		t.Fatalf("per-partition route with its partition faulted: %d", code)
	}
	must(t, p.cb.ClearFaults(ctx))
	eventually(t, 10*time.Second, "partition 3 replays once the fault is gone", func() bool {
		r, err := p.cb.FlushReplay(ctx, p.acct, ControlRequest{Partitions: []int{3}, WaitMillis: 1000})
		return err == nil && r.Results[0].Done
	})
}
