package readiness

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

var now = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

// healthy is an account of 4 partitions on stamp-a replicating to stamp-b
// at epoch 2, every partition caught up but partition 1 (5 ops
// unacknowledged, acknowledged 200 ms ago; 3 received, not replayed).
func healthy() Input {
	in := Input{
		Now: now,
		Account: location.Account{Account: "acct-1", Partitions: 4, Primary: "stamp-a", Secondary: "stamp-b",
			Epoch: 2},
		SecondaryHealth: stamp.Health{Stamp: "stamp-b", OK: true},
	}
	for p := range 4 {
		in.Primary.Partitions = append(in.Primary.Partitions, stamp.PartitionStatus{Partition: p,
			Role: stamp.RolePrimary, Epoch: 2, Shipping: true, LastWritten: 100, LastAcked: 100,
			LastAckedAt: now.Add(-time.Second)})
		in.Secondary.Partitions = append(in.Secondary.Partitions, stamp.PartitionStatus{Partition: p,
			Role: stamp.RoleSecondary, Epoch: 2, LastReceived: 100, LastReplayed: 100})
	}
	in.Primary.Partitions[1].LastAcked, in.Primary.Partitions[1].LastAckedAt = 95, now.Add(-200*time.Millisecond)
	in.Secondary.Partitions[1].LastReceived, in.Secondary.Partitions[1].LastReplayed = 95, 92
	return in
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Input)
		budget Budget
		// reasons: each must appear, in order, and be all there is (nil:
		// ready).
		reasons []string
	}{
		{"healthy", func(*Input) {}, Budget{}, nil},
		{"reprotect pending", func(in *Input) {
			in.Account.Unprotected = true
			for i := range in.Primary.Partitions {
				in.Primary.Partitions[i].Shipping = false
			}
		}, Budget{}, []string{
			"reprotect pending: acct-1 failed over to stamp-a at epoch 2 and stamp-b does not replicate it yet: " +
				"baton reprotect acct-1",
		}},
		{"reprotect pending and the old primary down", func(in *Input) {
			in.Account.Unprotected = true
			in.SecondaryHealthErr = errors.New("connection refused")
		}, Budget{}, []string{"reprotect pending", "secondary stamp-b does not answer: connection refused"}},
		{"secondary unhealthy", func(in *Input) { in.SecondaryHealth.OK = false }, Budget{},
			[]string{"secondary stamp-b reports unhealthy"}},
		{"secondary lost the account", func(in *Input) {
			in.SecondaryErr = errors.New("stamp answered 404 not_found")
		}, Budget{}, []string{"secondary stamp-b: status of acct-1: stamp answered 404 not_found"}},
		{"secondary partitions at another epoch", func(in *Input) {
			in.Secondary.Partitions[2].Epoch, in.Secondary.Partitions[3].Epoch = 1, 1
		}, Budget{}, []string{
			"2 of 4 partitions on secondary stamp-b are not the replica at epoch 2 (partition 2 is secondary at epoch 1)",
		}},
		{"primary down", func(in *Input) { in.PrimaryErr = errors.New("connection refused") }, Budget{},
			[]string{"primary stamp-a does not answer: connection refused"}},
		{"fenced and not shipping", func(in *Input) {
			in.Primary.Partitions[3].Fenced = true
			in.Primary.Partitions[0].Shipping, in.Primary.Partitions[2].Shipping = false, false
		}, Budget{}, []string{
			"partition 3 on stamp-a is fenced (a failover in flight?); " +
				"2 of 4 partitions (0 first) on stamp-a are not shipping to stamp-b",
		}},
		{"stuck: acknowledged too long ago", func(in *Input) {
			in.Primary.Partitions[1].LastAckedAt = now.Add(-45 * time.Second)
		}, Budget{}, []string{
			"replication stuck on partition 1: 5 writes unacknowledged on partition 1, last acknowledged 45s ago (over 30s)",
			"estimated RPO 45s (5 ops not acknowledged), budget 10s",
		}},
		{"stuck: never acknowledged", func(in *Input) { in.Primary.Partitions[1].LastAckedAt = time.Time{} },
			Budget{}, []string{"5 writes unacknowledged on partition 1, never acknowledged"}},
		{"an old ack without lag is fine", func(in *Input) {
			in.Primary.Partitions[0].LastAckedAt = now.Add(-time.Hour)
		}, Budget{}, nil},
		{"lag over budget", func(*Input) {}, Budget{MaxLagOps: 7},
			[]string{"lag 8 ops (5 unacknowledged, 3 not replayed on stamp-b), budget 7"}},
		{"RPO over budget", func(*Input) {}, Budget{MaxRPO: 100 * time.Millisecond},
			[]string{"estimated RPO 200ms (5 ops not acknowledged), budget 100ms"}},
		{"partition counts disagree", func(in *Input) { in.Primary.Partitions = in.Primary.Partitions[:3] }, Budget{},
			[]string{"primary stamp-a holds 3 partitions of acct-1, not 4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := healthy()
			tt.mutate(&in)
			v := Evaluate(in, tt.budget)
			require.Equal(t, tt.reasons == nil, v.Ready, "reasons: %q", v.Reasons)
			require.Len(t, v.Reasons, len(tt.reasons), "reasons: %q", v.Reasons)
			for i, want := range tt.reasons {
				require.Contains(t, v.Reasons[i], want)
			}
			for _, c := range v.Checks {
				require.NotEmpty(t, c.Detail, c.Name)
			}
		})
	}
}

// TestEvaluateFigures: the numbers behind the checks, and the budget's
// defaults by the account's size.
func TestEvaluateFigures(t *testing.T) {
	v := Evaluate(healthy(), Budget{})
	require.True(t, v.Ready)
	require.Equal(t, uint64(5), v.SendLagOps)
	require.Equal(t, uint64(3), v.ReplayLagOps)
	require.Equal(t, uint64(8), v.LagOps)
	require.Equal(t, uint64(5), v.EstimatedRPOOps)
	require.Equal(t, 200*time.Millisecond, v.EstimatedRPO)
	require.Equal(t, Budget{MaxLagOps: 1000, MaxRPO: DefaultMaxRPO, MaxAckAge: DefaultMaxAckAge}, v.Budget)
	names := []string{}
	for _, c := range v.Checks {
		names = append(names, c.Name)
	}
	require.Equal(t, []string{CheckProtected, CheckSecondary, CheckFlowing, CheckLag, CheckRPO}, names)
	require.Equal(t, uint64(2000), Budget{}.For(1000).MaxLagOps)
	require.Equal(t, uint64(5), Budget{MaxLagOps: 5}.For(1000).MaxLagOps)

	one := healthy()
	one.Account.Partitions = 1
	one.Primary.Partitions, one.Secondary.Partitions = one.Primary.Partitions[:1], one.Secondary.Partitions[:1]
	one.Primary.Partitions[0].Shipping = false
	v = Evaluate(one, Budget{})
	require.False(t, v.Ready)
	require.True(t, strings.HasPrefix(v.Reasons[0], "partition 0 on stamp-a is not shipping to stamp-b"), v.Reasons[0])
}
