package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/activities"
)

// calls counts activity calls per first partition of their input, safely
// from the test environment's goroutines.
type calls struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *calls) add(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[key]++
}

func (c *calls) get(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// TestFinalRefusalIsNeverRetried: a non-retryable stamp answer in one
// group's flush-replay is not retried by anything above it: the activity
// runs once, the group's child runs once (its flush-send once), and the
// failover rolls back with the refusal's type kept.
func TestFinalRefusalIsNeverRetried(t *testing.T) {
	f := newFake(20)
	env := newEnvWithout(t, f, "FlushSend", "FlushReplay")
	var c calls
	env.OnActivity(acts.FlushSend, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.FlushSendInput) (activities.FlushSendResult, error) {
		c.add(fmt.Sprint("send ", in.Partitions[0]))
		return f.flushSend(ctx, in)
	})
	env.OnActivity(acts.FlushReplay, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.FlushReplayInput) (activities.FlushReplayResult, error) {
		p := in.Targets[0].Partition
		c.add(fmt.Sprint("replay ", p))
		msg := "stamp answered 409 stale_epoch: moved on"
		return activities.FlushReplayResult{}, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf("flush-replay acct: partition %d: %s", p, msg), activities.ErrTypeStaleEpoch, nil, activities.PartitionFailure{Partition: p, Error: msg})
	})
	res, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b", Options: FailoverOptions{GroupSize: 10}})
	require.ErrorContains(t, err, "rolled back")
	require.ErrorContains(t, err, "stale_epoch")
	for _, first := range []int{0, 10} {
		require.LessOrEqual(t, c.get(fmt.Sprint("replay ", first)), 1, "the refused flush-replay ran again")
		require.LessOrEqual(t, c.get(fmt.Sprint("send ", first)), 1, "the group's child ran again (its flush-send did)")
	}
	require.True(t, f.unfenced)
	require.Zero(t, f.promotedAt)
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	require.Equal(t, ErrTypeRolledBack, ae.Type())
	require.NoError(t, ae.Details(&res))
	require.Len(t, res.HeldUp, 1, "the refusal names its one partition: %+v", res.HeldUp)
	require.Zero(t, res.HeldUp[0].Partition%10, "the refused partition is the first of its group")
	require.Equal(t, StepFlushReplay, res.HeldUp[0].Step)
	require.Contains(t, res.HeldUp[0].Error, "stale_epoch")
}

// TestFirstFailedGroupRollsBackAtOnce: of 40 groups, the last fails first
// while the others are still replaying: the rollback starts at once, before
// any other group completes.
func TestFirstFailedGroupRollsBackAtOnce(t *testing.T) {
	const groups, size = 40, 5
	f := newFake(groups * size)
	env := newEnvWithout(t, f, "FlushReplay", "Unfence")
	start := env.Now()
	slow := func(in activities.FlushReplayInput) bool { return in.Targets[0].Partition < (groups-1)*size }
	env.OnActivity(acts.FlushReplay, mock.Anything, mock.MatchedBy(slow)).After(time.Hour).Return(f.flushReplay)
	env.OnActivity(acts.FlushReplay, mock.Anything, mock.MatchedBy(func(in activities.FlushReplayInput) bool { return !slow(in) })).Return(
		activities.FlushReplayResult{}, temporal.NewNonRetryableApplicationError("partition 195: refused", activities.ErrTypeRefused, nil))
	var unfencedAt time.Time
	env.OnActivity(acts.Unfence, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.UnfenceInput) error {
		unfencedAt = env.Now()
		return f.unfence(ctx, in)
	})
	_, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b",
		Options: FailoverOptions{GroupSize: size, FlushDeadline: 2 * time.Hour, ReplayTimeout: 2 * time.Hour}})
	require.ErrorContains(t, err, "flush group 39")
	require.ErrorContains(t, err, "rolled back")
	require.True(t, f.unfenced)
	require.Less(t, unfencedAt.Sub(start), time.Minute, "the rollback waited for the other groups")
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	var res FailoverResult
	require.NoError(t, ae.Details(&res))
	require.Zero(t, res.GroupsDone, "a group completed before the rollback")
	for p := range (groups - 1) * size {
		require.Zero(t, res.Table.ReplayedLSN[p], "partition %d replayed before the rollback", p)
	}
}

