package webhook

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/workflows"
)

// DecisionBy is who the receiver's decisions (a resolved alert's reject)
// are recorded as.
const DecisionBy = "alertmanager"

// handleAlerts handles the alerts of a request that go to one workflow:
// an account's failover or reprotect, or a stamp's evacuation (subject is
// the account or the stamp). Firing ones start or attach to it, unless a
// maintenance switch holds them; resolved ones may cancel a failover or
// evacuation while it is pending.
func (h *Handler) handleAlerts(ctx context.Context, sw *switches, subject string, action Action, items []*item) {
	var firing, resolved []*item
	for _, it := range items {
		it.res.WorkflowID = action.workflowID(subject)
		if it.ref.Status == StatusFiring {
			firing = append(firing, it)
		} else {
			resolved = append(resolved, it)
		}
	}
	if len(firing) > 0 && action != actionEvacuation && !h.knownAccount(ctx, subject, firing) {
		firing = nil
	}
	if len(firing) > 0 && h.held(ctx, sw, subject, action, firing) {
		firing = nil
	}
	if len(firing) == 0 && !anyCancels(resolved) {
		h.ignore(resolved)
		return
	}
	desc, err := h.describe(ctx, action, subject)
	if err != nil {
		h.fail(firing, "describe", err)
		h.fail(resolved, "describe", err)
		return
	}
	running := ""
	if desc != nil && desc.Status == enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		running = desc.WorkflowExecution.RunID
	}
	for _, it := range firing {
		if msg, refused := h.inCooldown(desc, it); refused {
			it.res.Outcome, it.res.Message, it.res.RunID = OutcomeCooldown, msg, desc.WorkflowExecution.RunID
			h.metrics.Refused.WithLabelValues(it.rule, "cooldown").Inc()
			continue
		}
		running = h.attach(ctx, it, running)
	}
	h.resolve(ctx, subject, action, desc, resolved, len(firing) > 0)
}

// knownAccount reports whether the account directory (if any) knows
// account; if it does not, or cannot tell, the firing items get their
// outcome.
func (h *Handler) knownAccount(ctx context.Context, account string, firing []*item) bool {
	if h.o.Accounts == nil {
		return true
	}
	known, err := h.o.Accounts.Known(ctx, account)
	switch {
	case err != nil:
		h.fail(firing, "lookup", fmt.Errorf("look up account %s: %w", account, err))
		return false
	case !known:
		for _, it := range firing {
			it.res.Outcome, it.res.WorkflowID = OutcomeUnknownAccount, ""
			it.res.Message = fmt.Sprintf("account %s is not known to the account directory (location service): "+
				"check the alert's labels and the rule %q", account, it.rule)
			h.metrics.Refused.WithLabelValues(it.rule, "unknown-account").Inc()
		}
		return false
	}
	return true
}

// anyCancels reports whether a rule of items cancels on resolve.
func anyCancels(items []*item) bool {
	for _, it := range items {
		if it.cancelOnResolve {
			return true
		}
	}
	return false
}

// ignore records resolved alerts whose rule does not cancel on resolve.
func (h *Handler) ignore(resolved []*item) {
	for _, it := range resolved {
		it.res.Outcome = OutcomeIgnored
		it.res.Message = fmt.Sprintf("resolved; rule %q does not cancel on resolve", it.rule)
	}
}

// describe returns the account's latest failover or reprotect, or the
// stamp's latest evacuation (nil if it never had one).
func (h *Handler) describe(ctx context.Context, action Action, subject string) (*client.WorkflowExecutionDescription,
	error) {
	d, err := h.o.Client.DescribeWorkflow(ctx, action.workflowID(subject), "")
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("describe the latest %s of %s: %w", action, subject, err)
	}
	return d, nil
}

