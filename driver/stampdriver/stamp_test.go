package stampdriver_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/stampdriver"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/location/locationtest"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/stamp/stamptest"
)

// pair is two real stamps on loopback with one account provisioned on
// them, primary on a.
type pair struct {
	d      *stampdriver.Driver
	a, b   *stamp.Client
	pa, pb driver.Side
}

func newPair(t *testing.T, account string, partitions int) *pair {
	t.Helper()
	loc, err := locationtest.StartLocal(location.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = loc.Close() })
	lc := location.NewClient(loc.URL(), nil)
	var cs []*stamp.Client
	for _, name := range []string{"stamp-a", "stamp-b"} {
		s, err := stamptest.StartLocal(stamp.Config{Name: name, LocationURL: loc.URL(), EnableFaults: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		require.NoError(t, lc.RegisterStamp(context.Background(), location.Stamp{Name: name, URL: s.URL()}))
		cs = append(cs, stamp.NewClient(s.URL(), nil))
	}
	_, err = location.Provision(context.Background(), lc, cs[0], cs[1], "stamp-a", "stamp-b", account, partitions)
	require.NoError(t, err)
	clients := map[string]*stamp.Client{cs[0].Base(): cs[0], cs[1].Base(): cs[1]}
	return &pair{
		d: stampdriver.New(func(base string) *stamp.Client { return clients[base] }),
		a: cs[0], b: cs[1],
		pa: driver.Side{Account: account, Endpoints: []string{cs[0].Base()}, Epoch: 1},
		pb: driver.Side{Account: account, Endpoints: []string{cs[1].Base()}, Epoch: 2},
	}
}

// write puts n keys on the primary, at epoch 1.
func (p *pair) write(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		_, err := p.a.Put(context.Background(), p.pa.Account, fmt.Sprintf("k%d", i), "v", 1)
		require.NoError(t, err)
	}
}

func all(n int) []int {
	ps := make([]int, n)
	for i := range ps {
		ps[i] = i
	}
	return ps
}

func noErrors(t *testing.T, rs []driver.Result) {
	t.Helper()
	require.Empty(t, driver.Failed(rs))
}

// TestFailoverThroughTheContract: a planned failover of a stamp account
// step by step through the driver: every write the primary took is
// replayed and the secondary continues from it at the new epoch, which
// the old primary refuses.
func TestFailoverThroughTheContract(t *testing.T) {
	const account, n = "acct", 8
	p := newPair(t, account, n)
	ctx := context.Background()
	p.write(t, 200)
	pos := p.d.Positions(ctx, p.pa, all(n))
	for _, x := range pos {
		require.NoError(t, x.Err)
		require.True(t, x.Primary)
	}
	require.False(t, p.d.Positions(ctx, p.pb, []int{3})[0].Primary)

	stale := p.pa
	stale.Epoch = 7
	r := p.d.Fence(ctx, stale, []int{0}, time.Minute)
	require.True(t, driver.IsFinal(r[0].Err), "a fence at another epoch is final: %v", r[0].Err)

	fenced := p.d.Fence(ctx, p.pa, all(n), time.Minute)
	noErrors(t, fenced)
	_, err := p.a.Put(ctx, account, "after-fence", "v", 1)
	require.Error(t, err, "a fenced primary took a write")

	sent := p.d.FlushSend(ctx, p.pa, driver.Side{}, all(n))
	noErrors(t, sent)
	targets := map[int]uint64{}
	var total uint64
	for i, s := range sent {
		require.Equal(t, fenced[i].Position, s.Position, "partition %d sent what it wrote", s.Partition)
		targets[s.Partition] = s.Position
		total += s.Position
	}
	require.Equal(t, uint64(200), total)

	var progressed []int
	replayed := p.d.FlushReplay(ctx, p.pb, targets, func(p int) { progressed = append(progressed, p) })
	noErrors(t, replayed)
	require.Len(t, progressed, n)
	for _, r := range replayed {
		require.Equal(t, targets[r.Partition], r.Position)
	}

	noErrors(t, p.d.Promote(ctx, p.pb, all(n)))
	noErrors(t, p.d.Promote(ctx, p.pb, all(n))) // idempotent
	_, err = p.b.Put(ctx, account, "after-promote", "v", 2)
	require.NoError(t, err)
	_, err = p.a.Put(ctx, account, "split-brain", "v", 2)
	require.Error(t, err, "the old primary took a write at the new epoch")

	rj := p.d.Rejoin(ctx, p.pa, p.pb, []int{0})
	require.True(t, driver.IsFinal(rj[0].Err), "a stamp rejoins in reprotect, not in a promote")
}

