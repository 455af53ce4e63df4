package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// TestDrillReadiness reads the real stamps, through the verdict baton
// status prints: a protected account with replication flowing is ready;
// unprotected, a secondary that does not answer, or a lag above the
// drill's budget is not, and says why; an account the location service
// does not know is an error.
func TestDrillReadiness(t *testing.T) {
	ctx := context.Background()
	ready := func(t *testing.T, w *world, in DrillReadinessInput) DrillReadinessResult {
		t.Helper()
		r, err := exec[DrillReadinessResult](t, w, w.acts.DrillReadiness, in)
		require.NoError(t, err)
		return r
	}
	t.Run("ready", func(t *testing.T) {
		w := newWorld(t)
		w.write(t, 20)
		r := ready(t, w, DrillReadinessInput{Account: account})
		require.True(t, r.Ready, r.NotReady)
		require.Equal(t, "stamp-a", r.Primary)
		require.Equal(t, "stamp-b", r.Secondary)
		require.Equal(t, partitions, r.Partitions)
		require.Equal(t, uint64(1000), r.LagBudgetOps, "max(1000, 2 x partitions)")
	})
	t.Run("unprotected", func(t *testing.T) {
		w := newWorld(t)
		_, err := w.acts.Location.Move(ctx, account, location.MoveRequest{From: "stamp-a", To: "stamp-b", ExpectedEpoch: 1, Epoch: 2})
		require.NoError(t, err)
		r := ready(t, w, DrillReadinessInput{Account: account})
		require.False(t, r.Ready)
		require.Equal(t, "acct is not ready to fail over: reprotect pending: acct failed over to stamp-b at epoch 2 "+
			"and stamp-a does not replicate it yet: baton reprotect acct", r.NotReady)
	})
	t.Run("lag above the budget", func(t *testing.T) {
		w := newWorld(t)
		require.NoError(t, w.dst.AddFault(ctx, stamp.Fault{Scope: "replication", Unreachable: true}))
		w.write(t, 30)
		r := ready(t, w, DrillReadinessInput{Account: account, LagBudgetOps: 10})
		require.False(t, r.Ready)
		require.Contains(t, r.NotReady, "lag 30 ops (30 unacknowledged, 0 not replayed on stamp-b), budget 10")
		require.Equal(t, uint64(30), r.SendLagOps)
	})
	t.Run("secondary does not answer", func(t *testing.T) {
		w := newWorld(t)
		require.NoError(t, w.acts.Location.RegisterStamp(ctx, location.Stamp{Name: "stamp-b", URL: "http://127.0.0.1:1"}))
		r := ready(t, w, DrillReadinessInput{Account: account})
		require.False(t, r.Ready)
		require.Contains(t, r.NotReady, "acct is not ready to fail over: secondary stamp-b does not answer: ")
	})
	t.Run("held by a maintenance switch", func(t *testing.T) {
		w := newWorld(t)
		sw := func(stamp string, on bool) {
			_, err := w.acts.Location.SetSwitch(ctx, location.SwitchRequest{Stamp: stamp, On: on, By: "oncall",
				Reason: "patching"})
			require.NoError(t, err)
		}
		for _, stamp := range []string{"stamp-a", "stamp-b", ""} { // primary, secondary, global
			sw(stamp, true)
			r := ready(t, w, DrillReadinessInput{Account: account, Scheduled: true})
			require.False(t, r.Ready)
			which := "the global maintenance switch"
			if stamp != "" {
				which = "the maintenance switch of " + stamp
			}
			require.Regexp(t, `^held by `+which+` \(on since \S+Z, set by oncall: patching\): `+
				`a scheduled drill does not start while it is on$`, r.NotReady)
			r = ready(t, w, DrillReadinessInput{Account: account})
			require.True(t, r.Ready, "a drill started by hand is not held: %s", r.NotReady)
			sw(stamp, false)
		}
		sw("stamp-c", true)
		r := ready(t, w, DrillReadinessInput{Account: account, Scheduled: true})
		require.True(t, r.Ready, "another stamp's switch does not hold it: %s", r.NotReady)
	})
	t.Run("unknown account", func(t *testing.T) {
		w := newWorld(t)
		_, err := exec[DrillReadinessResult](t, w, w.acts.DrillReadiness, DrillReadinessInput{Account: "nope"})
		var ae *temporal.ApplicationError
		require.ErrorAs(t, err, &ae)
		require.Equal(t, ErrTypePrecheck, ae.Type())
		require.True(t, ae.NonRetryable())
		require.Contains(t, ae.Message(), "account nope is not known to the location service")
	})
}

// TestCanaries: canaries are written to the primary the location service
// names at its epoch, read back key by key (a missing or changed one is
// lost), refused on a stamp that is not the primary expected, and deleted.
func TestCanaries(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	keys := CanaryKeys("run-1", 0, 10)
	require.Equal(t, "drill-run-1-0", keys[0])
	require.Equal(t, "drill-run-1-9", keys[9])
	require.Equal(t, []string{"drill-run-1-10", "drill-run-1-11"}, CanaryKeys("run-1", 10, 2))

	wr, err := exec[CanaryResult](t, w, w.acts.WriteCanaries, CanaryInput{Account: account, Keys: keys, Primary: "stamp-a"})
	require.NoError(t, err)
	require.Equal(t, CanaryResult{Stamp: "stamp-a", Epoch: 1, Written: 10}, wr)
	v, err := w.src.Get(ctx, account, keys[3])
	require.NoError(t, err)
	require.Equal(t, "canary drill-run-1-3", v.Value)

	cr, err := exec[CanaryResult](t, w, w.acts.CheckCanaries, CanaryInput{Account: account, Keys: keys, Primary: "stamp-a"})
	require.NoError(t, err)
	require.Equal(t, 10, cr.Checked)
	require.Empty(t, cr.Lost)

	_, err = w.src.Delete(ctx, account, keys[1], 0)
	require.NoError(t, err)
	_, err = w.src.Put(ctx, account, keys[7], "something else", 0)
	require.NoError(t, err)
	cr, err = exec[CanaryResult](t, w, w.acts.CheckCanaries, CanaryInput{Account: account, Keys: keys, Primary: "stamp-a"})
	require.NoError(t, err)
	require.Equal(t, []string{keys[1], keys[7]}, cr.Lost)

	_, err = exec[CanaryResult](t, w, w.acts.CheckCanaries, CanaryInput{Account: account, Keys: keys, Primary: "stamp-b"})
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	require.True(t, ae.NonRetryable())
	require.Contains(t, ae.Message(), "its primary is stamp-a (epoch 1), not stamp-b as the drill expects")

	_, err = w.env.ExecuteActivity(w.acts.DeleteCanaries, CanaryInput{Account: account, Keys: keys, Primary: "stamp-a"})
	require.NoError(t, err)
	rr, err := w.src.Read(ctx, account, keys)
	require.NoError(t, err)
	require.Empty(t, rr.Values, "every canary deleted")
}
