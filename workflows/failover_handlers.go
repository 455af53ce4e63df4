package workflows

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/batonhq/baton/activities"
)

// Search attributes of AccountFailover, so that "all failovers of account X"
// is one search in the Web UI (BatonAccount = "X"). The worker registers
// them at start-up if the namespace lacks them; the dev server of the
// testsuite registers them at launch.
var (
	SearchAccount = temporal.NewSearchAttributeKeyKeyword("BatonAccount")
	SearchPhase   = temporal.NewSearchAttributeKeyKeyword("BatonPhase")
	SearchMode    = temporal.NewSearchAttributeKeyKeyword("BatonMode")
	SearchTrigger = temporal.NewSearchAttributeKeyKeyword("BatonTrigger")
	// SearchOperation says what the workflow does to its account: failover,
	// reprotect or drill (BatonOperation = "drill" finds every drill).
	SearchOperation = temporal.NewSearchAttributeKeyKeyword("BatonOperation")
)

// Operations, the values of SearchOperation.
const (
	OperationFailover  = "failover"
	OperationReprotect = "reprotect"
	OperationDrill     = "drill"
)

// SearchAttributeNames lists them, for registration.
func SearchAttributeNames() []string {
	return []string{SearchAccount.GetName(), SearchPhase.GetName(), SearchMode.GetName(), SearchTrigger.GetName(),
		SearchOperation.GetName(), SearchStamp.GetName()}
}

// Progress steps counted in Progress.Done.
const (
	StepFence       = "fence"
	StepFlushSend   = "flush-send"
	StepFlushReplay = "flush-replay"
	StepPromote     = "promote"
)

// Progress is what the progress query answers: the phase, how many
// partitions are through each step, and the slowest partitions so far.
type Progress struct {
	Phase            Phase
	Mode             Mode
	Trigger          Trigger
	Partitions       int
	Groups           int
	GroupsDone       int
	Done             map[string]int // step -> partitions through it
	GivenUp          int
	Slowest          []PartitionTiming
	AwaitingApproval bool
	ApprovalReason   string
	Alerts           int
	StartedAt        time.Time
	PhaseAt          time.Time
}

// PartitionTiming is one partition's flush times.
type PartitionTiming struct {
	Partition    int
	SendMillis   int64
	ReplayMillis int64
}

// maxAlerts bounds the alerts a failover records (a flapping alert must not
// grow the history without bound); later ones are only counted.
const maxAlerts = 100

// handlers holds what the failover's query, updates and signals read and
// change while it runs: operators' decisions, alerts, progress.
// Handlers run on the workflow's own goroutines, so no locking is needed.
type handlers struct {
	approval, rejection, abort *Decision
	gatePassed                 bool // past the approval gate: approve/reject refused
	noReturn                   bool // promote started: abort refused
	cancelWork                 workflow.CancelFunc
	res                        *FailoverResult
	prog                       *Progress
	alertsSeen                 int
}

var (
	errPastGate = errors.New(
		"the failover is already past its approval gate: approve and reject no longer apply",
	)
	errPointOfNoReturn = errors.New(
		"promote has started: that is the point of no return, the failover can no longer be aborted (fail back with a new failover once it completes)",
	)
	errNoWho = errors.New("say who you are: the decision's By is empty")
)

// validateGate says why an approve or reject does not apply now (who
// decides is checked by registerDecisions).
func (c *handlers) validateGate(ctx workflow.Context, d Decision) error {
	if c.gatePassed || c.abort != nil {
		return errPastGate
	}
	if c.approval != nil || c.rejection != nil {
		return errors.New("a decision was already recorded for this failover")
	}
	return nil
}

// validateAbort says why an abort does not apply now.
func (c *handlers) validateAbort(ctx workflow.Context, d Decision) error {
	if c.noReturn {
		return errPointOfNoReturn
	}
	return nil
}

func (c *handlers) approve(ctx workflow.Context, d Decision) {
	d.At = workflow.Now(ctx)
	c.approval = &d
}

func (c *handlers) reject(ctx workflow.Context, d Decision) {
	d.At = workflow.Now(ctx)
	c.rejection = &d
}

