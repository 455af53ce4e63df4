package launch

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/workflows"
)

// drillAttributes are the search attributes a drill starts with, so that
// BatonOperation = 'drill' AND BatonAccount = 'A' finds it from its start.
func drillAttributes(account string) temporal.SearchAttributes {
	return temporal.NewSearchAttributes(
		workflows.SearchAccount.ValueSet(account),
		workflows.SearchOperation.ValueSet(workflows.OperationDrill),
		workflows.SearchPhase.ValueSet(string(workflows.PhasePrecheck)),
	)
}

func drillDetails(req workflows.DrillRequest) string {
	d := fmt.Sprintf("**account** %s  \n**canaries** %d per failover  \n**reason** %s  \n**requested by** %s",
		req.Account, req.Canaries, req.Reason, req.RequestedBy)
	if len(req.Blocked) > 0 {
		d += "  \n**blocked (UTC)** " + strings.Join(req.Blocked, ", ")
	}
	return d
}

// DrillOptions are the start options of a drill started by hand: its
// account-derived ID (one at a time), search attributes and summary.
func DrillOptions(taskQueue string, req workflows.DrillRequest) client.StartWorkflowOptions {
	req = req.WithDefaults()
	return client.StartWorkflowOptions{
		ID:                                       workflows.DrillWorkflowID(req.Account),
		TaskQueue:                                taskQueue,
		WorkflowIDConflictPolicy:                 enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:                    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            "drill of " + req.Account,
		StaticDetails:                            drillDetails(req),
		TypedSearchAttributes:                    drillAttributes(req.Account),
	}
}

// Drill starts a Drill of req.Account now; one already running (by hand)
// is refused with ErrAlreadyRunning, naming it.
func Drill(ctx context.Context, c client.Client, taskQueue string,
	req workflows.DrillRequest) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, DrillOptions(taskQueue, req), workflows.NameDrill, req)
	var running *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &running) {
		return nil, fmt.Errorf("%w: a drill of %s is already running: workflow %s run %s",
			ErrAlreadyRunning, req.Account, workflows.DrillWorkflowID(req.Account), running.RunId)
	}
	if err != nil {
		return nil, fmt.Errorf("start drill of %s: %w", req.Account, err)
	}
	return run, nil
}

// DrillSchedule is an account's drill schedule: every Every, a Drill of
// Request (Request.Schedule is set to the schedule's ID). The drills are
// due at the multiples of Every since the Unix epoch, plus Offset (weekly
// is Thursdays 00:00 UTC; Offset 48h makes it Saturdays). A drill still
// running when the next is due makes the schedule skip that one.
type DrillSchedule struct {
	Every   time.Duration
	Offset  time.Duration
	Request workflows.DrillRequest
}

// action is what the schedule starts.
func (s DrillSchedule) action(taskQueue string) *client.ScheduleWorkflowAction {
	req := s.Request.WithDefaults()
	req.Schedule = workflows.DrillScheduleID(req.Account)
	return &client.ScheduleWorkflowAction{
		ID:                    workflows.DrillWorkflowID(req.Account),
		Workflow:              workflows.NameDrill,
		Args:                  []any{req},
		TaskQueue:             taskQueue,
		StaticSummary:         fmt.Sprintf("scheduled drill of %s (every %s)", req.Account, s.Every),
		StaticDetails:         drillDetails(req),
		TypedSearchAttributes: drillAttributes(req.Account),
	}
}

// ScheduleDrills creates the account's drill schedule, or replaces the
// interval and request of the one it has (keeping its paused or running
// state); created says which.
func ScheduleDrills(ctx context.Context, c client.Client, taskQueue string, s DrillSchedule) (created bool, err error) {
	req := s.Request.WithDefaults()
	if err := req.Validate(); err != nil {
		return false, err
	}
	if s.Every <= 0 || s.Offset < 0 || s.Offset >= s.Every {
		return false, fmt.Errorf("drill schedule of %s: every %s, offset %s: the interval must be positive and "+
			"the offset within it", req.Account, s.Every, s.Offset)
	}
	id := workflows.DrillScheduleID(req.Account)
	spec := client.ScheduleSpec{Intervals: []client.ScheduleIntervalSpec{{Every: s.Every, Offset: s.Offset}}}
	_, err = c.ScheduleClient().Create(ctx, client.ScheduleOptions{
		ID:      id,
		Spec:    spec,
		Action:  s.action(taskQueue),
		Overlap: enumspb.SCHEDULE_OVERLAP_POLICY_SKIP,
		Note:    fmt.Sprintf("drills of %s every %s, requested by %s", req.Account, s.Every, req.RequestedBy),
	})
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, temporal.ErrScheduleAlreadyRunning) {
		return false, fmt.Errorf("create the drill schedule %s: %w", id, err)
	}
	err = c.ScheduleClient().GetHandle(ctx, id).Update(ctx, client.ScheduleUpdateOptions{
		DoUpdate: func(in client.ScheduleUpdateInput) (*client.ScheduleUpdate, error) {
			sched := in.Description.Schedule
			sched.Spec = &spec
			sched.Action = s.action(taskQueue)
			if sched.Policy == nil {
				sched.Policy = &client.SchedulePolicies{}
			}
			sched.Policy.Overlap = enumspb.SCHEDULE_OVERLAP_POLICY_SKIP
			return &client.ScheduleUpdate{Schedule: &sched}, nil
		},
	})
	if err != nil {
		return false, fmt.Errorf("update the drill schedule %s: %w", id, err)
	}
	return false, nil
}
