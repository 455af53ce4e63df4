package workflows

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// admit starts accounts while there is room: first the retries that are
// due, then the next accounts in evacuation order (lower tiers, then
// smaller accounts, first).
func (e *evacuation) admit(ctx workflow.Context) error {
	e.checkPause(ctx)
	if e.stopping() || e.carry.Paused != nil || e.wantsNewRun(ctx) {
		return nil
	}
	if err := e.retryDue(ctx); err != nil {
		return err
	}
	for e.room() {
		a, ok, err := e.next(ctx)
		if err != nil || !ok {
			return err
		}
		if a.Unprotected {
			e.record(ctx, a, 0, FailoverResult{}, OutcomeRefused, fmt.Sprintf(
				"unprotected: %s does not replicate it yet (a reprotect is pending); reprotect it (baton reprotect %s), then evacuate again",
				a.To, a.Account), false, time.Time{})
			continue
		}
		e.carry.Found = true
		e.start(ctx, a, 1)
	}
	return nil
}

// checkPause ends a pause that ran past MaxPause: the evacuation stops
// starting accounts and ends as aborted.
func (e *evacuation) checkPause(ctx workflow.Context) {
	p := e.carry.Paused
	if p == nil || e.res.Abort != nil || workflow.Now(ctx).Before(p.At.Add(e.req.MaxPause)) {
		return
	}
	e.res.Abort = &Decision{By: "baton", At: workflow.Now(ctx), Reason: fmt.Sprintf(
		"paused by %s for longer than %s without a resume", p.By, e.req.MaxPause)}
	e.carry.Paused = nil
}

// room: fewer than MaxInFlight accounts in flight.
func (e *evacuation) room() bool { return len(e.running) < e.res.MaxInFlight }

// destRoom: the destination is under its cap (if there is one).
func (e *evacuation) destRoom(to string) bool {
	return e.res.PerDestination <= 0 || e.perDest[to] < e.res.PerDestination
}

// next takes the first queued account whose destination has room, listing
// the next page of the stamp when the queue runs dry.
func (e *evacuation) next(ctx workflow.Context) (activities.EvacuationAccount, bool, error) {
	for {
		for i, a := range e.queue {
			if !e.destRoom(a.To) {
				continue
			}
			e.queue = slices.Delete(e.queue, i, i+1)
			if i == 0 {
				// Accounts before the cursor were all taken: a new run lists
				// on from it (and skips any taken out of order after it).
				e.carry.Cursor = a.EvacuationKey
			}
			return a, true, nil
		}
		if len(e.queue) > 0 || e.listEnd {
			return activities.EvacuationAccount{}, false, nil
		}
		if err := e.list(ctx); err != nil {
			return activities.EvacuationAccount{}, false, err
		}
	}
}

// list brings the next page of the stamp's accounts into the queue,
// skipping those already known.
func (e *evacuation) list(ctx workflow.Context) error {
	actx := withActivity(ctx, time.Minute, 10*time.Second, 0, "list the accounts of "+e.req.Stamp)
	actx = workflow.WithScheduleToCloseTimeout(actx, listBound)
	var page activities.EvacuationPageResult
	err := workflow.ExecuteActivity(actx, acts.EvacuationPage,
		activities.EvacuationPageInput{Stamp: e.req.Stamp, After: e.fetchAfter, Limit: pageSize}).Get(ctx, &page)
	if err != nil {
		return e.end(ctx, OutcomeFailed, PhaseFailed, because(fmt.Sprintf(
			"list the accounts of %s (the location service did not answer within %s)", e.req.Stamp, listBound), err))
	}
	if e.carry.Sweep == 0 && e.fetchAfter == (activities.EvacuationKey{}) && e.res.OnStamp == 0 {
		e.res.OnStamp = page.OnStamp + e.res.Table.Len()
	}
	e.listEnd = page.Last
	for _, a := range page.Accounts {
		e.fetchAfter = a.EvacuationKey
		if !e.known[a.Account] {
			e.queue = append(e.queue, a)
		} else if len(e.queue) == 0 {
			e.carry.Cursor = a.EvacuationKey
		}
	}
	return nil
}

