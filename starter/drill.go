package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/internal/report"
	"github.com/batonhq/baton/workflows"
)

// drillFlags are the flags that shape a drill request, shared by baton
// drill and baton drill schedule.
type drillFlags struct {
	req     workflows.DrillRequest
	account *accountArg
}

// requestFlags name the flags of drillFlags, so that schedule can refuse
// them where they mean nothing.
var requestFlags = []string{"canaries", "lag-budget", "blocked", "flush-deadline", "reason", "requested-by"}

func (df *drillFlags) register(cmd *cobra.Command, reason string) {
	f := cmd.Flags()
	req := &df.req
	f.IntVar(&req.Canaries, "canaries", workflows.DefaultDrillCanaries,
		fmt.Sprintf("canary keys written before each failover leg and read back after it (1 to %d)",
			workflows.MaxDrillCanaries))
	f.Uint64Var(&req.LagBudgetOps, "lag-budget", 0,
		"skip the drill while replication lags more than this many ops (default max(1000, 2 x partitions))")
	f.StringArrayVar(&req.Blocked, "blocked", nil,
		`a weekly window, in UTC, in which no drill starts (it is skipped, saying so): "DAY HH:MM-HH:MM", `+
			`DAY Mon..Sun or daily, e.g. "Sat 00:00-06:00"; repeatable`)
	f.DurationVar(&req.Failover.FlushDeadline, "flush-deadline", 0,
		fmt.Sprintf("bound on each failover leg's fenced window (default %s)", workflows.DefaultFlushDeadline))
	f.StringVar(&req.Reason, "reason", reason, "why, recorded in the drill")
	f.StringVar(&req.RequestedBy, "requested-by", currentUser(), "who asks, recorded in the drill")
}

// request makes the drill request of the flags, defaulted and validated.
func (df *drillFlags) request(cmd *cobra.Command) (workflows.DrillRequest, error) {
	req := df.req
	req.Account = df.account.value
	if cmd.Flags().Changed("flush-deadline") && req.Failover.FlushDeadline <= 0 {
		return req, fmt.Errorf("--flush-deadline %s: must be positive (leave it out for the default, %s)",
			req.Failover.FlushDeadline, workflows.DefaultFlushDeadline)
	}
	if req.Canaries <= 0 {
		return req, fmt.Errorf("--canaries %d: write 1 to %d canaries", req.Canaries, workflows.MaxDrillCanaries)
	}
	req = req.WithDefaults()
	if err := req.Validate(); err != nil {
		var fe *workflows.FieldError
		if errors.As(err, &fe) && fe.Field == workflows.FieldCanaries {
			return req, errors.New(fe.In("--canaries"))
		}
		if strings.HasPrefix(err.Error(), "blocked window") {
			return req, fmt.Errorf("--blocked: %w", err)
		}
		return req, inFlags(err)
	}
	return req, nil
}

// newDrillCmd builds baton drill and its schedule subcommand.
func newDrillCmd(g *globals) *cobra.Command {
	df := &drillFlags{}
	var wait bool
	cmd := &cobra.Command{
		Use:   "drill ACCOUNT",
		Short: "Run a disaster-recovery drill of an account now: failover, reprotect, failback, reprotect",
		Long: `Run one practice cycle of an account's disaster recovery as a durable
Drill workflow (ID drill-ACCOUNT): a planned failover to its secondary, a
reprotect, the failback, and another reprotect, each a child workflow under
the account's own IDs (failover-ACCOUNT, reprotect-ACCOUNT), so a drill never
runs beside a real failover or reprotect of the account. Before each failover
leg the drill writes canary keys through the location service and reads them
back from the new primary after it: none may be lost. The account ends where
it started, protected. Prints the workflow ID and its Web UI link; with
--wait, waits and prints the report: each leg's outcome and time (a failover
leg's is its RTO), fenced window, lag after each reprotect, the canaries.

The drill is skipped (it completes as skipped and says why, touching nothing)
when the account is not ready (unprotected, a stamp that does not answer,
replication lag above --lag-budget), when a failover, reprotect or another
drill of it runs, or when now is inside a --blocked window.

A drill that fails says which leg failed, where that left the account and
what to do next. baton drill schedule runs drills on a Temporal Schedule.`,
		Example: `  baton drill acct-1 --wait
  baton drill acct-1 --canaries 100 --blocked "Sat 00:00-06:00" --wait
  baton drill schedule acct-1 --every 168h --blocked "Mon 08:00-18:00"`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := df.request(cmd)
			if err != nil {
				return err
			}
			return withClient(func(c client.Client) error {
				return startDrill(cmd.Context(), cmd.OutOrStdout(), c, g, req, wait)
			})
		},
	}
	df.account = addAccountArg(cmd, "account to drill", false)
	df.register(cmd, "drill")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait for the drill to finish and print its report")
	cmd.AddCommand(newDrillScheduleCmd(g))
	return cmd
}