func (c *handlers) doAbort(ctx workflow.Context, d Decision) {
	if c.abort != nil {
		return
	}
	d.At = workflow.Now(ctx)
	c.abort = &d
	c.cancelWork()
}

func (c *handlers) alert(ctx workflow.Context, a AlertRef) AlertAck {
	ack := AlertAck{WorkflowID: workflow.GetInfo(ctx).WorkflowExecution.ID, Phase: c.prog.Phase}
	for _, seen := range c.res.Alerts {
		if seen.Fingerprint != "" && seen.Fingerprint == a.Fingerprint {
			ack.Alerts = c.alertsSeen
			return ack
		}
	}
	c.alertsSeen++
	if len(c.res.Alerts) < maxAlerts {
		c.res.Alerts = append(c.res.Alerts, a)
	}
	c.prog.Alerts = c.alertsSeen
	ack.Attached, ack.Alerts = true, c.alertsSeen
	return ack
}

// register installs the query, the alert update, the decisions' updates
// and same-named signals (registerDecisions; the signals are for the Web
// UI), the alert signal and the children's progress signal. The alert
// update comes first so that the signal goroutines still start after every
// update handler, as they always did.
func (c *handlers) register(ctx workflow.Context) error {
	answer := func() (Progress, error) { return *c.prog, nil }
	if err := workflow.SetQueryHandler(ctx, QueryProgress, answer); err != nil {
		return fmt.Errorf("register progress query: %w", err)
	}
	alert := func(ctx workflow.Context, a AlertRef) (AlertAck, error) { return c.alert(ctx, a), nil }
	if err := workflow.SetUpdateHandler(ctx, UpdateAlert, alert); err != nil {
		return fmt.Errorf("register update %s: %w", UpdateAlert, err)
	}
	if err := registerDecisions(ctx, &c.res.Refusals,
		decision{name: UpdateApprove, validate: c.validateGate, apply: c.approve},
		decision{name: UpdateReject, validate: c.validateGate, apply: c.reject},
		decision{name: UpdateAbort, validate: c.validateAbort, apply: c.doAbort},
	); err != nil {
		return err
	}
	alerts := workflow.GetSignalChannel(ctx, UpdateAlert)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var a AlertRef
			alerts.Receive(ctx, &a)
			c.alert(ctx, a)
		}
	})
	progress := workflow.GetSignalChannel(ctx, SignalGroupProgress)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			var gp GroupProgress
			progress.Receive(ctx, &gp)
			c.prog.Done[StepFlushSend] += gp.Sent
		}
	})
	return nil
}

// noteSlowest keeps the progress query's five slowest partitions.
func (c *handlers) noteSlowest(g []int, gr GroupResult) {
	for j, p := range g {
		c.prog.Slowest = append(
			c.prog.Slowest,
			PartitionTiming{Partition: p, SendMillis: gr.SendMillis[j], ReplayMillis: gr.ReplayMillis[j]},
		)
	}
	sort.SliceStable(c.prog.Slowest, func(a, b int) bool {
		x, y := c.prog.Slowest[a], c.prog.Slowest[b]
		if x.SendMillis+x.ReplayMillis != y.SendMillis+y.ReplayMillis {
			return x.SendMillis+x.ReplayMillis > y.SendMillis+y.ReplayMillis
		}
		return x.Partition < y.Partition
	})
	if len(c.prog.Slowest) > 5 {
		c.prog.Slowest = c.prog.Slowest[:5]
	}
}

// needsApproval applies the approval policy to the request and the
// precheck's picture.
func needsApproval(req FailoverRequest, pre activities.PrecheckResult) (bool, string) {
	p := req.Approval
	switch {
	case p.Required:
		return true, "the request asks for an approval"
	case req.Mode == ModeUnplanned:
		return true, "an unplanned failover may lose data"
	case req.Trigger != TriggerManual:
		return true, fmt.Sprintf("started automatically (trigger %s)", req.Trigger)
	case p.LossBudgetOps > 0 && pre.EstimatedLossOps > p.LossBudgetOps:
		return true, fmt.Sprintf(
			"estimated loss %d ops exceeds the budget of %d",
			pre.EstimatedLossOps,
			p.LossBudgetOps,
		)
	}
	return false, ""
}
