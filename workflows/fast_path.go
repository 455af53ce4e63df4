package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// versionFastPath is the workflow version from which a failover runs its
// steps as local activities (in the worker that runs the workflow task, with
// no round trip through the server per step), and an account of at most
// inlineLimit partitions flushes its groups inside the failover itself
// rather than as child workflows. The steps, their bounds, the
// per-partition isolation and the rollback are the same; only the hops
// between them go. A worker lost mid-step loses the workflow task: another
// worker runs it again from the last recorded step, and every step is
// idempotent (a precheck run again accepts partitions its own fence
// already fenced). Promote is the exception: it stays a regular activity,
// scheduled by the workflow task that records every local step before it,
// so nothing before the point of no return can ever run again after it.
//
// From version 2 (versionBoundedLocal) a local step gets one attempt of at
// most localBudget; a step that takes longer, or fails in a way that may
// pass, goes on as a regular activity with its full timeouts, heartbeats
// and retries. A workflow task is never held open for a long step then:
// queries (baton watch, the Web UI), updates (abort) and the flush
// deadline's timer reach the failover within about localBudget, and a
// stalled step is visible as a pending activity.
const (
	changeFastPath      = "fast-path"
	versionFastPath     = 1
	versionBoundedLocal = 2
)

// localBudget bounds one local attempt of a fast-path step.
const localBudget = time.Second

// inlineLimit is the largest account whose groups flush inside the
// failover (one stamp call carries up to 1,000 partitions); larger ones
// keep a child workflow per group, so that no history grows large.
const inlineLimit = 1000

type localStepsKey struct{}

// localSteps marks ctx so that execute runs its activities as local ones,
// as the fast path's version says (versionFastPath: with the step's own
// timeouts and retries; versionBoundedLocal: one attempt of localBudget,
// then a regular activity).
func localSteps(ctx workflow.Context, version workflow.Version) workflow.Context {
	return workflow.WithValue(ctx, localStepsKey{}, version)
}

// execute runs an activity with ctx's activity options, as a local one if
// ctx was marked by localSteps.
func execute(ctx workflow.Context, fn any, args ...any) workflow.Future {
	version, _ := ctx.Value(localStepsKey{}).(workflow.Version)
	switch {
	case version >= versionBoundedLocal:
		return localFirst(ctx, fn, args...)
	case version >= versionFastPath:
		o := workflow.GetActivityOptions(ctx)
		return workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			ScheduleToCloseTimeout: o.ScheduleToCloseTimeout,
			StartToCloseTimeout:    o.StartToCloseTimeout,
			RetryPolicy:            o.RetryPolicy,
			Summary:                o.Summary,
		}), fn, args...)
	default:
		return workflow.ExecuteActivity(ctx, fn, args...)
	}
}

// localFirst runs one local attempt of the step, of at most localBudget
// (less if the step's own timeouts are shorter); if it times out or fails
// with an error that may pass, the step runs again as a regular activity
// with ctx's options. A final error, or a cancellation, ends the step.
func localFirst(ctx workflow.Context, fn any, args ...any) workflow.Future {
	o := workflow.GetActivityOptions(ctx)
	budget := localBudget
	for _, d := range []time.Duration{o.StartToCloseTimeout, o.ScheduleToCloseTimeout} {
		if d > 0 && d < budget {
			budget = d
		}
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		ScheduleToCloseTimeout: budget,
		RetryPolicy:            &temporal.RetryPolicy{MaximumAttempts: 1},
		Summary:                o.Summary,
	})
	local := workflow.ExecuteLocalActivity(lctx, fn, args...)
	fut, set := workflow.NewFuture(ctx)
	workflow.Go(ctx, func(gctx workflow.Context) {
		err := local.Get(gctx, nil)
		if err == nil || !retryLocally(err) || ctx.Err() != nil {
			set.Chain(local)
			return
		}
		set.Chain(workflow.ExecuteActivity(ctx, fn, args...))
	})
	return fut
}

// retryLocally: a local attempt's error after which the step goes on as a
// regular activity (a timeout, or any failure the stamp did not mark
// final); not a cancellation.
func retryLocally(err error) bool {
	var ae *temporal.ApplicationError
	switch {
	case temporal.IsCanceledError(err):
		return false
	case errors.As(err, &ae):
		return !ae.NonRetryable()
	default:
		return true
	}
}

// step marks actx for local activities when the failover follows the fast
// path.
func (f *failover) step(actx workflow.Context) workflow.Context {
	if f.fast >= versionFastPath {
		return localSteps(actx, f.fast)
	}
	return actx
}

// inline: the account's groups flush inside the failover.
func (f *failover) inline() bool { return f.fast >= versionFastPath && f.pre.Partitions <= inlineLimit }

// startInlineGroups runs each group as a coroutine of the failover, with
// local activities; each answers through a future, as a child would.
func (f *failover) startInlineGroups(ctx workflow.Context, inputs []GroupInput) []workflow.Future {
	futures := make([]workflow.Future, len(inputs))
	for i, in := range inputs {
		fut, set := workflow.NewFuture(ctx)
		futures[i] = fut
		workflow.Go(localSteps(f.work, f.fast), func(gctx workflow.Context) {
			g := newGroup(gctx, in)
			g.inline = true
			g.progress = func(sent int) { f.prog.Done[StepFlushSend] += sent }
			err := g.run(gctx)
			set.Set(g.res, err)
		})
	}
	return futures
}

// operation names this failover in the location service's record of its
// move (its run ID), on the fast path, so that a precheck run again after a
// lost worker recognises its own steps.
func (f *failover) operation(ctx workflow.Context) string {
	if f.fast < versionFastPath {
		return ""
	}
	return workflow.GetInfo(ctx).WorkflowExecution.RunID
}

// resume picks up a failover whose earlier attempt got further than its
// record says (its worker was lost mid-task, the local steps' results with
// it, or an earlier run's promote failed after it began): the precheck
// found the account moved by this very failover (done), or the destination
// partly promoted to the new epoch with the source fenced (finish the
// promote). The write-unavailability window is not known then: the fence
// was not recorded.
func (f *failover) resume(ctx workflow.Context) error {
	pre := f.pre
	f.res.Table = newTable(pre.Partitions)
	switch pre.Resume {
	case activities.ResumeMoved:
		f.res.Resumed = fmt.Sprintf("an earlier attempt of this failover moved %s to %s at epoch %d; its worker was "+
			"lost before it recorded so: nothing was done again", pre.Account, pre.To, pre.Epoch+1)
		f.res.PromotedAt = workflow.Now(ctx)
	default:
		f.res.Resumed = fmt.Sprintf("%d partitions of %s were already promoted to epoch %d on %s with the source fenced: "+
			"the promote was finished", pre.PromotedAhead, pre.Account, pre.Epoch+1, pre.To)
		f.handlers.gatePassed = true
		if err := f.promote(ctx); err != nil {
			return err
		}
	}
	f.handlers.noReturn, f.handlers.gatePassed = true, true
	return f.completed(ctx)
}
