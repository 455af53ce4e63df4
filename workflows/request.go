package workflows

import (
	"fmt"
	"strconv"
	"time"
)

// DefaultApprovalTimeout is how long a failover waits at its approval gate
// when the request sets no timeout.
const DefaultApprovalTimeout = time.Hour

// commonDefaults fills what a failover's and an evacuation's requests
// share: planned, started by hand, waiting at most DefaultApprovalTimeout
// for an approval.
func commonDefaults(mode *Mode, trigger *Trigger, approval *ApprovalPolicy) {
	if *mode == "" {
		*mode = ModePlanned
	}
	if *trigger == "" {
		*trigger = TriggerManual
	}
	if approval.Timeout == 0 {
		approval.Timeout = DefaultApprovalTimeout
	}
}

// WithDefaults returns the request with its defaults filled: a planned
// failover, started by hand, waiting at most DefaultApprovalTimeout for an
// approval. Options are defaulted by the workflow, which knows the
// account's size.
func (r FailoverRequest) WithDefaults() FailoverRequest {
	commonDefaults(&r.Mode, &r.Trigger, &r.Approval)
	return r
}

// Request fields, as FieldError names them.
const (
	FieldAccount         = "account"
	FieldTo              = "to"
	FieldFrom            = "from"
	FieldMode            = "mode"
	FieldTrigger         = "trigger"
	FieldApprovalTimeout = "approval timeout"
	FieldGroupSize       = "group size"
	FieldReplayTimeout   = "replay timeout"
	FieldFlushSendGiveUp = "flush-send give-up"
	FieldSourceTimeout   = "source timeout"
	FieldHeartbeat       = "heartbeat timeout"
	FieldFlushDeadline   = "flush deadline"
	FieldPrecheckBudget  = "precheck budget"
)

// FieldError is a request field the contract refuses: which field, the
// value as given (quoted if a string; "" when missing) and what is wrong
// and what to do. Each way in phrases it in its own words with In: a flag
// (--mode), a JSON key ("mode").
type FieldError struct {
	Field   string
	Value   string
	Problem string
}

func (e *FieldError) Error() string { return e.In(e.Field) }

// In says the error of a field the caller calls name: `--mode "fast": use
// "planned" or "unplanned"`, or `no --to: name the stamp to fail over to`.
func (e *FieldError) In(name string) string {
	if e.Value == "" {
		return fmt.Sprintf("no %s: %s", name, e.Problem)
	}
	return fmt.Sprintf("%s %s: %s", name, e.Value, e.Problem)
}

// Validate says what is wrong with the request, as a *FieldError whose
// message says what to do, or nil. It is the one check every way in makes
// (the CLI, the webhook, the workflow itself); call it on r.WithDefaults().
func (r FailoverRequest) Validate() error {
	switch {
	case r.Account == "":
		return &FieldError{FieldAccount, "", "name the account to fail over"}
	case r.ToStamp == "":
		return &FieldError{FieldTo, "", "name the stamp to fail over to"}
	case r.FromStamp != "" && r.FromStamp == r.ToStamp:
		return &FieldError{
			FieldFrom,
			strconv.Quote(r.FromStamp),
			"it is also the destination: a failover needs two different stamps",
		}
	case !r.Mode.Valid():
		return &FieldError{
			FieldMode,
			strconv.Quote(string(r.Mode)),
			fmt.Sprintf("use %q or %q", ModePlanned, ModeUnplanned),
		}
	case !r.Trigger.Valid():
		return &FieldError{
			FieldTrigger,
			strconv.Quote(string(r.Trigger)),
			fmt.Sprintf("use %q, %q or %q", TriggerManual, TriggerAlert, TriggerAPI),
		}
	case r.Approval.Timeout < 0:
		return &FieldError{
			FieldApprovalTimeout,
			r.Approval.Timeout.String(),
			fmt.Sprintf("must be positive (or none, for %s)", DefaultApprovalTimeout),
		}
	}
	return r.Options.validate()
}

// validate refuses options that cannot mean anything: a negative size or
// bound (zero means the default; a negative CatchUpTimeout skips catch-up).
func (o FailoverOptions) validate() error {
	for _, d := range []struct {
		field string
		v     time.Duration
	}{
		{FieldReplayTimeout, o.ReplayTimeout}, {FieldFlushSendGiveUp, o.FlushSendGiveUp},
		{FieldSourceTimeout, o.SourceTimeout}, {FieldHeartbeat, o.HeartbeatTimeout},
		{FieldFlushDeadline, o.FlushDeadline}, {FieldPrecheckBudget, o.PrecheckBudget},
	} {
		if d.v < 0 {
			return &FieldError{d.field, d.v.String(), "must be positive (or none, for the default)"}
		}
	}
	if o.GroupSize < 0 {
		return &FieldError{FieldGroupSize, strconv.Itoa(o.GroupSize), "must be positive (or none, for the default)"}
	}
	return nil
}
