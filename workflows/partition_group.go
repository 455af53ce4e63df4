package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// Error types a PartitionGroupFailover fails with (besides the type of a
// stamp's final refusal, which it keeps: StaleEpoch, RefusedByStamp). Each
// carries the GroupResult, with HeldUp, as details.
const (
	// ErrTypeFlushDeadline: the group was not done by its Deadline.
	ErrTypeFlushDeadline = "FlushDeadlineExceeded"
	// ErrTypeFlushSendShort: a flush-send answered an LSN below the
	// partition's final LSN, which would be a silent loss.
	ErrTypeFlushSendShort = "FlushSendShort"
	// ErrTypeFlushSendGaveUp: a planned flush-send kept failing for
	// FlushSendGiveUp.
	ErrTypeFlushSendGaveUp = "FlushSendGaveUp"
)

// versionBoundedFlush is the workflow version from which a failover's
// fenced window is bounded by its FlushDeadline, the groups isolate their
// partitions' replay, and the parent acts on the first failed group.
const (
	changeBoundedFlush  = "bounded-flush"
	versionBoundedFlush = 1
)

// flushSendRetryPause is the pause before a group retries the partitions
// whose flush-send or flush-replay failed while the others went on.
const flushSendRetryPause = time.Second

// PartitionGroupFailover flush-sends a group of fenced partitions on the
// source, then flush-replays on the destination exactly what was sent. The
// partitions are independent: the group is sent in one call and replayed in
// one, but a partition refused in either is retried on its own while the
// others go on, so one slow or failing partition holds back nobody else.
// The group stops at its Deadline, cancelling what runs, and fails naming
// the partitions that held it up. A final refusal (stale epoch, conflict)
// fails it at once, keeping its error type, and is never retried.
//
// Unplanned, a partition whose source was given up on (Skip, or flush-send
// still failing after FlushSendGiveUp) replays everything the destination
// received and is reported in GivenUp.
func PartitionGroupFailover(ctx workflow.Context, in GroupInput) (GroupResult, error) {
	if workflow.GetVersion(
		ctx,
		changeBoundedFlush,
		workflow.DefaultVersion,
		versionBoundedFlush,
	) == workflow.DefaultVersion {
		return partitionGroupV0(ctx, in)
	}
	g := newGroup(ctx, in)
	return g.res, g.run(ctx)
}

// Where a partition of a group is.
type partStep int

const (
	awaitingSend partStep = iota
	awaitingReplay
	replayed
)

// group is one run of PartitionGroupFailover: every partition's step and
// last error, and the selector over the group's running activities and
// timers. Its callbacks run on the workflow's goroutine, one at a time.
type group struct {
	in       GroupInput
	res      GroupResult
	index    map[int]int // partition -> position in in.Partitions
	step     []partStep
	lastErr  []string
	replays  int // partitions replayed
	sel      workflow.Selector
	send     workflow.Context
	replay   workflow.Context
	giveUpAt time.Time // flush-send retries end (FlushSendGiveUp)
	failure  error     // set once the group must stop
	// inline: the group runs inside its failover (versionFastPath), which
	// hears of its progress through progress rather than a signal.
	inline   bool
	progress func(sent int)
}

func newGroup(ctx workflow.Context, in GroupInput) *group {
	n := len(in.Partitions)
	g := &group{in: in, index: make(map[int]int, n), step: make([]partStep, n), lastErr: make([]string, n),
		giveUpAt: workflow.Now(ctx).Add(in.FlushSendGiveUp)}
	g.res = GroupResult{SentLSN: make([]uint64, n), ReplayedLSN: make([]uint64, n), SendMillis: make([]int64, n),
		ReplayMillis: make([]int64, n), SentAfterMillis: make([]int64, n), ReplayedAfterMillis: make([]int64, n)}
	for i, p := range in.Partitions {
		g.index[p] = i
	}
	return g
}

// run flushes the group until every partition is replayed, a partition
// fails for good, or the deadline passes; then it cancels what still runs.
func (g *group) run(ctx workflow.Context) error {
	ctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	g.sel = workflow.NewSelector(ctx)
	g.setActivityOptions(ctx)
	g.noteChildStart(ctx)
	g.armDeadline(ctx)
	var pending, skipped []int
	for i, p := range g.in.Partitions {
		if g.in.Unplanned && g.in.Skip[i] {
			skipped = append(skipped, p)
		} else {
			pending = append(pending, p)
		}
	}
	g.giveUp(ctx, skipped)
	if len(pending) > 0 {
		g.startSend(ctx, pending)
	}
	for g.failure == nil && g.replays < len(g.in.Partitions) {
		g.sel.Select(ctx)
	}
	return g.failure
}

