package workflows

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/batonhq/baton/activities"
)

// fakeStamps answers the activities from an in-memory model of one account
// and records the order in which the steps happened.
type fakeStamps struct {
	mu         sync.Mutex
	partitions int
	final      []uint64
	seq        int
	sentAt     map[int]int // partition -> sequence number of its flush-send
	replayedAt map[int]int // partition -> sequence number of its replay
	promotedAt int
	fenced     bool
	unfenced   bool
	// failSend[p] > 0: the next failSend[p] flush-sends of p fail.
	failSend map[int]int
	// fenceFailures: the next fenceFailures fences fail (retryably).
	fenceFailures int
	fenceCalls    int
	precheckErr   error
	replayErr     error
}

func newFake(partitions int) *fakeStamps {
	f := &fakeStamps{partitions: partitions, final: make([]uint64, partitions),
		sentAt: map[int]int{}, replayedAt: map[int]int{}, failSend: map[int]int{}}
	for p := range f.final {
		f.final[p] = uint64(100 + p)
	}
	return f
}

func (f *fakeStamps) next() int { f.seq++; return f.seq }

func (f *fakeStamps) precheck(_ context.Context, in activities.PrecheckInput) (activities.PrecheckResult, error) {
	if f.precheckErr != nil {
		return activities.PrecheckResult{}, f.precheckErr
	}
	return activities.PrecheckResult{Account: in.Account, Partitions: f.partitions, From: "stamp-a", FromURL: "http://a",
		To: "stamp-b", ToURL: "http://b", Epoch: 1}, nil
}

func (f *fakeStamps) catchUp(context.Context, activities.CatchUpInput) (activities.CatchUpResult, error) {
	return activities.CatchUpResult{CaughtUp: true}, nil
}

func (f *fakeStamps) fence(_ context.Context, in activities.FenceInput) (activities.FenceResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fenceCalls++
	if f.fenceCalls <= f.fenceFailures {
		return activities.FenceResult{}, errors.New("stamp answered 503 injected_fault")
	}
	f.fenced = true
	return activities.FenceResult{FinalLSN: append([]uint64(nil), f.final...)}, nil
}

func (f *fakeStamps) flushSend(_ context.Context, in activities.FlushSendInput) (activities.FlushSendResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var r activities.FlushSendResult
	for _, p := range in.Partitions {
		if f.failSend[p] > 0 {
			f.failSend[p]--
			r.Failed = append(r.Failed, p)
			r.LastError = fmt.Sprintf("partition %d: injected", p)
			continue
		}
		f.sentAt[p] = f.next()
		r.Sent = append(r.Sent, activities.PartitionLSN{Partition: p, LSN: f.final[p], Millis: 1})
	}
	if len(r.Sent) == 0 {
		return activities.FlushSendResult{}, errors.New("every partition failed")
	}
	return r, nil
}

func (f *fakeStamps) flushReplay(_ context.Context, in activities.FlushReplayInput) (activities.FlushReplayResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.replayErr != nil {
		return activities.FlushReplayResult{}, f.replayErr
	}
	var r activities.FlushReplayResult
	for _, t := range in.Targets {
		f.replayedAt[t.Partition] = f.next()
		r.Replayed = append(r.Replayed, activities.PartitionLSN{Partition: t.Partition, LSN: t.LSN, Millis: 2})
	}
	return r, nil
}

func (f *fakeStamps) promote(_ context.Context, in activities.PromoteInput) (activities.PromoteResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.promotedAt = f.next()
	return activities.PromoteResult{StartLSN: make([]uint64, in.Partitions)}, nil
}

func (f *fakeStamps) unfence(context.Context, activities.UnfenceInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unfenced = true
	return nil
}

func newEnv(t *testing.T, f *fakeStamps) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(AccountFailover)
	env.RegisterWorkflow(PartitionGroupFailover)
	env.RegisterActivity(acts)
	env.OnActivity(acts.Precheck, mock.Anything, mock.Anything).Return(f.precheck).Maybe()
	env.OnActivity(acts.CatchUp, mock.Anything, mock.Anything).Return(f.catchUp).Maybe()
	env.OnActivity(acts.Fence, mock.Anything, mock.Anything).Return(f.fence).Maybe()
	env.OnActivity(acts.FlushSend, mock.Anything, mock.Anything).Return(f.flushSend).Maybe()
	env.OnActivity(acts.FlushReplay, mock.Anything, mock.Anything).Return(f.flushReplay).Maybe()
	env.OnActivity(acts.Promote, mock.Anything, mock.Anything).Return(f.promote).Maybe()
	env.OnActivity(acts.Unfence, mock.Anything, mock.Anything).Return(f.unfence).Maybe()
	return env
}