// inCooldown refuses an automatic trigger while the account's latest
// failover (or reprotect, for a reprotect rule; the stamp's latest
// evacuation, for a scope: stamp rule) completed less than the rule's
// cooldown ago, saying why. A running one is never in cooldown: alerts
// attach to it. Those that did not complete (rejected, refused, rolled
// back, aborted, incomplete) do not count.
func (h *Handler) inCooldown(desc *client.WorkflowExecutionDescription, it *item) (string, bool) {
	completed := desc != nil && desc.Status == enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED &&
		desc.WorkflowCloseTime != nil
	if it.cooldown <= 0 || !completed {
		return "", false
	}
	closed := *desc.WorkflowCloseTime
	until := closed.Add(it.cooldown)
	if !h.o.Now().Before(until) {
		return "", false
	}
	return fmt.Sprintf("%s of %s completed at %s; automatic triggers refused until %s (cooldown %s); "+
		"a manual `baton %s` can override",
		it.action, it.route.subject(), closed.UTC().Format(time.RFC3339), until.UTC().Format(time.RFC3339), it.cooldown,
		it.action.command()), true
}

// attach records a firing alert in the account's failover (or reprotect,
// or the stamp's evacuation), starting it if none runs: one
// update-with-start (USE_EXISTING), answered once Temporal has durably
// recorded it. running is the run the caller knows to be running ("" if
// none); attach returns the run the alert is now recorded in.
func (h *Handler) attach(ctx context.Context, it *item, running string) string {
	subject, fp := it.route.subject(), it.ref.Fingerprint
	if running != "" && h.recorded.has(running, fp) {
		it.res.Outcome, it.res.RunID = OutcomeDuplicate, running
		it.res.Message = "already recorded in the running " + string(it.action)
		h.metrics.Attached.WithLabelValues(it.rule, OutcomeDuplicate).Inc()
		return running
	}
	type out struct {
		ack   workflows.AlertAck
		runID string
	}
	leader := false
	v, err, _ := h.flight.Do(string(it.action)+"\x00"+subject+"\x00"+fp, func() (any, error) {
		leader = true
		release, err := h.takeSlot(ctx, subject)
		if err != nil {
			return nil, err
		}
		defer release()
		ack, runID, err := h.updateWithStart(ctx, it)
		return out{ack, runID}, err
	})
	if err != nil {
		if leader {
			h.fail([]*item{it}, "start", err)
		} else { // the call was the leader's, and counted there
			it.res.Outcome, it.res.Message = OutcomeError, err.Error()
			it.res.unavailable = isUnavailable(err)
		}
		return running
	}
	o := v.(out)
	h.recorded.add(o.runID, fp)
	it.res.RunID, it.res.Phase = o.runID, o.ack.Phase
	switch {
	case !leader:
		it.res.Outcome = OutcomeDuplicate
		it.res.Message = "an identical notification arrived at the same time; it was recorded once"
	case !o.ack.Attached:
		it.res.Outcome, it.res.Message = OutcomeDuplicate, "already recorded in the running "+string(it.action)
	case o.runID != running && o.ack.Alerts == 1:
		// A fresh run whose first alert is this one: this request started it.
		it.res.Outcome = OutcomeStarted
		h.started(it)
		return o.runID
	default:
		it.res.Outcome = OutcomeAttached
		it.res.Message = fmt.Sprintf("recorded in the running %s (%d alerts)", it.action, o.ack.Alerts)
	}
	h.metrics.Attached.WithLabelValues(it.rule, it.res.Outcome).Inc()
	return o.runID
}

// started says what the alert started, and counts it.
func (h *Handler) started(it *item) {
	switch it.action {
	case ActionReprotect:
		it.res.Message = fmt.Sprintf("reprotect of %s started: its old primary becomes the replica", it.route.Account)
		h.metrics.ReprotectsStarted.WithLabelValues(it.rule).Inc()
	case actionEvacuation:
		it.res.Message = fmt.Sprintf("%s evacuation of %s started: every account whose primary it is fails over "+
			"to its own secondary; it waits for one approval unless the rule pre-approves it", it.mode, it.route.Stamp)
		h.metrics.EvacuationsStarted.WithLabelValues(it.rule, string(it.mode)).Inc()
	default:
		it.res.Message = fmt.Sprintf("%s failover of %s to %s started; it waits for approval unless the rule "+
			"pre-approves it", it.mode, it.route.Account, it.route.To)
		h.metrics.Started.WithLabelValues(it.rule, string(it.mode)).Inc()
	}
}