// setActivityOptions: every attempt ends by the deadline; a few attempts
// cover a lost worker, and the group's own loop retries the rest, so it
// always knows each partition's last error.
func (g *group) setActivityOptions(ctx workflow.Context) {
	span := fmt.Sprintf("partitions %d-%d", g.in.Partitions[0], g.in.Partitions[len(g.in.Partitions)-1])
	hb := g.in.HeartbeatTimeout
	if hb <= 0 {
		hb = 10 * time.Second
	}
	left := max(g.in.Deadline.Sub(workflow.Now(ctx)), time.Second)
	sendAttempt := 2 * time.Minute
	if g.in.Unplanned {
		sendAttempt = 15 * time.Second
	}
	g.send = boundedActivity(ctx, min(sendAttempt, left), left, hb, "flush-send "+span)
	g.replay = boundedActivity(ctx, min(g.in.ReplayTimeout, left), left, hb, "flush-replay "+span)
}

// boundedActivity sets options for an activity that must end within left:
// attempts of at most attempt each, three of them at most.
func boundedActivity(ctx workflow.Context, attempt, left, heartbeat time.Duration, summary string) workflow.Context {
	return workflow.WithScheduleToCloseTimeout(withActivity(ctx, attempt, heartbeat, 3, summary), left)
}

// noteChildStart counts the time the group waited for a worker to start it
// as flush-send wait.
func (g *group) noteChildStart(ctx workflow.Context) {
	if g.inline {
		return
	}
	if started := workflow.GetInfo(ctx).WorkflowStartTime; !started.IsZero() {
		g.res.SendWaitMillis += max(0, workflow.Now(ctx).Sub(started).Milliseconds())
	}
}

// armDeadline stops the group at its deadline.
func (g *group) armDeadline(ctx workflow.Context) {
	left := g.in.Deadline.Sub(workflow.Now(ctx))
	if left <= 0 {
		g.failure = g.deadlineError()
		return
	}
	g.sel.AddFuture(workflow.NewTimer(ctx, left), func(workflow.Future) {
		if g.failure == nil {
			g.failure = g.deadlineError()
		}
	})
}

// startSend flush-sends ps in one call.
func (g *group) startSend(ctx workflow.Context, ps []int) {
	scheduled := workflow.Now(ctx)
	f := execute(g.send, acts.FlushSend,
		activities.FlushSendInput{Account: g.in.Account, FromURL: g.in.FromURL, Partitions: ps})
	g.sel.AddFuture(f, func(f workflow.Future) {
		var sr activities.FlushSendResult
		err := f.Get(ctx, &sr)
		if g.failure != nil {
			return
		}
		if err != nil {
			if final(err) {
				g.fail(StepFlushSend, ps, err)
				return
			}
			sr = activities.FlushSendResult{Failed: ps, Errors: repeat(err.Error(), len(ps))}
		}
		g.res.SendWaitMillis += idle(scheduled, sr.Timing, workflow.Now(ctx))
		g.sent(ctx, sr)
	})
}

// sent records a flush-send's answer: the sent partitions go on to replay,
// the failed ones are retried on their own (or given up on, unplanned).
func (g *group) sent(ctx workflow.Context, sr activities.FlushSendResult) {
	now := workflow.Now(ctx)
	targets := make([]activities.PartitionLSN, 0, len(sr.Sent))
	for _, s := range sr.Sent {
		i := g.index[s.Partition]
		if err := sentShort(s, g.in.FinalLSN[i]); err != nil {
			g.fail(StepFlushSend, []int{s.Partition}, err)
			return
		}
		g.res.SentLSN[i], g.res.SendMillis[i] = s.LSN, s.Millis
		g.res.SentAfterMillis[i] = now.Sub(g.in.FencedAt).Milliseconds()
		g.step[i], g.lastErr[i] = awaitingReplay, ""
		targets = append(targets, s)
	}
	if len(targets) > 0 {
		g.startReplay(ctx, targets)
		g.noteProgress(ctx, len(targets))
	}
	if len(sr.Failed) == 0 {
		return
	}
	g.noteErrors(sr.Failed, sr.Errors, sr.LastError)
	switch {
	case now.Before(g.giveUpAt):
		failed := sr.Failed
		g.after(ctx, flushSendRetryPause, func() { g.startSend(ctx, failed) })
	case g.in.Unplanned:
		g.giveUp(ctx, sr.Failed)
	default:
		g.fail(StepFlushSend, sr.Failed, temporal.NewNonRetryableApplicationError(
			fmt.Sprintf(
				"flush-send of partitions %v still failing after %s: %s",
				sr.Failed,
				g.in.FlushSendGiveUp,
				sr.LastError,
			),
			ErrTypeFlushSendGaveUp,
			nil,
		))
	}
}