// listBound bounds a listing's retries: past it the evacuation fails,
// saying the location service did not answer.
const listBound = 5 * time.Minute

// retryDue tries again the accounts whose retry is due, as far as there is
// room, after checking with the location service that they are still on
// the stamp.
func (e *evacuation) retryDue(ctx workflow.Context) error {
	now := workflow.Now(ctx)
	var due []EvacuationRetry
	var names []string
	keep := e.carry.Retries[:0]
	for _, r := range e.carry.Retries {
		if r.NotBefore.After(now) || len(e.running)+len(due) >= e.res.MaxInFlight || !e.destRoom(r.Account.To) {
			keep = append(keep, r)
			continue
		}
		due, names = append(due, r), append(names, r.Account.Account)
	}
	e.carry.Retries = keep
	if len(due) == 0 {
		return nil
	}
	where, err := e.lookUp(ctx, names)
	if err != nil {
		return err
	}
	for i, r := range due {
		w := where[i]
		switch {
		case w.Missing:
			e.record(ctx, r.Account, r.Attempts, FailoverResult{}, OutcomeMoved,
				"no longer registered with the location service", false, time.Time{})
		case w.Primary != e.req.Stamp:
			e.record(ctx, r.Account, r.Attempts, FailoverResult{}, OutcomeMoved, "", false, time.Time{})
		case w.Unprotected:
			e.record(ctx, r.Account, r.Attempts, FailoverResult{}, OutcomeRefused, r.LastError, false, time.Time{})
		default:
			e.start(ctx, r.Account, r.Attempts+1)
		}
	}
	return nil
}

// lookUp asks the location service where the accounts live now.
func (e *evacuation) lookUp(ctx workflow.Context, names []string) ([]activities.AccountWhere, error) {
	actx := withActivity(ctx, time.Minute, 10*time.Second, 0, fmt.Sprintf("look up %d accounts to retry", len(names)))
	actx = workflow.WithScheduleToCloseTimeout(actx, listBound)
	var where []activities.AccountWhere
	err := workflow.ExecuteActivity(actx, acts.LookUpAccounts,
		activities.LookUpAccountsInput{Accounts: names}).Get(ctx, &where)
	if err == nil && len(where) != len(names) {
		err = fmt.Errorf("asked for %d accounts, got %d", len(names), len(where))
	}
	if err != nil {
		return nil, e.end(ctx, OutcomeFailed, PhaseFailed, because(fmt.Sprintf(
			"look up the accounts of %s to retry (the location service did not answer within %s)",
			e.req.Stamp, listBound), err))
	}
	return where, nil
}

// start fails the account over as its own AccountFailover, a child that
// outlives the evacuation (an abort or a new run leaves it to finish by its
// own rules). If a failover of the account already runs, the evacuation
// attaches to it and waits for its outcome.
func (e *evacuation) start(ctx workflow.Context, a activities.EvacuationAccount, attempts int) {
	r := &evacRun{acct: a, attempts: attempts, started: workflow.Now(ctx)}
	e.running = append(e.running, r)
	e.perDest[a.To]++
	e.known[a.Account] = true
	req := e.failoverRequest(a)
	cctx := workflow.WithChildOptions(ctx, workflow.ChildWorkflowOptions{
		WorkflowID:            FailoverWorkflowID(a.Account),
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		TypedSearchAttributes: FailoverSearchAttributes(req),
		StaticSummary:         FailoverSummary(req),
	})
	fut := workflow.ExecuteChildWorkflow(cctx, AccountFailover, req)
	workflow.Go(ctx, func(ctx workflow.Context) {
		res, err := e.await(ctx, fut, r)
		e.ended(ctx, r, res, err)
	})
}

