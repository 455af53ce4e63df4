package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

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
	// unreachable partitions never answer fence or flush-send (unplanned).
	unreachable map[int]bool
	// received[p] is what the destination holds of an unreachable partition.
	received map[int]uint64
	// sourceDown: the precheck cannot read the source.
	sourceDown bool
	// delay[activity] is how long (in the test's virtual time) it takes.
	delay map[string]time.Duration
	// resume, promotedAhead: what the precheck finds an earlier attempt did.
	resume        activities.Resume
	promotedAhead int
}

func newFake(partitions int) *fakeStamps {
	f := &fakeStamps{partitions: partitions, final: make([]uint64, partitions),
		sentAt: map[int]int{}, replayedAt: map[int]int{}, failSend: map[int]int{},
		unreachable: map[int]bool{}, received: map[int]uint64{}, delay: map[string]time.Duration{}}
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
		To: "stamp-b", ToURL: "http://b", Epoch: 1, SourceReachable: !f.sourceDown, DestinationHealthy: true,
		Resume: f.resume, PromotedAhead: f.promotedAhead}, nil
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
	res := activities.FenceResult{FinalLSN: make([]uint64, f.partitions), Fenced: make([]bool, f.partitions)}
	ps := in.Only
	if ps == nil {
		ps = activities.AllPartitions(f.partitions)
	}
	for _, p := range ps {
		if f.unreachable[p] {
			if !in.BestEffort {
				return activities.FenceResult{}, fmt.Errorf("partition %d unreachable", p)
			}
			res.Unreachable = append(res.Unreachable, p)
			continue
		}
		res.FinalLSN[p], res.Fenced[p] = f.final[p], true
	}
	return res, nil
}

func (f *fakeStamps) flushSend(_ context.Context, in activities.FlushSendInput) (activities.FlushSendResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var r activities.FlushSendResult
	for _, p := range in.Partitions {
		if f.unreachable[p] {
			r.Failed = append(r.Failed, p)
			continue
		}
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
		lsn := t.LSN
		if lsn == 0 {
			lsn = f.received[t.Partition]
		}
		r.Replayed = append(r.Replayed, activities.PartitionLSN{Partition: t.Partition, LSN: lsn, Millis: 2})
	}
	return r, nil
}

func (f *fakeStamps) promote(_ context.Context, in activities.PromoteInput) (activities.PromoteResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.promotedAt = f.next()
	return activities.PromoteResult{StartLSN: make([]uint64, in.Partitions)}, nil
}

// ledger: the source reported final[p] written; the destination holds
// received[p].
func (f *fakeStamps) ledger(_ context.Context, in activities.LossLedgerInput) ([]activities.LossEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []activities.LossEntry
	for _, p := range in.Partitions {
		out = append(out, activities.LossEntry{Partition: p, FromLSN: f.received[p] + 1, ToLSN: f.final[p], Ops: f.final[p] - f.received[p]})
	}
	return out, nil
}

func (f *fakeStamps) unfence(context.Context, activities.UnfenceInput) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.unfenced = true
	return nil
}

func newEnv(t *testing.T, f *fakeStamps) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	return newEnvWithout(t, f)
}