// startDrill starts a drill of req and prints its workflow ID and Web UI
// link; with wait, it waits and prints the report.
func startDrill(ctx context.Context, out io.Writer, c client.Client, g *globals, req workflows.DrillRequest,
	wait bool) error {
	run, err := launch.Drill(ctx, c, g.taskQueue, req)
	if err != nil {
		return err
	}
	ui := uiLink(g.ui, run.GetID(), run.GetRunID())
	if !g.json() {
		fmt.Fprintf(out, "drill started: workflow %s run %s\n", run.GetID(), run.GetRunID())
		fmt.Fprintf(out, "web UI: %s\n", ui)
	}
	if !wait {
		if g.json() {
			return printJSON(out, map[string]string{"workflow_id": run.GetID(), "run_id": run.GetRunID(), "ui": ui})
		}
		return nil
	}
	return waitAndReport(ctx, out, g, run, "drill", report.Drill)
}

// drillNext is the next step after a drill that failed: its report says.
func drillNext(ae *temporal.ApplicationError) string {
	var res workflows.DrillResult
	if ae.Type() != workflows.ErrTypeDrillFailed || !ae.HasDetails() || ae.Details(&res) != nil {
		return ""
	}
	return res.Next
}

// scheduleAction is what baton drill schedule does.
type scheduleAction string

const (
	scheduleShow    scheduleAction = "show"
	scheduleSet     scheduleAction = "every"
	schedulePause   scheduleAction = "pause"
	scheduleUnpause scheduleAction = "unpause"
	scheduleDelete  scheduleAction = "delete"
)

// newDrillScheduleCmd builds baton drill schedule.
func newDrillScheduleCmd(g *globals) *cobra.Command {
	df := &drillFlags{}
	var (
		every, offset       time.Duration
		pause, unpause, del bool
	)
	cmd := &cobra.Command{
		Use:   "schedule ACCOUNT",
		Short: "Run drills of an account on a Temporal Schedule; pause, unpause, delete or show it",
		Long: `Manage the account's drill schedule, a Temporal Schedule (ID
drill-schedule-ACCOUNT) whose action starts a Drill (workflow ID
drill-ACCOUNT followed by the time it was due).

  --every DURATION   create the schedule, a drill every DURATION (e.g. 168h,
                     weekly), or change the interval and the drill's flags of
                     the one there is (paused stays paused); drills are due at
                     the multiples of DURATION since the Unix epoch plus
                     --offset (weekly: Thursdays 00:00 UTC; --offset 48h:
                     Saturdays)
  --pause            pause it (no drill starts until --unpause)
  --unpause          let it run again
  --delete           delete it (a drill running goes on to its end)
  (none)             show it: interval, paused or not, blocked windows, the
                     next drills and the outcome of the latest ones

A drill still running when the next is due makes the schedule skip that one
(overlap policy skip). A drill due in a --blocked window, or while the
account is not ready, runs and completes as skipped, saying why, so every
due drill has a result: find them in the Web UI with
BatonOperation="drill" AND BatonAccount="ACCOUNT".`,
		Example: `  baton drill schedule acct-1 --every 168h --offset 50h --blocked "daily 12:00-13:00"
  baton drill schedule acct-1
  baton drill schedule acct-1 --pause --reason "storage maintenance this week"
  baton drill schedule acct-1 --unpause
  baton drill schedule acct-1 --delete`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			action, err := scheduleActionOf(cmd, every, offset, pause, unpause, del)
			if err != nil {
				return err
			}
			var req workflows.DrillRequest
			if action == scheduleSet {
				if req, err = df.request(cmd); err != nil {
					return err
				}
			}
			account := df.account.value
			return withClient(func(c client.Client) error {
				return manageSchedule(cmd.Context(), cmd.OutOrStdout(), c, g, account, action,
					launch.DrillSchedule{Every: every, Offset: offset, Request: req}, df.req)
			})
		},
	}
	df.account = addAccountArg(cmd, "account whose drill schedule to manage", false)
	df.register(cmd, "scheduled drill")
	f := cmd.Flags()
	f.DurationVar(&every, "every", 0, "create (or change) the schedule: a drill every DURATION, e.g. 168h")
	f.DurationVar(&offset, "offset", 0,
		"with --every: when in the interval the drills are due, from the multiples of --every since the Unix epoch "+
			"(weekly: Thursdays 00:00 UTC, so --offset 48h is Saturdays 00:00 UTC)")
	f.BoolVar(&pause, "pause", false, "pause the schedule")
	f.BoolVar(&unpause, "unpause", false, "let a paused schedule run again")
	f.BoolVar(&del, "delete", false, "delete the schedule")
	return cmd
}

