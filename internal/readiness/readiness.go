// Package readiness decides whether an account is ready to fail over now,
// and says why not: statuses in, verdict out, no I/O (the reading is
// internal/readiness/probe's). `baton status` and the worker's readiness
// gauge share it, so they never disagree.
//
// Ready means a planned failover would find what it needs and keep its
// guarantees: the account is protected (no reprotect pending after a
// failover), its secondary answers healthy and holds every partition as
// the replica at the account's epoch, replication flows (every primary
// partition answers, is not fenced, ships, and a partition with
// unacknowledged writes was acknowledged recently), and the lag and the
// estimated RPO are within their budgets.
package readiness

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// Defaults of Budget.
const (
	// DefaultMaxRPO bounds the estimated RPO in time.
	DefaultMaxRPO = 10 * time.Second
	// DefaultMaxAckAge: a partition with unacknowledged writes whose
	// secondary has not acknowledged anything for longer is stuck (the
	// failover precheck's threshold).
	DefaultMaxAckAge = 30 * time.Second
)

// Budget is what ready tolerates; the zero value gives the defaults.
type Budget struct {
	// MaxLagOps bounds the lag: writes on the primary not yet replayed on
	// the secondary (unacknowledged + received but not replayed), summed
	// over partitions. 0: max(1000, 2 x partitions), what a failover's
	// catch-up fences at and a reprotect calls caught up.
	MaxLagOps uint64 `json:"max_lag_ops"`
	// MaxRPO bounds the estimated RPO in time: the longest a partition with
	// unacknowledged writes has gone without an acknowledgement.
	MaxRPO time.Duration `json:"max_rpo"`
	// MaxAckAge: past it, a partition with unacknowledged writes counts as
	// stuck replication.
	MaxAckAge time.Duration `json:"max_ack_age"`
}

// For is the budget with its defaults filled in for an account of
// partitions partitions.
func (b Budget) For(partitions int) Budget {
	if b.MaxLagOps == 0 {
		b.MaxLagOps = max(1000, 2*uint64(partitions))
	}
	if b.MaxRPO <= 0 {
		b.MaxRPO = DefaultMaxRPO
	}
	if b.MaxAckAge <= 0 {
		b.MaxAckAge = DefaultMaxAckAge
	}
	return b
}

// Input is what the probe read of one account. An error field set means
// that read failed; the status beside it is then not looked at.
type Input struct {
	Now     time.Time
	Account location.Account
	// Primary is the account's status on its primary.
	Primary    stamp.AccountStatus
	PrimaryErr error
	// SecondaryHealth is the secondary stamp's health; Secondary the
	// account's status on it.
	SecondaryHealth    stamp.Health
	SecondaryHealthErr error
	Secondary          stamp.AccountStatus
	SecondaryErr       error
}

// Names of the checks, in the order they are made.
const (
	CheckProtected = "protected"
	CheckSecondary = "secondary healthy"
	CheckFlowing   = "replication flowing"
	CheckLag       = "lag within budget"
	CheckRPO       = "estimated RPO within budget"
)

// Check is one criterion: whether it holds, and what was found.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// Verdict says whether the account is ready to fail over, and why not.
type Verdict struct {
	Account string `json:"account"`
	Ready   bool   `json:"ready"`
	// Reasons are the details of the checks that failed, in check order.
	Reasons []string `json:"reasons,omitempty"`
	Checks  []Check  `json:"checks"`
	// The figures behind the checks (0 when not measured).
	SendLagOps   uint64 `json:"send_lag_ops"`
	ReplayLagOps uint64 `json:"replay_lag_ops"`
	LagOps       uint64 `json:"lag_ops"`
	// EstimatedRPOOps: the writes lost if the primary vanished now (not
	// acknowledged by the secondary); EstimatedRPO: the longest a lagging
	// partition has gone without an acknowledgement.
	EstimatedRPOOps uint64        `json:"estimated_rpo_ops"`
	EstimatedRPO    time.Duration `json:"estimated_rpo"`
	Budget          Budget        `json:"budget"`
}