// newEnvWithout is newEnv leaving the named activities for the test to
// mock itself.
func newEnvWithout(t *testing.T, f *fakeStamps, own ...string) *testsuite.TestWorkflowEnvironment {
	t.Helper()
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.RegisterWorkflow(AccountFailover)
	env.RegisterWorkflow(PartitionGroupFailover)
	env.RegisterActivity(acts)
	fakes := []struct {
		name string
		fn   any
		fake any
	}{
		{"Precheck", acts.Precheck, f.precheck},
		{"CatchUp", acts.CatchUp, f.catchUp},
		{"Fence", acts.Fence, f.fence},
		{"FlushSend", acts.FlushSend, f.flushSend},
		{"FlushReplay", acts.FlushReplay, f.flushReplay},
		{"Promote", acts.Promote, f.promote},
		{"Unfence", acts.Unfence, f.unfence},
		{"LossLedger", acts.LossLedger, f.ledger},
	}
	for _, a := range fakes {
		if !slices.Contains(own, a.name) {
			env.OnActivity(a.fn, mock.Anything, mock.Anything).After(f.delay[a.name]).Return(a.fake).Maybe()
		}
	}
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

// decide sends an update at a (virtual) time and records how it was taken.
func decide(env *testsuite.TestWorkflowEnvironment, at time.Duration, update string, d Decision, rejected *error) {
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(update, update+"-1", &testsuite.TestUpdateCallback{
			OnAccept:   func() {},
			OnReject:   func(err error) { *rejected = err },
			OnComplete: func(any, error) {},
		}, d)
	}, at)
}

func TestApprovalGate(t *testing.T) {
	tests := []struct {
		name        string
		update      string // "" = nobody answers
		wantOutcome Outcome
		wantErr     string
	}{
		{"approved", UpdateApprove, OutcomeCompleted, ""},
		{"rejected", UpdateReject, OutcomeRejected, "rejected by alice (not now): nothing was touched"},
		{"timed out", "", OutcomeTimedOut, "no approval within 10m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFake(10)
			env := newEnv(t, f)
			var rejected error
			if tt.update != "" {
				decide(env, time.Minute, tt.update, Decision{By: "alice", Reason: "not now"}, &rejected)
			}
			res, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b",
				Approval: ApprovalPolicy{Required: true, Timeout: 10 * time.Minute}})
			require.NoError(t, rejected)
			if tt.wantErr == "" {
				require.NoError(t, err)
				require.Equal(t, "alice", res.Approval.By)
				require.True(t, res.ApprovalRequired)
				require.NotZero(t, f.promotedAt)
				return
			}
			require.ErrorContains(t, err, tt.wantErr)
			got := resultOf(t, err)
			require.Equal(t, tt.wantOutcome, got.Outcome)
			require.Zero(t, f.fenceCalls, "nothing may be touched before the gate")
		})
	}
}

// resultOf digs the FailoverResult out of a failed failover's error.
func resultOf(t *testing.T, err error) FailoverResult {
	t.Helper()
	var ae *temporal.ApplicationError
	require.ErrorAs(t, err, &ae)
	var res FailoverResult
	require.NoError(t, ae.Details(&res))
	return res
}

func TestPolicyAsksApprovalForUnplannedAndAutomatic(t *testing.T) {
	tests := []struct {
		req  FailoverRequest
		want bool
	}{
		{FailoverRequest{Mode: ModePlanned, Trigger: TriggerManual}, false},
		{FailoverRequest{Mode: ModeUnplanned, Trigger: TriggerManual}, true},
		{FailoverRequest{Mode: ModePlanned, Trigger: TriggerAlert}, true},
		{FailoverRequest{Mode: ModePlanned, Trigger: TriggerManual, Approval: ApprovalPolicy{LossBudgetOps: 10}}, true},
		{FailoverRequest{Mode: ModePlanned, Trigger: TriggerManual, Approval: ApprovalPolicy{LossBudgetOps: 1000}}, false},
	}
	for _, tt := range tests {
		got, why := needsApproval(tt.req, activities.PrecheckResult{EstimatedLossOps: 100})
		require.Equal(t, tt.want, got, "%+v: %s", tt.req, why)
	}
}

func TestAbortBeforePromoteRollsBack(t *testing.T) {
	f := newFake(10)
	f.delay["FlushReplay"] = time.Hour // so the abort lands mid-flush
	env := newEnv(t, f)
	var rejected error
	decide(env, time.Minute, UpdateAbort, Decision{By: "bob", Reason: "wrong account"}, &rejected)
	_, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, rejected)
	require.ErrorContains(t, err, "aborted by bob (wrong account)")
	require.ErrorContains(t, err, "rolled back")
	res := resultOf(t, err)
	require.Equal(t, OutcomeAborted, res.Outcome)
	require.Equal(t, "bob", res.Abort.By)
	require.True(t, f.unfenced, "an abort after fence must unfence the source")
	require.Zero(t, f.promotedAt)
}