// TestFlushDeadlineRollsBackNamingThePartition: one partition's replay is
// refused (retryably) every time: the others replay, it is retried on its
// own, and at the flush deadline the failover rolls back, naming it with
// its error; the fenced window is the deadline plus the rollback.
func TestFlushDeadlineRollsBackNamingThePartition(t *testing.T) {
	f := newFake(64)
	env := newEnvWithout(t, f, "FlushReplay")
	var c calls
	env.OnActivity(acts.FlushReplay, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.FlushReplayInput) (activities.FlushReplayResult, error) {
		c.add("replay")
		var keep []activities.PartitionLSN
		var res activities.FlushReplayResult
		for _, t := range in.Targets {
			if t.Partition == 3 {
				res.Failed, res.Errors = append(res.Failed, 3), append(res.Errors, "stamp answered 503 injected_fault: injected fault on stamp stamp-b (control flush-replay)")
				continue
			}
			keep = append(keep, t)
		}
		if len(keep) > 0 {
			ok, err := f.flushReplay(ctx, activities.FlushReplayInput{Targets: keep})
			if err != nil {
				return res, err
			}
			res.Replayed = ok.Replayed
		}
		return res, nil
	})
	deadline := 90 * time.Second
	res, err := run(t, env, FailoverRequest{Account: "acct-x", ToStamp: "stamp-b", Options: FailoverOptions{FlushDeadline: deadline}})
	require.ErrorContains(t, err, "rolled back")
	require.ErrorContains(t, err, "flush deadline")
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	require.NoError(t, ae.Details(&res))
	require.Equal(t, OutcomeRolledBack, res.Outcome)
	require.Equal(t, deadline, res.FlushDeadline)
	require.Equal(t, []PartitionIssue{{Partition: 3, Step: StepFlushReplay,
		Error: "stamp answered 503 injected_fault: injected fault on stamp stamp-b (control flush-replay)"}}, res.HeldUp)
	for p := range 64 {
		if p != 3 {
			require.Equal(t, f.final[p], f.final[p])
			require.NotZero(t, f.replayedAt[p], "partition %d was held back by partition 3", p)
		}
	}
	require.Greater(t, c.get("replay"), 10, "partition 3 was retried on its own until the deadline")
	require.True(t, f.unfenced)
	require.Zero(t, f.promotedAt)
	require.GreaterOrEqual(t, res.UnavailableMillis, deadline.Milliseconds())
	require.LessOrEqual(t, res.UnavailableMillis, (deadline + groupGrace).Milliseconds())
}

// TestRetryableReplayRefusalThatClearsCompletes: a partition refused a few
// times, then answering, is retried on its own and the failover completes.
func TestRetryableReplayRefusalThatClearsCompletes(t *testing.T) {
	f := newFake(8)
	env := newEnvWithout(t, f, "FlushReplay")
	refusals := 3
	var mu sync.Mutex
	env.OnActivity(acts.FlushReplay, mock.Anything, mock.Anything).Return(func(ctx context.Context, in activities.FlushReplayInput) (activities.FlushReplayResult, error) {
		mu.Lock()
		defer mu.Unlock()
		var keep []activities.PartitionLSN
		var res activities.FlushReplayResult
		for _, t := range in.Targets {
			if t.Partition == 5 && refusals > 0 {
				refusals--
				res.Failed, res.Errors = append(res.Failed, 5), append(res.Errors, "503")
				continue
			}
			keep = append(keep, t)
		}
		if len(keep) == 0 {
			return res, nil
		}
		ok, err := f.flushReplay(ctx, activities.FlushReplayInput{Targets: keep})
		res.Replayed = ok.Replayed
		return res, err
	})
	res, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, err)
	require.Equal(t, f.final[5], res.Table.ReplayedLSN[5])
	require.Len(t, res.Window, 4, "the fenced window is broken down by phase")
	require.Equal(t, res.UnavailableMillis, sumMillis(res.Window))
	require.Zero(t, refusals)
	require.True(t, errors.Is(err, nil))
}