// sentShort refuses a flush-send that shipped less than the partition's
// final LSN: after the fence, anything less would be a silent loss.
func sentShort(s activities.PartitionLSN, final uint64) error {
	if s.LSN >= final {
		return nil
	}
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("partition %d: flush-send reached LSN %d, short of its final LSN %d", s.Partition, s.LSN, final),
		ErrTypeFlushSendShort, nil)
}

// giveUp (unplanned) replays what the destination received of ps.
func (g *group) giveUp(ctx workflow.Context, ps []int) {
	if len(ps) == 0 {
		return
	}
	targets := make([]activities.PartitionLSN, len(ps))
	for i, p := range ps {
		targets[i] = activities.PartitionLSN{Partition: p} // LSN 0: all received
		g.step[g.index[p]] = awaitingReplay
	}
	g.res.GivenUp = append(g.res.GivenUp, ps...)
	g.startReplay(ctx, targets)
}

// startReplay flush-replays targets in one call.
func (g *group) startReplay(ctx workflow.Context, targets []activities.PartitionLSN) {
	scheduled := workflow.Now(ctx)
	f := execute(g.replay, acts.FlushReplay,
		activities.FlushReplayInput{Account: g.in.Account, ToURL: g.in.ToURL, Targets: targets, ReportFailed: true})
	g.sel.AddFuture(f, func(f workflow.Future) {
		var rr activities.FlushReplayResult
		err := f.Get(ctx, &rr)
		if g.failure != nil {
			return
		}
		if err != nil {
			if final(err) {
				g.fail(StepFlushReplay, partitionsOf(targets), err)
				return
			}
			rr = activities.FlushReplayResult{Failed: partitionsOf(targets), Errors: repeat(err.Error(), len(targets))}
		}
		g.res.ReplayWaitMillis = max(g.res.ReplayWaitMillis, idle(scheduled, rr.Timing, workflow.Now(ctx)))
		g.replayedSome(ctx, targets, rr)
	})
}

// replayedSome records a flush-replay's answer and retries, on their own,
// the partitions it set aside.
func (g *group) replayedSome(ctx workflow.Context, targets []activities.PartitionLSN, rr activities.FlushReplayResult) {
	now := workflow.Now(ctx)
	for _, r := range rr.Replayed {
		i := g.index[r.Partition]
		g.res.ReplayedLSN[i], g.res.ReplayMillis[i] = r.LSN, r.Millis
		g.res.ReplayedAfterMillis[i] = now.Sub(g.in.FencedAt).Milliseconds()
		g.step[i], g.lastErr[i] = replayed, ""
		g.replays++
	}
	if len(rr.Failed) == 0 {
		return
	}
	g.noteErrors(rr.Failed, rr.Errors, "flush-replay refused")
	var again []activities.PartitionLSN
	for _, t := range targets {
		if g.step[g.index[t.Partition]] != replayed {
			again = append(again, t)
		}
	}
	g.after(ctx, flushSendRetryPause, func() { g.startReplay(ctx, again) })
}

// after runs fn after d, unless the group stopped by then.
func (g *group) after(ctx workflow.Context, d time.Duration, fn func()) {
	g.sel.AddFuture(workflow.NewTimer(ctx, d), func(workflow.Future) {
		if g.failure == nil {
			fn()
		}
	})
}

func (g *group) noteErrors(ps []int, errs []string, last string) {
	for j, p := range ps {
		g.lastErr[g.index[p]] = errorAt(errs, j, last)
	}
}