// failoverRequest is one account's failover in this evacuation: from the
// stamp to the account's secondary, with the evacuation's approval.
func (e *evacuation) failoverRequest(a activities.EvacuationAccount) FailoverRequest {
	req := FailoverRequest{
		Account: a.Account, FromStamp: e.req.Stamp, ToStamp: a.To,
		Reason:      fmt.Sprintf("evacuation of %s: %s", e.req.Stamp, e.req.Reason),
		RequestedBy: e.req.RequestedBy, Mode: e.req.Mode, Trigger: e.req.Trigger,
		Approval: ApprovalPolicy{Timeout: e.req.Approval.Timeout, PreApproved: e.res.Approval},
		Options:  e.req.Options,
	}
	if req.Approval.PreApproved == nil {
		req.Approval.PreApproved = e.req.Approval.PreApproved
	}
	return req
}

// await waits for the account's failover: the child, or, if one was
// already running, that one.
func (e *evacuation) await(ctx workflow.Context, fut workflow.ChildWorkflowFuture, r *evacRun) (FailoverResult, error) {
	var res FailoverResult
	if err := fut.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		if temporal.IsWorkflowExecutionAlreadyStartedError(err) {
			r.attached = true
			return e.attach(ctx, r)
		}
		return res, err
	}
	err := fut.Get(ctx, &res)
	if _, rep, ok := OutcomeOf(err); ok {
		res = rep
	}
	return res, err
}

// attach waits, within attachBound, for a failover of the account started
// elsewhere, and reads its report.
func (e *evacuation) attach(ctx workflow.Context, r *evacRun) (FailoverResult, error) {
	bound := e.req.Approval.Timeout + attachBound
	actx := withActivity(ctx, bound, 30*time.Second, 0, "await the running failover of "+r.acct.Account)
	actx = workflow.WithScheduleToCloseTimeout(actx, bound)
	var aw activities.AwaitedFailover
	id := FailoverWorkflowID(r.acct.Account)
	err := workflow.ExecuteActivity(actx, acts.AwaitFailover, activities.AwaitFailoverInput{WorkflowID: id}).
		Get(ctx, &aw)
	if err != nil {
		return FailoverResult{}, because(fmt.Sprintf("await the failover of %s already running (%s), within %s",
			r.acct.Account, id, bound), err)
	}
	var res FailoverResult
	if len(aw.Report) > 0 {
		// Decoding JSON is deterministic (reflection on the report's own
		// type only); the check cannot tell.
		//workflowcheck:ignore
		if jerr := json.Unmarshal(aw.Report, &res); jerr != nil {
			return res, fmt.Errorf("read the report of %s: %w", id, jerr)
		}
	}
	if aw.Error == "" {
		return res, nil
	}
	return res, temporal.NewNonRetryableApplicationError(aw.Error, aw.ErrorType, nil)
}

// attachBound is how long, past the approval timeout, an evacuation waits
// for a failover started elsewhere; past it the account counts as failed.
const attachBound = time.Hour

// ended takes an account out of flight: done, to be retried, or failed for
// good.
func (e *evacuation) ended(ctx workflow.Context, r *evacRun, res FailoverResult, err error) {
	i := slices.Index(e.running, r)
	e.running = slices.Delete(e.running, i, i+1)
	e.perDest[r.acct.To]--
	e.changed = true
	outcome := OutcomeCompleted
	msg := ""
	if err != nil {
		outcome, msg = res.Outcome, rootMessage(err)
		if outcome == "" || outcome == OutcomeCompleted {
			outcome = OutcomeFailed
		}
	}
	retry := outcome == OutcomeRefused || outcome == OutcomeRolledBack || outcome == OutcomeTimedOut
	if retry && r.attempts < e.req.Attempts && !e.stopping() {
		e.carry.Retries = append(e.carry.Retries, EvacuationRetry{Account: r.acct, Attempts: r.attempts,
			NotBefore: workflow.Now(ctx).Add(time.Duration(r.attempts) * e.req.RetryDelay),
			LastError: msg, Outcome: outcome})
		return
	}
	if retry && r.attempts >= e.req.Attempts {
		msg = fmt.Sprintf("%s (after %d %s)", msg, r.attempts, plural(r.attempts, "attempt", "attempts"))
	}
	e.record(ctx, r.acct, r.attempts, res, outcome, msg, r.attached, r.started)
}

