package activities

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/location/locationtest"
)

// The store activities' own logic (which shards are waited for, given up,
// rejoined) against a driver held in memory; the drivers themselves are
// tested on real servers (driver/*/..._e2e_test.go, testsuite).

// fakeServer is one shard's server.
type fakeServer struct {
	primary, dead, fenced bool
	written, replayed     uint64
}

// fakeStore is a driver.Store and driver.LossReader of fakeServers by
// endpoint, recording the rejoins asked.
type fakeStore struct {
	mu       sync.Mutex
	servers  map[string]*fakeServer
	rejoined []int
}

var errDown = errors.New("connection refused")

func (f *fakeStore) each(side driver.Side, ps []int, fn func(p int, s *fakeServer) (uint64, error)) []driver.Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]driver.Result, len(ps))
	for i, p := range ps {
		out[i].Partition = p
		if s := f.servers[side.Endpoint(p)]; s.dead {
			out[i].Err = errDown
		} else {
			out[i].Position, out[i].Err = fn(p, s)
		}
	}
	return out
}

func (f *fakeStore) Kind() driver.Kind { return driver.KindPostgres }
func (f *fakeStore) Close() error      { return nil }

func (f *fakeStore) Positions(_ context.Context, side driver.Side, ps []int) []driver.Positions {
	out := make([]driver.Positions, len(ps))
	for i, r := range f.each(side, ps, func(int, *fakeServer) (uint64, error) { return 0, nil }) {
		out[i] = driver.Positions{Partition: r.Partition, Err: r.Err}
		if s := f.servers[side.Endpoint(r.Partition)]; r.Err == nil {
			out[i].Primary, out[i].Written, out[i].Replayed = s.primary, s.written, s.replayed
		}
	}
	return out
}

func (f *fakeStore) Fence(_ context.Context, side driver.Side, ps []int, _ time.Duration) []driver.Result {
	return f.each(side, ps, func(_ int, s *fakeServer) (uint64, error) { s.fenced = true; return s.written, nil })
}

func (f *fakeStore) Unfence(_ context.Context, side driver.Side, ps []int) []driver.Result {
	return f.each(side, ps, func(_ int, s *fakeServer) (uint64, error) { s.fenced = false; return 0, nil })
}

func (f *fakeStore) FlushSend(_ context.Context, side, _ driver.Side, ps []int) []driver.Result {
	return f.each(side, ps, func(_ int, s *fakeServer) (uint64, error) { return s.written, nil })
}

