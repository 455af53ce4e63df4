package activities

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"

	"github.com/batonhq/baton/internal/clock"
	"github.com/batonhq/baton/internal/readiness"
	"github.com/batonhq/baton/internal/readiness/probe"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// Activity type names of a drill (see NamePrecheck).
const (
	NameDrillReadiness = "DrillReadiness"
	NameWriteCanaries  = "WriteCanaries"
	NameCheckCanaries  = "CheckCanaries"
	NameDeleteCanaries = "DeleteCanaries"
)

// DrillReadinessInput asks whether an account is ready for a drill now.
type DrillReadinessInput struct {
	Account string
	// LagBudgetOps: not ready while the primary's unacknowledged plus the
	// secondary's unreplayed writes exceed this (0: max(1000, 2 x
	// partitions)).
	LagBudgetOps uint64
	// Busy are the workflow IDs that must not be running (the account's
	// failover and reprotect).
	Busy []string
	// OtherDrills is the visibility query of the account's running drills;
	// one that started before this drill (DrillID, DrillRunID, started at
	// DrillStarted) makes it not ready.
	OtherDrills  string
	DrillID      string
	DrillRunID   string
	DrillStarted time.Time
	// Scheduled: the drill was started by its schedule, an automatic
	// trigger, so a maintenance switch holds it (the global one, or that of
	// the account's primary or secondary). A drill started by hand is not
	// held.
	Scheduled bool
}

// DrillReadinessResult says whether the account can be drilled now and,
// if not, why not.
type DrillReadinessResult struct {
	Ready bool
	// NotReady says why not, for the drill's report.
	NotReady     string
	Account      string
	Partitions   int
	Epoch        uint64
	Primary      string
	Secondary    string
	SendLagOps   uint64
	ReplayLagOps uint64
	LagBudgetOps uint64
}

// readinessProbe is how long the readiness check asks again about an
// account that is not ready (a stamp that does not answer, a lag that
// drains) before it calls it not ready.
const readinessProbe = 5 * time.Second

// readinessRead bounds one read of the stamps: one that hangs does not
// answer.
const readinessRead = 10 * time.Second

// DrillReadiness checks, changing nothing, that a drill of the account may
// start now: no maintenance switch holds it (a scheduled drill), no
// failover, reprotect or earlier drill of it runs, and it is ready to fail
// over by the verdict `baton status` prints and the worker's
// readiness gauge exports (internal/readiness: protected, secondary
// healthy, replication flowing, lag and estimated RPO within budget; the
// lag budget is the drill's). An account that is not ready is an answer
// (Ready false, NotReady the reasons), not an error; an account the
// location service does not know is a non-retryable error.
func (a *Activities) DrillReadiness(ctx context.Context, in DrillReadinessInput) (DrillReadinessResult, error) {
	defer keepAlive(ctx)()
	res := DrillReadinessResult{Account: in.Account}
	until := time.Now().Add(readinessProbe)
	acct, err := retryFor(ctx, until, func(ctx context.Context) (location.Account, error) {
		return a.Location.Lookup(ctx, in.Account)
	})
	switch {
	case location.IsNotFound(err):
		return res, precheckFailed("account %s is not known to the location service: check the name "+
			"(a drill schedule of an account that is gone should be deleted)", in.Account)
	case err != nil:
		return res, classify("drill readiness: look up "+in.Account, err)
	}
	res.Partitions, res.Epoch, res.Primary, res.Secondary = acct.Partitions, acct.Epoch, acct.Primary, acct.Secondary
	if in.Scheduled {
		if why, err := a.maintenanceHold(ctx, acct, until); err != nil || why != "" {
			res.NotReady = why
			return res, err
		}
	}
	if why, err := a.busy(ctx, in); err != nil || why != "" {
		res.NotReady = why
		return res, err
	}
	budget := readiness.Budget{MaxLagOps: in.LagBudgetOps}
	for wait := firstBackoff; ; wait = min(2*wait, maxBackoff) {
		rctx, cancel := context.WithTimeout(ctx, readinessRead)
		v := readiness.Evaluate(probe.Read(rctx, acct, a.HTTP), budget)
		cancel()
		res.SendLagOps, res.ReplayLagOps, res.LagBudgetOps = v.SendLagOps, v.ReplayLagOps, v.Budget.MaxLagOps
		res.Ready = v.Ready
		if v.Ready || acct.Unprotected || !time.Now().Add(wait).Before(until) || !clock.Sleep(ctx, wait) {
			if !v.Ready {
				res.NotReady = fmt.Sprintf("%s is not ready to fail over: %s", in.Account, strings.Join(v.Reasons, "; "))
			}
			return res, nil
		}
	}
}