// Evaluate decides. The budget's zero fields take their defaults.
func Evaluate(in Input, b Budget) Verdict {
	a := in.Account
	e := &evaluation{in: in, v: Verdict{Account: a.Account, Budget: b.For(a.Partitions)}}
	e.protected()
	e.secondary()
	if !a.Unprotected { // unprotected, nothing replicates: the first check says why
		primaryOK := e.flowing()
		if primaryOK {
			e.lag()
		}
	}
	e.v.Ready = true
	for _, c := range e.v.Checks {
		if !c.OK {
			e.v.Ready = false
			e.v.Reasons = append(e.v.Reasons, c.Detail)
		}
	}
	return e.v
}

// evaluation is one Evaluate under way.
type evaluation struct {
	in Input
	v  Verdict
}

func (e *evaluation) add(name string, ok bool, format string, args ...any) {
	e.v.Checks = append(e.v.Checks, Check{Name: name, OK: ok, Detail: fmt.Sprintf(format, args...)})
}

func (e *evaluation) protected() {
	a := e.in.Account
	if a.Unprotected {
		e.add(CheckProtected, false, "reprotect pending: %s failed over to %s at epoch %d and %s does not replicate it yet: "+
			"baton reprotect %s", a.Account, a.Primary, a.Epoch, a.Secondary, a.Account)
		return
	}
	e.add(CheckProtected, true, "%s replicates to %s", a.Primary, a.Secondary)
}

// secondary: the secondary stamp answers healthy and (protected) holds
// every partition as the replica at the account's epoch.
func (e *evaluation) secondary() {
	in, a := e.in, e.in.Account
	h := in.SecondaryHealth
	switch {
	case in.SecondaryHealthErr != nil:
		e.add(CheckSecondary, false, "secondary %s does not answer: %v", a.Secondary, in.SecondaryHealthErr)
		return
	case !h.OK:
		e.add(CheckSecondary, false, "secondary %s reports unhealthy", a.Secondary)
		return
	case a.Unprotected:
		e.add(CheckSecondary, true, "%s answers healthy", a.Secondary)
		return
	case in.SecondaryErr != nil:
		e.add(CheckSecondary, false, "secondary %s: status of %s: %v", a.Secondary, a.Account, in.SecondaryErr)
		return
	case len(in.Secondary.Partitions) != a.Partitions:
		e.add(CheckSecondary, false, "secondary %s holds %d partitions of %s, not %d",
			a.Secondary, len(in.Secondary.Partitions), a.Account, a.Partitions)
		return
	}
	wrong, first := 0, stamp.PartitionStatus{}
	for _, p := range in.Secondary.Partitions {
		if p.Role != stamp.RoleSecondary || p.Epoch != a.Epoch {
			if wrong == 0 {
				first = p
			}
			wrong++
		}
	}
	if wrong > 0 {
		e.add(CheckSecondary, false, "%s on secondary %s %s not the replica at epoch %d (partition %d is %s at epoch %d)",
			partitions(wrong, a.Partitions, first.Partition), a.Secondary, isAre(wrong), a.Epoch, first.Partition, first.Role, first.Epoch)
		return
	}
	e.add(CheckSecondary, true, "%s answers healthy and holds every partition as the replica", a.Secondary)
}