func (f *fakeStore) FlushReplay(_ context.Context, side driver.Side, targets map[int]uint64, _ func(int)) []driver.Result {
	ps := make([]int, 0, len(targets))
	for p := range targets {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return f.each(side, ps, func(_ int, s *fakeServer) (uint64, error) { return s.replayed, nil })
}

func (f *fakeStore) Promote(_ context.Context, side driver.Side, ps []int) []driver.Result {
	return f.each(side, ps, func(_ int, s *fakeServer) (uint64, error) { s.primary = true; return s.replayed, nil })
}

func (f *fakeStore) Rejoin(_ context.Context, old, _ driver.Side, ps []int) []driver.Result {
	return f.each(old, ps, func(p int, s *fakeServer) (uint64, error) {
		s.primary, s.fenced = false, false
		f.rejoined = append(f.rejoined, p)
		return 0, nil
	})
}

func (f *fakeStore) Losses(_ context.Context, side driver.Side, ps []int) []driver.Loss {
	out := make([]driver.Loss, len(ps))
	for i, r := range f.each(side, ps, func(_ int, s *fakeServer) (uint64, error) { return s.replayed, nil }) {
		out[i] = driver.Loss{Partition: r.Partition, Replayed: r.Position, Received: r.Position + 10, Unit: "WAL bytes",
			FromText: "0/1", Pending: "read its WAL", Err: r.Err}
	}
	return out
}

// withoutLosses is a store whose driver reads no losses.
type withoutLosses struct{ driver.Store }

// storeWorld is a location service with a 2-shard postgres account on
// site-a (a0:1, a1:1) replicated to site-b (b0:1, b1:1), driven by a fakeStore.
type storeWorld struct {
	acts *Activities
	st   *fakeStore
	env  *testsuite.TestActivityEnvironment
	acct location.Account
}

func newStoreWorld(t *testing.T) *storeWorld {
	t.Helper()
	loc, err := locationtest.StartLocal(location.Config{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = loc.Close() })
	ctx := context.Background()
	w := &storeWorld{acts: New(loc.URL(), nil), st: &fakeStore{servers: map[string]*fakeServer{
		"a0:1": {primary: true, written: 100}, "a1:1": {primary: true, written: 200},
		"b0:1": {written: 90, replayed: 90}, "b1:1": {written: 200, replayed: 200},
	}}}
	for _, site := range []string{"site-a", "site-b"} {
		require.NoError(t, w.acts.Location.RegisterStamp(ctx, location.Stamp{Name: site, URL: "postgres://" + site}))
	}
	w.acct, err = w.acts.Location.CreateAccount(ctx, location.CreateRequest{Account: "db", Partitions: 2, Primary: "site-a",
		Secondary: "site-b", Kind: location.KindPostgres, PrimaryEndpoints: []string{"a0:1", "a1:1"},
		SecondaryEndpoints: []string{"b0:1", "b1:1"}})
	require.NoError(t, err)
	w.acts.Stores = map[driver.Kind]driver.Store{driver.KindPostgres: w.st}
	var s testsuite.WorkflowTestSuite
	w.env = s.NewTestActivityEnvironment()
	w.env.RegisterActivity(w.acts)
	return w
}

// precheck runs the activity's code with a 5-second deadline: a planned
// precheck retries a shard that does not answer until then.
func (w *storeWorld) precheck(t *testing.T, unplanned bool) (PrecheckResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.acts.Precheck(ctx, PrecheckInput{Account: "db", To: "site-b", Unplanned: unplanned})
}

// One shard's primary is gone: a planned failover is refused, an unplanned
// one goes ahead, measuring the lag of the shard that answered.
func TestPrecheckStoreWithAPrimaryGone(t *testing.T) {
	w := newStoreWorld(t)
	w.st.servers["a0:1"].dead = true
	_, err := w.precheck(t, false)
	require.ErrorContains(t, err, "kept failing")
	res, err := w.precheck(t, true)
	require.NoError(t, err)
	require.False(t, res.SourceReachable)
	require.Contains(t, res.SourceError, "shard 0: connection refused")
	require.Equal(t, uint64(0), res.LagOps[1], "shard 1 answered: its lag is measured")
	require.Zero(t, res.PromotedAhead)

	w.acts.Stores[driver.KindPostgres] = withoutLosses{w.st}
	_, err = w.precheck(t, true)
	require.ErrorContains(t, err, "cannot fail over unplanned")
}

// An unplanned promote does not wait for an old primary that is gone (it
// holds a planned one), fences again the one that answers, and rejoins
// only the shards neither given up nor gone: the account stays
// unprotected.
func TestPromoteStoreUnplanned(t *testing.T) {
	w := newStoreWorld(t)
	w.st.servers["a0:1"].dead = true
	in := PromoteInput{Account: "db", From: "site-a", To: "site-b", ToURL: "postgres://site-b", Partitions: 2,
		OldEpoch: w.acct.Epoch, Epoch: w.acct.Epoch + 1, Operation: "test"}
	_, err := w.env.ExecuteActivity(w.acts.Promote, in)
	require.ErrorContains(t, err, "does not answer, so its fence is not confirmed")
	require.False(t, w.st.servers["b0:1"].primary, "nothing promoted")

	in.Unplanned, in.GivenUp = true, []int{0}
	_, err = w.env.ExecuteActivity(w.acts.Promote, in)
	require.NoError(t, err)
	require.True(t, w.st.servers["b0:1"].primary && w.st.servers["b1:1"].primary)
	require.Equal(t, []int{1}, w.st.rejoined, "the given-up shard is not rejoined")
	acct, err := w.acts.Location.Lookup(context.Background(), "db")
	require.NoError(t, err)
	require.Equal(t, "site-b", acct.Primary)
	require.True(t, acct.Unprotected, "a shard not rejoined leaves the account unprotected")
}

// The ledger of a store's account is its driver's losses, in its unit.
func TestLossLedgerStore(t *testing.T) {
	w := newStoreWorld(t)
	v, err := w.env.ExecuteActivity(w.acts.LossLedger, LossLedgerInput{Account: "db", ToURL: "postgres://site-b",
		Partitions: []int{0}})
	require.NoError(t, err)
	var ledger []LossEntry
	require.NoError(t, v.Get(&ledger))
	require.Equal(t, []LossEntry{{Partition: 0, FromLSN: 90, ToLSN: 100, Unit: "WAL bytes", From: "0/1",
		Pending: "read its WAL"}}, ledger)
}

// Catch-up measures, per shard, what the replica has not received (send)
// and what it received but has not replayed (replay); a shard already
// promoted (a resumed failover's) has nothing left to drain.
func TestCatchUpStoreLag(t *testing.T) {
	w := newStoreWorld(t)
	w.st.servers["b0:1"].written = 95 // received 95 of the primary's 100, replayed 90
	in := CatchUpInput{Account: "db", FromURL: "postgres://site-a", ToURL: "postgres://site-b", Partitions: 2,
		Timeout: 300 * time.Millisecond, Poll: 50 * time.Millisecond}
	var res CatchUpResult
	v, err := w.env.ExecuteActivity(w.acts.CatchUp, in)
	require.NoError(t, err)
	require.NoError(t, v.Get(&res))
	require.False(t, res.CaughtUp)
	require.Equal(t, uint64(5), res.SendLagOps)
	require.Equal(t, uint64(5), res.ReplayLagOps)

	w.st.servers["b0:1"].primary = true
	v, err = w.env.ExecuteActivity(w.acts.CatchUp, in)
	require.NoError(t, err)
	require.NoError(t, v.Get(&res))
	require.True(t, res.CaughtUp)
	require.Zero(t, res.SendLagOps+res.ReplayLagOps)
}