// updateWithStart sends the alert update to the account's failover or
// reprotect, or the stamp's evacuation (by the rule's action and scope),
// starting it under its derived ID if none runs.
func (h *Handler) updateWithStart(ctx context.Context, it *item) (workflows.AlertAck, string, error) {
	var op client.WithStartWorkflowOperation
	var err error
	switch it.action {
	case ActionReprotect:
		op = h.reprotectStart(it)
	case actionEvacuation:
		op, err = h.evacuationStart(it)
	default:
		op, err = h.failoverStart(it)
	}
	if err != nil {
		return workflows.AlertAck{}, "", err
	}
	uh, err := h.o.Client.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: op,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName:   workflows.UpdateAlert,
			Args:         []any{it.ref},
			WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return workflows.AlertAck{}, "", fmt.Errorf("start or attach to the %s of %s: %w", it.action,
			it.route.subject(), err)
	}
	var ack workflows.AlertAck
	if err := uh.Get(ctx, &ack); err != nil {
		return workflows.AlertAck{}, "", fmt.Errorf("record alert %s in the %s of %s: %w",
			it.ref.Fingerprint, it.action, it.route.subject(), err)
	}
	return ack, uh.RunID(), nil
}

// failoverStart is the start of the account's failover that an alert's
// update-with-start carries.
func (h *Handler) failoverStart(it *item) (client.WithStartWorkflowOperation, error) {
	req := workflows.FailoverRequest{
		Account:     it.route.Account,
		FromStamp:   it.route.From,
		ToStamp:     it.route.To,
		Reason:      it.reason,
		RequestedBy: it.requestedBy,
		Mode:        it.mode,
		Trigger:     it.trigger,
		Approval:    it.approvalPolicy(),
		Options:     workflows.FailoverOptions{FlushDeadline: it.flushDeadline},
	}
	req = req.WithDefaults()
	if err := req.Validate(); err != nil {
		return nil, payloadErr("failover request refused: %v", err)
	}
	opts := launch.FailoverOptions(h.o.TaskQueue, req)
	// A running failover is used, not refused: that is what makes repeats
	// and several alerts of one outage a single failover.
	opts.WorkflowIDConflictPolicy = enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
	opts.WorkflowExecutionErrorWhenAlreadyStarted = false
	return h.o.Client.NewWithStartWorkflowOperation(opts, workflows.NameAccountFailover, req), nil
}

// approvalPolicy is the approval of what the item starts: the gate, with
// the rule's (or trigger's) timeout, unless the config pre-approves it.
func (it *item) approvalPolicy() workflows.ApprovalPolicy {
	p := workflows.ApprovalPolicy{Required: it.approval, Timeout: it.approvalTimeout}
	if !it.approval {
		p.PreApproved = &workflows.Decision{
			By:     "webhook rule " + it.rule,
			Reason: "approval_required: false in the webhook config",
		}
	}
	return p
}

// resolve handles resolved alerts: those whose rule says cancel_on_resolve
// reject the account's failover (or the stamp's evacuation) if it still
// waits at its approval gate; the workflow refuses the reject once it is
// past the gate, and then it goes on.
func (h *Handler) resolve(ctx context.Context, subject string, action Action, desc *client.WorkflowExecutionDescription,
	resolved []*item, stillFiring bool) {
	var cancels []*item
	for _, it := range resolved {
		if it.cancelOnResolve {
			cancels = append(cancels, it)
		} else {
			h.ignore([]*item{it})
		}
	}
	if len(cancels) == 0 {
		return
	}
	if desc == nil || desc.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		h.setCancels(cancels, OutcomeNothingToCancel, fmt.Sprintf("no %s of %s is running", action, subject), "")
		return
	}
	runID := desc.WorkflowExecution.RunID
	if stillFiring {
		h.setCancels(cancels, OutcomeGoesOn,
			fmt.Sprintf("other alerts for %s still fire in this notification: the %s goes on", subject, action), runID)
		return
	}
	trig, _ := desc.TypedSearchAttributes.GetKeyword(workflows.SearchTrigger)
	if workflows.Trigger(trig) != workflows.TriggerAlert {
		h.setCancels(cancels, OutcomeGoesOn, fmt.Sprintf("the running %s of %s was started by trigger %q, "+
			"not by an alert: a resolved alert does not cancel it", action, subject, trig), runID)
		return
	}
	h.rejectPending(ctx, subject, action, runID, cancels)
}