func run(t *testing.T, env *testsuite.TestWorkflowEnvironment, req FailoverRequest) (FailoverResult, error) {
	t.Helper()
	env.ExecuteWorkflow(AccountFailover, req)
	require.True(t, env.IsWorkflowCompleted())
	var res FailoverResult
	if err := env.GetWorkflowError(); err != nil {
		return res, err
	}
	require.NoError(t, env.GetWorkflowResult(&res))
	return res, nil
}

func TestFailoverOrdersSendReplayPromote(t *testing.T) {
	f := newFake(600)
	res, err := run(t, newEnv(t, f), FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, err)
	require.Equal(t, 600, res.Partitions)
	require.Equal(t, 3, res.Groups)
	require.Equal(t, uint64(2), res.NewEpoch)
	for p := range 600 {
		require.NotZero(t, f.sentAt[p], "partition %d never sent", p)
		require.Greater(t, f.replayedAt[p], f.sentAt[p], "partition %d replayed before it was sent", p)
		require.Greater(t, f.promotedAt, f.replayedAt[p], "promote before partition %d replayed", p)
		require.Equal(t, f.final[p], res.Table.ReplayedLSN[p])
		require.Equal(t, f.final[p], res.Table.FinalLSN[p])
	}
	require.False(t, f.unfenced)
}

func TestFailingPartitionDoesNotHoldBackItsGroup(t *testing.T) {
	f := newFake(10)
	f.failSend[3] = 2 // partition 3's flush-send fails twice, then works
	res, err := run(t, newEnv(t, f), FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, err)
	for p := range 10 {
		if p == 3 {
			continue
		}
		require.Less(t, f.replayedAt[p], f.sentAt[3], "partition %d waited for the failing partition 3", p)
	}
	require.Equal(t, f.final[3], res.Table.ReplayedLSN[3])
	require.Greater(t, f.promotedAt, f.replayedAt[3])
}

func TestActivityRetriesThenSucceeds(t *testing.T) {
	f := newFake(5)
	f.fenceFailures = 2
	_, err := run(t, newEnv(t, f), FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, err)
	require.Equal(t, 3, f.fenceCalls, "two retryable failures, then success")
}

func TestPrecheckRefusalTouchesNothing(t *testing.T) {
	f := newFake(5)
	f.precheckErr = temporal.NewNonRetryableApplicationError("account acct: its primary is stamp-b, not the expected stamp-a", activities.ErrTypePrecheck, nil)
	_, err := run(t, newEnv(t, f), FailoverRequest{Account: "acct", FromStamp: "stamp-a", ToStamp: "stamp-b"})
	require.ErrorContains(t, err, "not the expected stamp-a")
	require.Zero(t, f.fenceCalls, "a refused precheck must not fence")
	require.Zero(t, f.promotedAt)
	require.False(t, f.unfenced)
}

func TestFlushFailureRollsBack(t *testing.T) {
	f := newFake(20)
	f.replayErr = temporal.NewNonRetryableApplicationError("flush-replay: beyond received", activities.ErrTypeRefused, nil)
	_, err := run(t, newEnv(t, f), FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.ErrorContains(t, err, "rolled back")
	require.True(t, f.unfenced, "a failure before promote must unfence the source")
	require.Zero(t, f.promotedAt, "nothing may be promoted")
}

func TestTreeFanOutFor5000Partitions(t *testing.T) {
	f := newFake(5000)
	res, err := run(t, newEnv(t, f), FailoverRequest{Account: "big", ToStamp: "stamp-b"})
	require.NoError(t, err)
	require.Equal(t, 20, res.Groups, "5,000 partitions in groups of 250")
	require.LessOrEqual(t, res.Groups, MaxChildren)
	require.Len(t, res.Table.Partition, 5000)
	for p := range 5000 {
		require.Equal(t, f.final[p], res.Table.ReplayedLSN[p], "partition %d", p)
	}
}

func TestGroupSizeKeepsChildrenUnderCap(t *testing.T) {
	o := FailoverOptions{GroupSize: 10}.withDefaults(100_000)
	require.LessOrEqual(t, (100_000+o.GroupSize-1)/o.GroupSize, MaxChildren)
}