// flowing: the primary answers, and every partition is the unfenced
// primary at the account's epoch, ships, and (if it lags) was acknowledged
// within MaxAckAge. It reports whether the primary's status was usable.
func (e *evaluation) flowing() bool {
	in, a, b := e.in, e.in.Account, e.v.Budget
	switch {
	case in.PrimaryErr != nil:
		e.add(CheckFlowing, false, "primary %s does not answer: %v", a.Primary, in.PrimaryErr)
		return false
	case len(in.Primary.Partitions) != a.Partitions:
		e.add(CheckFlowing, false, "primary %s holds %d partitions of %s, not %d",
			a.Primary, len(in.Primary.Partitions), a.Account, a.Partitions)
		return false
	}
	var notPrimary, fenced, notShipping, stuck []stamp.PartitionStatus
	for _, p := range in.Primary.Partitions {
		lag := p.SendLag()
		e.v.SendLagOps += lag
		switch {
		case p.Role != stamp.RolePrimary || p.Epoch != a.Epoch:
			notPrimary = append(notPrimary, p)
		case p.Fenced:
			fenced = append(fenced, p)
		case !p.Shipping:
			notShipping = append(notShipping, p)
		case lag > 0 && (p.LastAckedAt.IsZero() || in.Now.Sub(p.LastAckedAt) > b.MaxAckAge):
			stuck = append(stuck, p)
		}
		if lag > 0 && !p.LastAckedAt.IsZero() {
			e.v.EstimatedRPO = max(e.v.EstimatedRPO, in.Now.Sub(p.LastAckedAt))
		}
	}
	e.v.EstimatedRPOOps = e.v.SendLagOps
	var why []string
	if len(notPrimary) > 0 {
		p := notPrimary[0]
		why = append(why, fmt.Sprintf("%s on %s %s not the primary at epoch %d (partition %d is %s at epoch %d)",
			which(notPrimary, a.Partitions), a.Primary, isAre(len(notPrimary)), a.Epoch, p.Partition, p.Role, p.Epoch))
	}
	if len(fenced) > 0 {
		why = append(why, fmt.Sprintf("%s on %s %s fenced (a failover in flight?)",
			which(fenced, a.Partitions), a.Primary, isAre(len(fenced))))
	}
	if len(notShipping) > 0 {
		why = append(why, fmt.Sprintf("%s on %s %s not shipping to %s",
			which(notShipping, a.Partitions), a.Primary, isAre(len(notShipping)), a.Secondary))
	}
	if len(stuck) > 0 {
		p, last := stuck[0], "never acknowledged"
		if !p.LastAckedAt.IsZero() {
			last = fmt.Sprintf("last acknowledged %s ago", in.Now.Sub(p.LastAckedAt).Round(time.Millisecond))
		}
		why = append(why, fmt.Sprintf("replication stuck on %s: %d writes unacknowledged on partition %d, %s (over %s)",
			which(stuck, a.Partitions), p.SendLag(), p.Partition, last, b.MaxAckAge))
	}
	if len(why) > 0 {
		e.add(CheckFlowing, false, "%s", join(why))
		return true
	}
	e.add(CheckFlowing, true, "every partition on %s ships to %s", a.Primary, a.Secondary)
	return true
}

// lag: the send lag plus the secondary's replay backlog within MaxLagOps,
// and the estimated RPO within MaxRPO.
func (e *evaluation) lag() {
	in, a, b := e.in, e.in.Account, e.v.Budget
	if in.SecondaryErr == nil {
		e.v.ReplayLagOps = in.Secondary.ReplayLag()
	}
	v := &e.v
	v.LagOps = v.SendLagOps + v.ReplayLagOps
	e.add(CheckLag, v.LagOps <= b.MaxLagOps, "lag %s (%d unacknowledged, %d not replayed on %s), budget %d",
		ops(v.LagOps), v.SendLagOps, v.ReplayLagOps, a.Secondary, b.MaxLagOps)
	e.add(CheckRPO, v.EstimatedRPO <= b.MaxRPO, "estimated RPO %s (%s not acknowledged), budget %s",
		v.EstimatedRPO.Round(time.Millisecond), ops(v.EstimatedRPOOps), b.MaxRPO)
}

// partitions says "partition 3", "all 8 partitions" or "3 of 8
// partitions" (first is the one to name when there is one).
func partitions(n, of, first int) string {
	switch {
	case n == 1:
		return fmt.Sprintf("partition %d", first)
	case n == of:
		return fmt.Sprintf("all %d partitions", n)
	}
	return fmt.Sprintf("%d of %d partitions", n, of)
}

// which names the partitions ps of an account of of partitions, the first
// of several in brackets: "partition 3", "2 of 8 partitions (0 first)".
func which(ps []stamp.PartitionStatus, of int) string {
	s := partitions(len(ps), of, ps[0].Partition)
	if len(ps) > 1 {
		s += fmt.Sprintf(" (%d first)", ps[0].Partition)
	}
	return s
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func ops(n uint64) string {
	if n == 1 {
		return "1 op"
	}
	return fmt.Sprintf("%d ops", n)
}

func join(parts []string) string {
	s := parts[0]
	for _, p := range parts[1:] {
		s += "; " + p
	}
	return s
}
