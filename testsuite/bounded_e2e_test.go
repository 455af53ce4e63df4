package testsuite

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/traffic"
	"github.com/batonhq/baton/workflows"
)

// TestFlushDeadlineRollsBackUnderTraffic: a planned failover of a
// 64-partition account under live traffic with one persistent fault on
// one side can never leave the account fenced: at its flush deadline it
// rolls back, the source takes writes again, the report names what held it
// up, and the audit loses nothing. The scenarios: partition 3's flush-replay
// refused on the destination, partition 3's flush-send refused on the
// source, and a destination that stops answering mid-flush.
func TestFlushDeadlineRollsBackUnderTraffic(t *testing.T) {
	three := 3
	tests := []struct {
		name string
		// fault is added before the failover starts, on stamp on.
		on    string
		fault *stamp.Fault
		// strike, if set, runs once the failover is flushing.
		strike func(ctx context.Context, c *Cluster, account string)
		// held is the partition the report must name (-1: any).
		held int
		step string
	}{
		{name: "flush-replay refused on partition 3", on: StampB, held: 3, step: workflows.StepFlushReplay,
			fault: &stamp.Fault{Scope: "control", Op: stamp.CtlFlushReplay, Partition: &three, ErrorRate: 1}},
		{name: "flush-send refused on partition 3", on: StampA, held: 3, step: workflows.StepFlushSend,
			fault: &stamp.Fault{Scope: "control", Op: stamp.CtlFlushSend, Partition: &three, ErrorRate: 1}},
		{name: "destination stops answering", on: StampB, held: -1,
			// Slow replay answers, so the flush is still on when it strikes.
			fault: &stamp.Fault{Scope: "control", Op: stamp.CtlFlushReplay, LatencyMillis: 2000},
			strike: func(ctx context.Context, c *Cluster, account string) {
				require.NoError(t, c.StampClient(StampB).AddFault(ctx, stamp.Fault{Scope: "all", Account: account, Unreachable: true}))
			}},
	}
	c := startCluster(t, Options{Durable: true})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			account := fmt.Sprintf("bounded-%d", i)
			tt.fault.Account = account
			require.NoError(t, c.StampClient(tt.on).AddFault(ctx, *tt.fault))
			defer func() {
				for _, s := range []string{StampA, StampB} {
					require.NoError(t, c.StampClient(s).ClearFaults(context.Background()))
				}
			}()
			deadline := 20 * time.Second
			res, sr := rollBackUnderTraffic(ctx, t, c, account, deadline, tt.strike)

			require.Equal(t, workflows.OutcomeRolledBack, res.Outcome)
			require.Equal(t, deadline, res.FlushDeadline)
			require.NotEmpty(t, res.HeldUp, "the report names what held the failover up")
			for _, h := range res.HeldUp {
				require.NotEmpty(t, h.Error, "partition %d held it up without an error", h.Partition)
			}
			if tt.held >= 0 {
				require.Len(t, res.HeldUp, 1, "only partition %d held it up: %+v", tt.held, res.HeldUp)
				require.Equal(t, tt.held, res.HeldUp[0].Partition)
				require.Equal(t, tt.step, res.HeldUp[0].Step)
				require.Contains(t, res.HeldUp[0].Error, "injected_fault")
			}
			// The bound comes from the workflow's own timer; the margin covers
			// the groups' grace and the unfence.
			require.LessOrEqual(t, res.UnavailableMillis, (deadline + 15*time.Second).Milliseconds(),
				"fenced for longer than the deadline plus a few seconds")
			sr.scenario = "flush deadline " + deadline.String() + ": " + tt.name
			sr.faults = faultText(tt.on, tt.fault, tt.strike != nil)
			sr.log(t)
		})
	}
}

// rollBackUnderTraffic provisions a 64-partition account, runs traffic on
// it, starts a planned failover with the given flush deadline, runs strike
// once the failover flushes, expects it to roll back, checks the source
// takes writes again, and audits every acknowledged write.
func rollBackUnderTraffic(ctx context.Context, t *testing.T, c *Cluster, account string, deadline time.Duration,
	strike func(ctx context.Context, c *Cluster, account string)) (workflows.FailoverResult, chaosRun) {
	t.Helper()
	const partitions = 64
	_, err := c.Provision(ctx, account, partitions)
	require.NoError(t, err)
	gen := traffic.New(traffic.Config{Location: c.Loc, Account: account, Rate: 500, Workers: 8})
	require.NoError(t, gen.Start(ctx))
	defer gen.Stop()
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) { return gen.AckCount() >= 500, gen.Err() }))

	started := time.Now()
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Reason: "bounded flush", RequestedBy: t.Name(),
		Options: workflows.FailoverOptions{FlushDeadline: deadline, HeartbeatTimeout: 2 * time.Second},
	})
	require.NoError(t, err)
	if strike != nil {
		require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
			return phase(ctx, c.Client, run.GetID()) == workflows.PhaseFlush, nil
		}))
		strike(ctx, c, account)
	}
	res, ferr := result(ctx, run)
	require.Error(t, ferr, "the failover must not complete")
	elapsed := time.Since(started)

	// The source takes writes again: traffic acknowledged by stamp-a goes on.
	before := gen.Stats().AcksByStamp[StampA]
	require.NoError(t, Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		return gen.Stats().AcksByStamp[StampA] >= before+200, gen.Err()
	}))
	acct, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.Equal(t, StampA, acct.Primary)
	require.Equal(t, uint64(1), acct.Epoch, "nothing was promoted")
	st := gen.Stop()
	rep, err := traffic.Audit(ctx, c.Loc, account, gen.Acked(), traffic.AuditConfig{})
	require.NoError(t, err)
	require.True(t, rep.OK(), rep.String())
	return res, chaosRun{acked: st.Acks, lost: rep.Lost, elapsed: elapsed, fencedMillis: res.UnavailableMillis,
		ackGap: traffic.LongestGap(gen.Acked()), retries: retries(ctx, t, c.Client, run.GetID(), 1), outcome: string(res.Outcome),
		struck: faultsStruck(ctx, t, c)}
}

func faultText(on string, f *stamp.Fault, struck bool) string {
	s := fmt.Sprintf("%s on %s", describeFault(*f), on)
	if struck {
		s += ", then the whole destination unreachable mid-flush"
	}
	return s
}

func describeFault(f stamp.Fault) string {
	what := f.Scope
	if f.Op != "" {
		what = f.Op
	}
	if f.Partition != nil {
		what += fmt.Sprintf(" of partition %d", *f.Partition)
	}
	switch {
	case f.Unreachable:
		return what + " unreachable"
	case f.ErrorRate > 0 && f.Code != "":
		return fmt.Sprintf("%s answers %s (rate %g)", what, f.Code, f.ErrorRate)
	case f.ErrorRate > 0:
		return fmt.Sprintf("%s fails (rate %g)", what, f.ErrorRate)
	default:
		return fmt.Sprintf("%s +%d ms", what, f.LatencyMillis)
	}
}