func TestAbortAfterPromoteIsRefused(t *testing.T) {
	f := newFake(10)
	f.delay["Promote"] = time.Hour
	env := newEnv(t, f)
	var rejected error
	decide(env, 10*time.Minute, UpdateAbort, Decision{By: "bob", Reason: "too late"}, &rejected)
	res, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, err)
	require.ErrorContains(t, rejected, "point of no return")
	require.Equal(t, OutcomeCompleted, res.Outcome)
	require.False(t, f.unfenced)
}

func TestAbortSignalAfterPromoteIsRecordedAsRefused(t *testing.T) {
	f := newFake(4)
	f.delay["Promote"] = time.Hour
	env := newEnv(t, f)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(UpdateAbort, Decision{By: "ui-user"}) }, 10*time.Minute)
	res, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, err)
	require.Len(t, res.Refusals, 1)
	require.Contains(t, res.Refusals[0], "point of no return")
}

func TestUnplannedGivesUpOnUnreachablePartitionWithLedger(t *testing.T) {
	f := newFake(10)
	f.unreachable[3] = true
	f.received[3] = 90 // the source wrote 103; the destination got 90
	var rejected error
	env := newEnv(t, f)
	decide(env, time.Minute, UpdateApprove, Decision{By: "oncall", Reason: "stamp-a is down"}, &rejected)
	res, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b", Mode: ModeUnplanned,
		Options: FailoverOptions{SourceTimeout: 20 * time.Second}})
	require.NoError(t, err)
	require.NoError(t, rejected)
	require.Equal(t, OutcomeCompleted, res.Outcome)
	require.True(t, res.ApprovalRequired, "unplanned needs an approval")
	require.Equal(t, []int{3}, res.GivenUp)
	require.Equal(t, []activities.LossEntry{{Partition: 3, FromLSN: 91, ToLSN: 103, Ops: 13}}, res.Ledger)
	require.Equal(t, uint64(13), res.LostOps)
	require.Equal(t, uint64(90), res.Table.ReplayedLSN[3])
	for p := range 10 {
		if p != 3 {
			require.Equal(t, f.final[p], res.Table.ReplayedLSN[p], "reachable partition %d is flushed in full", p)
		}
	}
	require.NotZero(t, f.promotedAt)
}

func TestPlannedRefusesUnreachablePartition(t *testing.T) {
	f := newFake(10)
	f.unreachable[3] = true
	_, err := run(t, newEnv(t, f), FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.ErrorContains(t, err, "rolled back")
	require.True(t, f.unfenced)
	require.Zero(t, f.promotedAt)
}

func TestDryRunTouchesNothing(t *testing.T) {
	f := newFake(10)
	res, err := run(t, newEnv(t, f), FailoverRequest{Account: "acct", ToStamp: "stamp-b", DryRun: true})
	require.NoError(t, err)
	require.Equal(t, OutcomeDryRun, res.Outcome)
	require.Equal(t, 10, res.Precheck.Partitions)
	require.Zero(t, f.fenceCalls)
}

func TestBadRequestIsRefused(t *testing.T) {
	f := newFake(1)
	_, err := run(t, newEnv(t, f), FailoverRequest{Account: "acct", ToStamp: "stamp-b", Mode: "sideways"})
	require.ErrorContains(t, err, `mode "sideways"`)
	require.Zero(t, f.fenceCalls)
}

func TestAlertsAttachOnce(t *testing.T) {
	f := newFake(2)
	f.delay["Promote"] = time.Hour
	env := newEnv(t, f)
	var acks []AlertAck
	for i, fp := range []string{"fp1", "fp1", "fp2"} {
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(UpdateAlert, fmt.Sprintf("alert-%d", i), &testsuite.TestUpdateCallback{
				OnAccept: func() {}, OnReject: func(err error) { t.Errorf("alert update rejected: %v", err) },
				OnComplete: func(v any, err error) { acks = append(acks, v.(AlertAck)) },
			}, AlertRef{Source: "alertmanager", Name: "StampDown", Fingerprint: fp})
		}, time.Duration(i+1)*time.Minute)
	}
	res, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b", Trigger: TriggerAlert,
		Alerts: []AlertRef{{Fingerprint: "fp0"}}, Approval: ApprovalPolicy{PreApproved: &Decision{By: "test"}}})
	require.NoError(t, err)
	require.Len(t, res.Alerts, 3, "fp0, fp1, fp2: the repeat of fp1 is not recorded twice")
	require.Equal(t, []bool{true, false, true}, []bool{acks[0].Attached, acks[1].Attached, acks[2].Attached})
}