// maintenanceHold says why a scheduled drill of acct is held ("" if it is
// not): the global maintenance switch is on, or the switch of a stamp the
// drill fails the account over from or to (its primary, its secondary).
func (a *Activities) maintenanceHold(ctx context.Context, acct location.Account, until time.Time) (string, error) {
	var m location.Maintenance
	err := retryUntil(ctx, until, func(ctx context.Context) (err error) {
		m, err = a.Location.Maintenance(ctx)
		return err
	})
	if err != nil {
		return "", classify("drill readiness: read the maintenance switches", err)
	}
	if h, held := m.Hold(acct.Primary, acct.Secondary); held {
		return fmt.Sprintf("held by %s: a scheduled drill does not start while it is on", h), nil
	}
	return "", nil
}

// busy says why not when a failover, reprotect or earlier drill of the
// account runs ("" when none does; nothing to check without a Temporal
// client).
func (a *Activities) busy(ctx context.Context, in DrillReadinessInput) (string, error) {
	if a.Temporal == nil {
		return "", nil
	}
	for _, id := range in.Busy {
		d, err := a.Temporal.DescribeWorkflowExecution(ctx, id, "")
		var nf *serviceerror.NotFound
		switch {
		case errors.As(err, &nf):
			continue
		case err != nil:
			return "", fmt.Errorf("drill readiness: is %s running? %w", id, err)
		case d.GetWorkflowExecutionInfo().GetStatus() == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING:
			return fmt.Sprintf("workflow %s is running: a drill waits until nothing else moves the account", id), nil
		}
	}
	if in.OtherDrills == "" {
		return "", nil
	}
	list, err := a.Temporal.ListWorkflow(ctx,
		&workflowservice.ListWorkflowExecutionsRequest{Query: in.OtherDrills, PageSize: 100})
	if err != nil {
		return "", fmt.Errorf("drill readiness: list the running drills of %s: %w", in.Account, err)
	}
	for _, e := range list.GetExecutions() {
		id, run := e.GetExecution().GetWorkflowId(), e.GetExecution().GetRunId()
		if id == in.DrillID && run == in.DrillRunID {
			continue
		}
		started := e.GetStartTime().AsTime()
		if started.Before(in.DrillStarted) || started.Equal(in.DrillStarted) && id+run < in.DrillID+in.DrillRunID {
			return fmt.Sprintf("another drill of %s is running (workflow %s)", in.Account, id), nil
		}
	}
	return "", nil
}

// CanaryInput names the canary keys of a drill and the stamp expected to be
// the account's primary.
type CanaryInput struct {
	Account string
	Keys    []string
	// Primary is the stamp the location service must name as the account's
	// primary: where the canaries are written, or read back from.
	Primary string
}

// CanaryValue is what a drill writes to a canary key.
func CanaryValue(key string) string { return "canary " + key }

// CanaryResult says where the canaries were written or read, and which were
// not found with the value written.
type CanaryResult struct {
	Stamp   string
	Epoch   uint64
	Written int
	Checked int
	// Lost are the canaries missing, or holding another value, on the
	// primary.
	Lost []string
}

// canaryBudget bounds how long a canary write or read retries a primary
// that is briefly unavailable (5xx, fenced, being moved).
const canaryBudget = 30 * time.Second

// WriteCanaries writes every canary key, in one batch, to the account's
// primary through the location service (as clients do: resolve, write at
// the epoch, resolve again when the stamp says it moved). The batch is
// acknowledged whole or not at all; a repeat writes the same values again.
func (a *Activities) WriteCanaries(ctx context.Context, in CanaryInput) (CanaryResult, error) {
	defer keepAlive(ctx)()
	ops := make([]stamp.BatchOp, len(in.Keys))
	for i, k := range in.Keys {
		ops[i] = stamp.BatchOp{Op: stamp.OpPut, Key: k, Value: CanaryValue(k)}
	}
	var res CanaryResult
	what := fmt.Sprintf("write %d canaries to %s on %s", len(in.Keys), in.Account, in.Primary)
	err := a.onPrimary(ctx, in, &res, what, func(ctx context.Context, c *stamp.Client, epoch uint64) error {
		_, err := c.Batch(ctx, in.Account, ops, epoch)
		return err
	})
	if err != nil {
		return res, err
	}
	res.Written = len(in.Keys)
	return res, nil
}