// record appends an account's row to the report: it is through.
func (e *evacuation) record(ctx workflow.Context, a activities.EvacuationAccount, attempts int,
	res FailoverResult, outcome Outcome, msg string, attached bool, started time.Time) {
	t, rep := &e.res.Table, e.res
	row := t.Len()
	var startedAfter, took int64
	if !started.IsZero() {
		startedAfter = started.Sub(rep.StartedAt).Milliseconds()
		took = workflow.Now(ctx).Sub(started).Milliseconds()
	}
	t.Account, t.Tier, t.Partitions = append(t.Account, a.Account), append(t.Tier, a.Tier), append(t.Partitions, a.Partitions)
	t.To, t.Outcome, t.Attempts = append(t.To, a.To), append(t.Outcome, outcome), append(t.Attempts, attempts)
	t.StartedAfterMillis, t.Millis = append(t.StartedAfterMillis, startedAfter), append(t.Millis, took)
	t.UnavailableMillis = append(t.UnavailableMillis, res.UnavailableMillis)
	t.LostOps = append(t.LostOps, res.LostOps)
	if attached {
		t.Attached = append(t.Attached, row)
	}
	if msg != "" && outcome != OutcomeCompleted && outcome != OutcomeMoved {
		t.Errors = append(t.Errors, AccountIssue{Row: row, Error: msg})
	}
	e.known[a.Account] = true
	rep.Partitions += a.Partitions
	rep.LostOps += res.LostOps
	rep.UnseenOpsEstimate += res.UnseenOpsEstimate
	if len(res.Ledger) > 0 && res.Ledger[0].Unit != "" {
		rep.StoreShardsLost += len(res.GivenUp)
	}
	rep.MaxUnavailableMillis = max(rep.MaxUnavailableMillis, res.UnavailableMillis)
	done := outcome == OutcomeCompleted || outcome == OutcomeMoved
	tc := rep.tier(a.Tier)
	if done {
		tc.Done++
	} else {
		tc.Failed++
	}
	if outcome == OutcomeCompleted {
		rep.Slowest = slowest(rep.Slowest, AccountTiming{Account: a.Account, Tier: a.Tier, Millis: took})
	}
	workflow.GetMetricsHandler(ctx).WithTags(map[string]string{"outcome": string(outcome),
		"tier": tierName(a.Tier)}).Counter(MetricEvacuatedAccounts).Inc(1)
}

// tier returns the report's count for tier t, adding it in order.
func (r *EvacuationResult) tier(t int) *TierCount {
	i, found := slices.BinarySearchFunc(r.Tiers, t, func(c TierCount, t int) int { return c.Tier - t })
	if !found {
		r.Tiers = slices.Insert(r.Tiers, i, TierCount{Tier: t})
	}
	return &r.Tiers[i]
}

// tierName is a tier as a metric tag: "0".."3", or "none".
func tierName(t int) string {
	if t >= activities.NoTier {
		return "none"
	}
	return strconv.Itoa(t)
}

// slowestKept is how many of the slowest accounts a report keeps.
const slowestKept = 5

// slowest keeps the slowestKept longest timings, longest first.
func slowest(list []AccountTiming, t AccountTiming) []AccountTiming {
	i, _ := slices.BinarySearchFunc(list, t, func(x, t AccountTiming) int {
		return cmp.Or(cmp.Compare(t.Millis, x.Millis), cmp.Compare(x.Account, t.Account))
	})
	if i >= slowestKept {
		return list
	}
	list = slices.Insert(list, i, t)
	if len(list) > slowestKept {
		list = list[:slowestKept]
	}
	return list
}

// plural is one or many, by n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