// scheduleActionOf says what the flags ask: at most one action; the
// drill's flags only with --every (--reason also with --pause).
func scheduleActionOf(cmd *cobra.Command, every, offset time.Duration,
	pause, unpause, del bool) (scheduleAction, error) {
	f := cmd.Flags()
	var asked []string
	for _, name := range []string{"every", "pause", "unpause", "delete"} {
		if f.Changed(name) {
			asked = append(asked, "--"+name)
		}
	}
	if len(asked) > 1 {
		return "", usageError{cmd: cmd, err: fmt.Errorf("%s: give one of them", strings.Join(asked, " and "))}
	}
	action := scheduleShow
	switch {
	case f.Changed("every"):
		if every <= 0 {
			return "", fmt.Errorf("--every %s: must be positive, e.g. 168h for a weekly drill", every)
		}
		if offset < 0 || offset >= every {
			return "", fmt.Errorf("--offset %s: must be at least 0 and less than --every %s", offset, every)
		}
		return scheduleSet, nil
	case pause:
		action = schedulePause
	case unpause:
		action = scheduleUnpause
	case del:
		action = scheduleDelete
	}
	for _, name := range append([]string{"offset"}, requestFlags...) {
		if f.Changed(name) && !(name == "reason" && action == schedulePause) {
			return "", usageError{cmd: cmd, err: fmt.Errorf("--%s shapes the drills: give it with --every", name)}
		}
	}
	return action, nil
}

// scheduleReport is what baton drill schedule prints with --output json.
type scheduleReport struct {
	ScheduleID string                  `json:"schedule_id"`
	Account    string                  `json:"account"`
	Action     string                  `json:"action"`
	Created    bool                    `json:"created,omitempty"`
	Every      string                  `json:"every,omitempty"`
	Offset     string                  `json:"offset,omitempty"`
	Paused     bool                    `json:"paused"`
	Note       string                  `json:"note,omitempty"`
	Blocked    []string                `json:"blocked,omitempty"`
	Next       []time.Time             `json:"next,omitempty"`
	Recent     []scheduledRun          `json:"recent,omitempty"`
	Request    *workflows.DrillRequest `json:"request,omitempty"`
	UI         string                  `json:"ui"`
}

// scheduledRun is a drill the schedule started.
type scheduledRun struct {
	WorkflowID string    `json:"workflow_id"`
	RunID      string    `json:"run_id"`
	Started    time.Time `json:"started"`
	Status     string    `json:"status"`
	Phase      string    `json:"phase"`
}

// manageSchedule does action on the account's drill schedule and prints
// what it is now.
func manageSchedule(ctx context.Context, out io.Writer, c client.Client, g *globals, account string,
	action scheduleAction, sched launch.DrillSchedule, flags workflows.DrillRequest) error {
	id := workflows.DrillScheduleID(account)
	h := c.ScheduleClient().GetHandle(ctx, id)
	rep := scheduleReport{ScheduleID: id, Account: account, Action: string(action), UI: scheduleLink(g.ui, id)}
	var err error
	switch action {
	case scheduleSet:
		rep.Created, err = launch.ScheduleDrills(ctx, c, g.taskQueue, sched)
		if err != nil {
			return err
		}
	case schedulePause:
		note := "paused by " + flags.RequestedBy
		if flags.Reason != "scheduled drill" && flags.Reason != "" {
			note += ": " + flags.Reason
		}
		err = h.Pause(ctx, client.SchedulePauseOptions{Note: note})
	case scheduleUnpause:
		err = h.Unpause(ctx, client.ScheduleUnpauseOptions{Note: "unpaused by " + flags.RequestedBy})
	case scheduleDelete:
		err = h.Delete(ctx)
	}
	if err != nil {
		return scheduleError(account, string(action), err)
	}
	if action == scheduleDelete {
		if g.json() {
			return printJSON(out, rep)
		}
		fmt.Fprintf(out, "drill schedule %s deleted: no more drills of %s start (one running goes on to its end)\n",
			id, account)
		return nil
	}
	if err := describeSchedule(ctx, c, h, &rep); err != nil {
		return scheduleError(account, "show", err)
	}
	if g.json() {
		return printJSON(out, rep)
	}
	printSchedule(out, rep)
	return nil
}