func TestProgressQuery(t *testing.T) {
	f := newFake(600)
	f.delay["Promote"] = time.Hour
	env := newEnv(t, f)
	var during Progress
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryProgress)
		require.NoError(t, err)
		require.NoError(t, v.Get(&during))
	}, 30*time.Minute)
	_, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, err)
	require.Equal(t, PhasePromote, during.Phase)
	require.Equal(t, 600, during.Done[StepFence])
	require.Equal(t, 600, during.Done[StepFlushSend])
	require.Equal(t, 600, during.Done[StepFlushReplay])
	require.Equal(t, 3, during.GroupsDone)
	require.Len(t, during.Slowest, 5)
}

// TestRejectBeforeTheGateIsHonoured: a reject accepted while the precheck
// runs stops even a failover that needed no approval.
func TestRejectBeforeTheGateIsHonoured(t *testing.T) {
	f := newFake(4)
	f.delay["Precheck"] = time.Hour
	env := newEnv(t, f)
	var rejected error
	decide(env, time.Minute, UpdateReject, Decision{By: "oncall", Reason: "not today"}, &rejected)
	_, err := run(t, env, FailoverRequest{Account: "acct", ToStamp: "stamp-b"})
	require.NoError(t, rejected)
	require.ErrorContains(t, err, "rejected by oncall (not today)")
	require.Equal(t, OutcomeRejected, resultOf(t, err).Outcome)
	require.Zero(t, f.fenceCalls)
}

// TestFailoverPicksUpWhereItsLostAttemptGot: when the precheck finds the
// destination partly promoted by this failover (its worker lost the record
// of the local steps), the failover finishes the promote without fencing or
// flushing again; when it finds the account moved by this failover, it
// reports done without touching anything.
func TestFailoverPicksUpWhereItsLostAttemptGot(t *testing.T) {
	f := newFake(4)
	f.resume, f.promotedAhead = activities.ResumePromote, 3
	res, err := run(t, newEnv(t, f), FailoverRequest{Account: "a", ToStamp: "stamp-b"})
	require.NoError(t, err)
	require.Equal(t, OutcomeCompleted, res.Outcome)
	require.Contains(t, res.Resumed, "the promote was finished")
	require.NotZero(t, f.promotedAt)
	require.Zero(t, f.fenceCalls, "no fence again")
	require.Empty(t, f.sentAt, "no flush again")

	f = newFake(4)
	f.resume = activities.ResumeMoved
	res, err = run(t, newEnv(t, f), FailoverRequest{Account: "a", ToStamp: "stamp-b"})
	require.NoError(t, err)
	require.Equal(t, OutcomeCompleted, res.Outcome)
	require.Contains(t, res.Resumed, "nothing was done again")
	require.Zero(t, f.promotedAt)
	require.Zero(t, f.fenceCalls)
}