// fail stops the group for good: a final refusal of ps keeps its error
// type, so nobody above retries it.
func (g *group) fail(step string, ps []int, err error) {
	if pf, ok := activities.RefusedPartition(err); ok {
		if _, mine := g.index[pf.Partition]; mine {
			ps = []int{pf.Partition} // the refusal names its partition
		}
	}
	for _, p := range ps {
		g.lastErr[g.index[p]] = rootMessage(err)
	}
	g.res.HeldUp = g.heldUp(step, ps)
	typ := "FlushFailed"
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) && ae.Type() != "" {
		typ = ae.Type()
	}
	g.failure = temporal.NewNonRetryableApplicationError(
		fmt.Sprintf("%s of partition %d of %s: %s", step, ps[0], g.in.Account, rootMessage(err)), typ, err, g.res)
}

// deadlineError names every partition not replayed by the deadline.
func (g *group) deadlineError() error {
	var held []int
	for i, p := range g.in.Partitions {
		if g.step[i] != replayed {
			held = append(held, p)
		}
	}
	g.res.HeldUp = g.heldUp("", held)
	first := g.res.HeldUp[0]
	return temporal.NewNonRetryableApplicationError(
		fmt.Sprintf(
			"%d partitions of %s not flushed by the flush deadline (%s after the fence); partition %d at %s: %s",
			len(held),
			g.in.Account,
			g.in.Deadline.Sub(g.in.FencedAt),
			first.Partition,
			first.Step,
			first.Error,
		),
		ErrTypeFlushDeadline,
		nil,
		g.res,
	)
}

// heldUp describes ps (step "" = where each one is).
func (g *group) heldUp(step string, ps []int) []PartitionIssue {
	out := make([]PartitionIssue, len(ps))
	for j, p := range ps {
		i := g.index[p]
		s := step
		if s == "" {
			s = StepFlushSend
			if g.step[i] == awaitingReplay {
				s = StepFlushReplay
			}
		}
		e := g.lastErr[i]
		if e == "" {
			e = "no answer yet: still running at the deadline"
		}
		out[j] = PartitionIssue{Partition: p, Step: s, Error: e}
	}
	return out
}

// final reports whether err is an activity's refusal that retrying cannot
// change (a non-retryable application error).
func final(err error) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.NonRetryable()
}

// rootMessage is the innermost message of an error chain: what the stamp
// said, without the SDK's wrapping.
func rootMessage(err error) string {
	var ae *temporal.ApplicationError
	if errors.As(err, &ae) {
		return ae.Message()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return te.Error()
	}
	return err.Error()
}

// waited is how long an activity waited between being scheduled and the
// start of the attempt that answered: for a worker, or for a retry.
func waited(scheduled, started time.Time) int64 {
	if started.IsZero() || started.Before(scheduled) {
		return 0
	}
	return started.Sub(scheduled).Milliseconds()
}

// idle is the time an activity scheduled at scheduled and noticed done at
// noticed did not run: waiting for a worker or a retry before the attempt
// that answered, and for a workflow task after it (a workflow cached on a
// lost worker waits for its sticky queue to time out).
func idle(scheduled time.Time, t activities.Timing, noticed time.Time) int64 {
	n := waited(scheduled, t.Started)
	if !t.Finished.IsZero() && noticed.After(t.Finished) {
		n += noticed.Sub(t.Finished).Milliseconds()
	}
	return n
}

func partitionsOf(ts []activities.PartitionLSN) []int {
	out := make([]int, len(ts))
	for i, t := range ts {
		out[i] = t.Partition
	}
	return out
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// signalProgress tells the parent how many partitions this group has sent,
// for its progress query, without waiting for the signal to land. Best
// effort: a lost report only makes the progress bar coarser.
// noteProgress tells the failover how many more partitions were sent.
func (g *group) noteProgress(ctx workflow.Context, sent int) {
	if g.progress != nil {
		g.progress(sent)
		return
	}
	signalProgress(ctx, g.in.Group, sent)
}

func signalProgress(ctx workflow.Context, group, sent int) workflow.Future {
	parent := workflow.GetInfo(ctx).ParentWorkflowExecution
	if parent == nil {
		return nil
	}
	return workflow.SignalExternalWorkflow(
		ctx,
		parent.ID,
		parent.RunID,
		SignalGroupProgress,
		GroupProgress{Group: group, Sent: sent},
	)
}