// CheckCanaries reads every canary key back from the account's primary,
// which must be in.Primary, and lists those not there with the value
// written. Read-only.
func (a *Activities) CheckCanaries(ctx context.Context, in CanaryInput) (CanaryResult, error) {
	defer keepAlive(ctx)()
	var res CanaryResult
	var rr stamp.ReadResult
	what := fmt.Sprintf("read %d canaries of %s on %s", len(in.Keys), in.Account, in.Primary)
	err := a.onPrimary(ctx, in, &res, what, func(ctx context.Context, c *stamp.Client, _ uint64) (err error) {
		rr, err = c.Read(ctx, in.Account, in.Keys)
		return err
	})
	if err != nil {
		return res, err
	}
	for _, k := range in.Keys {
		if v, ok := rr.Values[k]; !ok || v.Value != CanaryValue(k) {
			res.Lost = append(res.Lost, k)
		}
	}
	res.Checked = len(in.Keys)
	return res, nil
}

// DeleteCanaries deletes the canary keys from the account's primary, once
// the drill has checked them. Idempotent.
func (a *Activities) DeleteCanaries(ctx context.Context, in CanaryInput) error {
	defer keepAlive(ctx)()
	ops := make([]stamp.BatchOp, len(in.Keys))
	for i, k := range in.Keys {
		ops[i] = stamp.BatchOp{Op: stamp.OpDelete, Key: k}
	}
	var res CanaryResult
	what := fmt.Sprintf("delete the %d canaries of %s", len(in.Keys), in.Account)
	return a.onPrimary(ctx, in, &res, what, func(ctx context.Context, c *stamp.Client, epoch uint64) error {
		_, err := c.Batch(ctx, in.Account, ops, epoch)
		return err
	})
}

// onPrimary resolves the account, checks that its primary is in.Primary
// and calls fn on it at its epoch; an answer that may go away (a 5xx, a
// fenced partition, a write sent to a stamp that is no longer primary, a
// stale epoch) resolves again and retries, within canaryBudget. Its error
// says what it was doing and is classified (final or retryable).
func (a *Activities) onPrimary(ctx context.Context, in CanaryInput, res *CanaryResult, what string,
	fn func(ctx context.Context, c *stamp.Client, epoch uint64) error) error {
	until := budget(ctx, time.Now().Add(canaryBudget))
	wait := firstBackoff
	for {
		acct, err := a.Location.Lookup(ctx, in.Account)
		switch {
		case err == nil && acct.Primary != in.Primary:
			return precheckFailed("%s: its primary is %s (epoch %d), not %s as the drill expects",
				what, acct.Primary, acct.Epoch, in.Primary)
		case err == nil:
			res.Stamp, res.Epoch = acct.Primary, acct.Epoch
			err = fn(ctx, a.stamp(acct.PrimaryURL), acct.Epoch)
		}
		if err == nil || !canaryRetryable(err) || !time.Now().Add(wait).Before(until) {
			return classify(what, err)
		}
		if !clock.Sleep(ctx, wait) {
			return classify(what, err)
		}
		wait = min(2*wait, maxBackoff)
	}
}

// canaryRetryable: what a client would retry after resolving again.
func canaryRetryable(err error) bool {
	if stamp.IsCode(err, stamp.CodeNotPrimary) || stamp.IsCode(err, stamp.CodeStaleEpoch) ||
		stamp.IsCode(err, stamp.CodeFenced) {
		return true
	}
	return retryable(err)
}

// CanaryKeys are a drill run's count canary keys from first on:
// drill-RUNID-I.
func CanaryKeys(runID string, first, count int) []string {
	keys := make([]string, count)
	for i := range keys {
		keys[i] = fmt.Sprintf("drill-%s-%d", runID, first+i)
	}
	return keys
}