// TestRefusalsAnswerEachPartition: a partition refused on its own answers
// its refusal while the others are done, in the call's order, across
// chunks; a replay refused on one partition does not hold the others.
func TestRefusalsAnswerEachPartition(t *testing.T) {
	const account, n = "big", 2*stampdriver.ChunkSize + 17
	p := newPair(t, account, n)
	ctx := context.Background()
	bad := 1500
	require.NoError(t, p.a.AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFence, Partition: &bad, ErrorRate: 1}))
	ps := all(n)
	ps[0], ps[n-1] = ps[n-1], ps[0] // any order is answered in that order
	rs := p.d.Fence(ctx, p.pa, ps, time.Minute)
	require.Len(t, rs, n)
	for i, r := range rs {
		require.Equal(t, ps[i], r.Partition)
		if r.Partition == bad {
			require.Error(t, r.Err)
			require.False(t, driver.IsFinal(r.Err), "an injected fault may go away")
			continue
		}
		require.NoError(t, r.Err)
	}
	require.NoError(t, p.a.ClearFaults(ctx))
	noErrors(t, p.d.Fence(ctx, p.pa, []int{bad}, time.Minute))

	small := []int{1, 2, 3, 4}
	sent := p.d.FlushSend(ctx, p.pa, driver.Side{}, small)
	noErrors(t, sent)
	slow := 2
	require.NoError(t, p.b.AddFault(ctx, stamp.Fault{Scope: "control", Op: stamp.CtlFlushReplay, Partition: &slow, ErrorRate: 1}))
	targets := map[int]uint64{}
	for _, s := range sent {
		targets[s.Partition] = s.Position
	}
	rs = p.d.FlushReplay(ctx, p.pb, targets, nil)
	for _, r := range rs {
		if r.Partition == slow {
			require.Error(t, r.Err)
			continue
		}
		require.NoError(t, r.Err, "partition %d", r.Partition)
	}
}

// TestLossesOfAGoneSource: the secondary's view of each partition is the
// ledger of an unplanned failover: what it replayed, and what the source
// last said it wrote, in writes.
func TestLossesOfAGoneSource(t *testing.T) {
	const account, n = "acct", 2
	p := newPair(t, account, n)
	ctx := context.Background()
	p.write(t, 50)
	// Everything written reaches the secondary (a fence, then a
	// flush-send), and a replay to 0 replays everything received.
	noErrors(t, p.d.Fence(ctx, p.pa, all(n), time.Minute))
	noErrors(t, p.d.FlushSend(ctx, p.pa, driver.Side{}, all(n)))
	noErrors(t, p.d.FlushReplay(ctx, p.pb, map[int]uint64{0: 0, 1: 0}, nil))
	ls := p.d.Losses(ctx, p.pb, all(n))
	var replayed uint64
	for _, l := range ls {
		require.NoError(t, l.Err)
		require.Equal(t, driver.UnitOps, l.Unit)
		require.GreaterOrEqual(t, l.Written, l.Replayed)
		replayed += l.Replayed
	}
	require.Equal(t, uint64(50), replayed)
}

// TestControlAnswersEveryPartition: an answer that leaves a partition out
// is not that partition's success, and a call that failed as a whole is
// each partition's error, marked as the whole call's.
func TestControlAnswersEveryPartition(t *testing.T) {
	ctx := context.Background()
	as := stampdriver.Control(ctx, []int{4, 5}, func(context.Context, []int) (stamp.ControlResponse, error) {
		return stamp.ControlResponse{Results: []stamp.ControlResult{{Partition: 5, LSN: 9}}}, nil
	})
	require.ErrorContains(t, as[0].Err, "missing from the stamp's answer")
	require.NoError(t, as[1].Err)
	require.Equal(t, uint64(9), as[1].LSN)

	stale := &stamp.APIError{Status: 409, ErrorBody: stamp.ErrorBody{Code: stamp.CodeStaleEpoch, Message: "epoch 7 is not 1"}}
	as = stampdriver.Control(ctx, []int{1, 2}, func(context.Context, []int) (stamp.ControlResponse, error) {
		return stamp.ControlResponse{}, stale
	})
	for _, a := range as {
		require.True(t, driver.IsFinal(a.Err) && driver.IsWholeCall(a.Err), "%v", a.Err)
	}
}