// scheduleError says what failed, and what to do when there is no schedule.
func scheduleError(account, action string, err error) error {
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		return fmt.Errorf("%s has no drill schedule (%s): create one with baton drill schedule %s --every 168h",
			account, workflows.DrillScheduleID(account), account)
	}
	return fmt.Errorf("%s the drill schedule of %s: %w", action, account, err)
}

// describeSchedule fills rep from the schedule and the drills it started.
func describeSchedule(ctx context.Context, c client.Client, h client.ScheduleHandle, rep *scheduleReport) error {
	d, err := h.Describe(ctx)
	if err != nil {
		return err
	}
	s := d.Schedule
	if s.State != nil {
		rep.Paused, rep.Note = s.State.Paused, s.State.Note
	}
	if s.Spec != nil && len(s.Spec.Intervals) > 0 {
		rep.Every = s.Spec.Intervals[0].Every.String()
		if o := s.Spec.Intervals[0].Offset; o > 0 {
			rep.Offset = o.String()
		}
	}
	if a, ok := s.Action.(*client.ScheduleWorkflowAction); ok && len(a.Args) == 1 {
		var req workflows.DrillRequest
		if p, ok := a.Args[0].(*commonpb.Payload); ok && converter.GetDefaultDataConverter().FromPayload(p, &req) == nil {
			rep.Request, rep.Blocked = &req, req.Blocked
		}
	}
	rep.Next = d.Info.NextActionTimes
	for _, r := range d.Info.RecentActions {
		if r.StartWorkflowResult == nil {
			continue
		}
		run := scheduledRun{WorkflowID: r.StartWorkflowResult.WorkflowID, RunID: r.StartWorkflowResult.FirstExecutionRunID,
			Started: r.ActualTime}
		if wd, err := c.DescribeWorkflowExecution(ctx, run.WorkflowID, run.RunID); err == nil {
			info := wd.GetWorkflowExecutionInfo()
			run.Status = strings.ToLower(strings.TrimPrefix(info.GetStatus().String(), "WORKFLOW_EXECUTION_STATUS_"))
			if p, ok := info.GetSearchAttributes().GetIndexedFields()[workflows.SearchPhase.GetName()]; ok {
				_ = converter.GetDefaultDataConverter().FromPayload(p, &run.Phase)
			}
		}
		rep.Recent = append(rep.Recent, run)
	}
	return nil
}

// printSchedule writes the schedule for people.
func printSchedule(w io.Writer, rep scheduleReport) {
	state := "active"
	if rep.Paused {
		state = "PAUSED"
	}
	verb := map[string]string{string(scheduleSet): "set", string(schedulePause): "paused",
		string(scheduleUnpause): "unpaused"}[rep.Action]
	if rep.Created {
		verb = "created"
	}
	if verb != "" {
		fmt.Fprintf(w, "drill schedule %s %s\n", rep.ScheduleID, verb)
	}
	offset := ""
	if rep.Offset != "" {
		offset = fmt.Sprintf(" (offset %s)", rep.Offset)
	}
	fmt.Fprintf(w, "drills of %s every %s%s: %s", rep.Account, rep.Every, offset, state)
	if rep.Note != "" {
		fmt.Fprintf(w, " (%s)", rep.Note)
	}
	fmt.Fprintln(w)
	if len(rep.Blocked) > 0 {
		fmt.Fprintf(w, "  blocked (UTC): %s\n", strings.Join(rep.Blocked, ", "))
	}
	if rep.Request != nil {
		fmt.Fprintf(w, "  %d canaries per failover leg, requested by %q\n", rep.Request.Canaries, rep.Request.RequestedBy)
	}
	if len(rep.Next) > 0 && !rep.Paused {
		fmt.Fprintf(w, "  next: %s\n", rep.Next[0].UTC().Format(time.RFC3339))
	}
	for _, r := range rep.Recent {
		fmt.Fprintf(w, "  %s %s: %s, %s\n", r.Started.UTC().Format(time.RFC3339), r.WorkflowID, r.Status, r.Phase)
	}
	fmt.Fprintf(w, "web UI: %s\n", rep.UI)
}

// scheduleLink is the Web UI page of a schedule.
func scheduleLink(ui, id string) string {
	ns := envOr("TEMPORAL_NAMESPACE", "default")
	return fmt.Sprintf("%s/namespaces/%s/schedules/%s", ui, url.PathEscape(ns), url.PathEscape(id))
}