// rejectPending rejects run runID of the account's failover (or the
// stamp's evacuation) for the resolved alerts cancels, and records how it
// went.
func (h *Handler) rejectPending(ctx context.Context, subject string, action Action, runID string, cancels []*item) {
	names := make([]string, 0, len(cancels))
	for _, it := range cancels {
		names = append(names, it.ref.Name)
	}
	d := workflows.Decision{
		By:     DecisionBy,
		Reason: fmt.Sprintf("alert %s resolved", strings.Join(dedup(names), ", ")),
	}
	err := h.reject(ctx, subject, action.workflowID(subject), runID, d)
	var refused *temporal.ApplicationError
	var nf *serviceerror.NotFound
	switch {
	case err == nil:
		h.setCancels(cancels, OutcomeCancelled,
			fmt.Sprintf("the pending %s of %s was rejected (%s); nothing was touched", action, subject, d.Reason), runID)
	case errors.As(err, &refused):
		h.setCancels(cancels, OutcomeGoesOn,
			fmt.Sprintf("the %s of %s goes on: %s", action, subject, refused.Message()), runID)
	case errors.As(err, &nf):
		h.setCancels(cancels, OutcomeNothingToCancel,
			fmt.Sprintf("the %s of %s ended before the resolved alert reached it", action, subject), runID)
	default:
		h.fail(cancels, "reject", err)
	}
}

// cancelResult is the Cancelled metric's result label of the outcomes it
// counts.
var cancelResult = map[string]string{OutcomeCancelled: "rejected", OutcomeGoesOn: "goes-on"}

// setCancels records one outcome for every resolved alert that asked to
// cancel the failover.
func (h *Handler) setCancels(cancels []*item, outcome, msg, runID string) {
	for _, it := range cancels {
		it.res.Outcome, it.res.Message, it.res.RunID = outcome, msg, runID
		if result, ok := cancelResult[outcome]; ok {
			h.metrics.Cancelled.WithLabelValues(it.rule, result).Inc()
		}
	}
}

// reject sends the reject update to one run of workflow id (the account's
// failover, the stamp's evacuation); the workflow's validator refuses it
// once it is past its approval gate.
func (h *Handler) reject(ctx context.Context, subject, id, runID string, d workflows.Decision) error {
	release, err := h.takeSlot(ctx, subject)
	if err != nil {
		return err
	}
	defer release()
	uh, err := h.o.Client.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   id,
		RunID:        runID,
		UpdateName:   workflows.UpdateReject,
		Args:         []any{d},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err == nil {
		err = uh.Get(ctx, nil)
	}
	if err != nil {
		return fmt.Errorf("reject %s: %w", id, err)
	}
	return nil
}

// dedup drops repeated strings, keeping the first of each.
func dedup(ss []string) []string {
	seen := map[string]bool{}
	out := ss[:0:0]
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// fail records a failed call for items, once.
func (h *Handler) fail(items []*item, op string, err error) {
	if len(items) == 0 {
		return
	}
	unavailable := isUnavailable(err)
	kind := "other"
	if unavailable {
		kind = "unavailable"
	}
	h.metrics.Errors.WithLabelValues(op, kind).Inc()
	for _, it := range items {
		it.res.Outcome, it.res.Message, it.res.unavailable = OutcomeError, err.Error(), unavailable
	}
}

// isUnavailable: Temporal (or the directory) could not be reached, or did
// not answer in time; a retry may succeed.
func isUnavailable(err error) bool {
	var (
		unavailable *serviceerror.Unavailable
		deadline    *serviceerror.DeadlineExceeded
		exhausted   *serviceerror.ResourceExhausted
		canceled    *serviceerror.Canceled
		updTimeout  *client.WorkflowUpdateServiceTimeoutOrCanceledError
	)
	var netErr net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.As(err, &netErr) ||
		errors.As(err, &unavailable) || errors.As(err, &deadline) || errors.As(err, &exhausted) ||
		errors.As(err, &canceled) || errors.As(err, &updTimeout)
}
