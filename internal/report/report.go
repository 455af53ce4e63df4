// Package report prints a failover's result for operators: the summary,
// the RPO/RTO numbers and the per-partition table.
package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/batonhq/baton/workflows"
)

// Plan writes a dry run's result: what a failover would do and the RPO
// picture at this moment.
func Plan(w io.Writer, res workflows.FailoverResult) {
	p := res.Precheck
	fmt.Fprintf(w, "plan: %s failover of %s from %s to %s, epoch %d -> %d, %d partitions in %d groups\n",
		res.Mode, res.Account, p.From, p.To, p.Epoch, p.Epoch+1, p.Partitions, res.Groups)
	if p.SourceReachable {
		fmt.Fprintf(w, "  source %s: reachable\n", p.From)
	} else {
		fmt.Fprintf(w, "  source %s: NOT reachable (%s)\n", p.From, p.SourceError)
	}
	fmt.Fprintf(w, "  replication lag: %d ops unacknowledged (oldest %s), %d ops unreplayed on %s\n",
		p.SendLagOps, p.OldestAckAge.Round(time.Millisecond), p.ReplayLagOps, p.To)
	asOf := "now"
	if !p.KnownAsOf.IsZero() {
		asOf = "as of " + p.KnownAsOf.Format(time.RFC3339Nano)
	}
	fmt.Fprintf(w, "  if the source vanished now: %d ops lost (%s)\n", p.EstimatedLossOps, asOf)
	health := "healthy"
	if !p.DestinationHealthy {
		health = "NOT healthy: " + p.DestinationNote
	}
	fmt.Fprintf(w, "  destination %s: %s\n", p.To, health)
	if res.ApprovalRequired {
		fmt.Fprintf(w, "  needs approval: %s\n", res.ApprovalReason)
	}
	type lag struct {
		p   int
		ops uint64
	}
	var lags []lag
	for i, ops := range p.LagOps {
		if ops > 0 {
			lags = append(lags, lag{i, ops})
		}
	}
	sort.Slice(lags, func(a, b int) bool {
		return lags[a].ops > lags[b].ops || (lags[a].ops == lags[b].ops && lags[a].p < lags[b].p)
	})
	for _, l := range lags[:min(5, len(lags))] {
		fmt.Fprintf(w, "    partition %d: %d ops behind (%d ms since last ack)\n", l.p, l.ops, p.LagAgeMillis[l.p])
	}
}

// Failover writes res. It lists the slowest partitions in full, up to
// maxRows (all of them when maxRows <= 0).
func Failover(w io.Writer, res workflows.FailoverResult, maxRows int) {
	if res.Outcome == workflows.OutcomeDryRun {
		Plan(w, res)
		return
	}
	fmt.Fprintln(w, headline(res))
	if res.Reason != "" || res.RequestedBy != "" {
		fmt.Fprintf(w, "  reason: %q, requested by %q (trigger %s)\n", res.Reason, res.RequestedBy, res.Trigger)
	}
	decisions(w, res)
	if len(res.Alerts) > 0 {
		fmt.Fprintf(w, "  alerts: %d recorded\n", len(res.Alerts))
	}
	for _, r := range res.Refusals {
		fmt.Fprintf(w, "  refused: %s\n", r)
	}
	if len(res.GivenUp) > 0 {
		dataLoss(w, res)
	}
	if len(res.HeldUp) > 0 {
		heldUp(w, res, maxRows)
	}
	if res.Outcome == workflows.OutcomeRolledBack || res.Outcome == workflows.OutcomeAborted {
		if res.UnavailableMillis > 0 {
			fmt.Fprintf(w, "  writes unavailable: %s (fence to unfence; flush deadline %s)\n", ms(res.UnavailableMillis), res.FlushDeadline)
		}
		return
	}
	if res.Outcome != workflows.OutcomeCompleted {
		return
	}
	timings(w, res)
	partitionTable(w, res.Table, maxRows)
}

// headline is the report's first line, naming only what is known: a
// failover refused before its precheck answered has no stamps or epochs.
func headline(res workflows.FailoverResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s failover of %s", res.Mode, res.Account)
	if res.From != "" && res.To != "" {
		fmt.Fprintf(&b, ": %s -> %s, epoch %d -> %d", res.From, res.To, res.OldEpoch, res.NewEpoch)
	}
	if res.Partitions > 0 {
		fmt.Fprintf(&b, " (%s in %s)", plural(res.Partitions, "partition"), plural(res.Groups, "group"))
	}
	fmt.Fprintf(&b, ": %s", res.Outcome)
	return b.String()
}

// plural writes n and the noun, with an s unless n is 1: "1 group".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func decisions(w io.Writer, res workflows.FailoverResult) {
	for _, d := range []struct {
		what string
		d    *workflows.Decision
	}{{"approved", res.Approval}, {"rejected", res.Rejection}, {"aborted", res.Abort}} {
		if d.d != nil {
			fmt.Fprintf(w, "  %s by %s at %s: %s\n", d.what, d.d.By, d.d.At.Format(time.RFC3339), d.d.Reason)
		}
	}
}

// dataLoss leads with what nobody but the lost source knows: the writes it
// may have acknowledged after its last contact (an estimate), then what is
// known lost up to that contact, per partition.
func dataLoss(w io.Writer, res workflows.FailoverResult) {
	if len(res.Ledger) > 0 && res.Ledger[0].Unit != "" {
		storeLoss(w, res)
		return
	}
	lastContact := time.Time{}
	for _, e := range res.Ledger {
		if e.KnownAsOf.After(lastContact) {
			lastContact = e.KnownAsOf
		}
	}
	fmt.Fprintf(w, "  DATA LOSS on %s whose source was given up on: up to ~%d ops (estimate) = %d known lost before the last contact%s + ~%d estimated after it\n",
		plural(len(res.GivenUp), "partition"), res.LostOps+res.UnseenOpsEstimate, res.LostOps, asOf(lastContact), res.UnseenOpsEstimate)
	fmt.Fprintf(w, "    (after the last contact only the old primary knows what it acknowledged; the estimate is its write rate then x the time until it was given up)\n")
	for _, e := range res.Ledger {
		lost := "none"
		if e.Ops > 0 {
			lost = fmt.Sprintf("LSNs %d..%d (%d ops)", e.FromLSN, e.ToLSN, e.Ops)
		}
		fmt.Fprintf(w, "    partition %d: last contact %s; known lost: %s; after it: ~%d ops (at %.0f ops/s)\n",
			e.Partition, stamp(e.KnownAsOf), lost, e.UnseenOpsEstimate, e.SourceWriteRate)
	}
}

// storeLoss is the data loss of a store's account: where each replica's
// replay stopped, and where the rest is known.
func storeLoss(w io.Writer, res workflows.FailoverResult) {
	fmt.Fprintf(w, "  DATA LOSS on %s whose old primary was given up on: everything it wrote after its replica's replay stopped\n",
		plural(len(res.GivenUp), "shard"))
	for _, e := range res.Ledger {
		fmt.Fprintf(w, "    shard %d: replayed up to %s; last heard from its primary (or its last replayed commit) %s; %d %s received but never replayable\n",
			e.Partition, e.From, stamp(e.KnownAsOf), e.ToLSN-min(e.ToLSN, e.FromLSN), e.Unit)
		fmt.Fprintf(w, "      %s\n", e.Pending)
	}
}

func asOf(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " (" + stamp(t) + ")"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format("15:04:05.000Z07:00")
}

// heldUp names the partitions that held a failover up, with their last
// error: the first rows in full, then a count.
func heldUp(w io.Writer, res workflows.FailoverResult, maxRows int) {
	fmt.Fprintf(w, "  held up by %s:\n", plural(len(res.HeldUp), "partition"))
	rows := len(res.HeldUp)
	if maxRows > 0 && rows > maxRows {
		rows = maxRows
	}
	for _, h := range res.HeldUp[:rows] {
		fmt.Fprintf(w, "    partition %d at %s: %s\n", h.Partition, h.Step, h.Error)
	}
	if rows < len(res.HeldUp) {
		fmt.Fprintf(w, "    ... and %d more (--rows 0 lists all)\n", len(res.HeldUp)-rows)
	}
}

// timings says where the time of a completed failover went.
func timings(w io.Writer, res workflows.FailoverResult) {
	fmt.Fprintf(w, "  total time:                 %s\n", ms(res.TotalMillis))
	fmt.Fprintf(w, "  write unavailability:       %s (fence to promote)\n", ms(res.UnavailableMillis))
	for _, p := range res.Window {
		wait := ""
		if p.WaitMillis > 0 {
			wait = fmt.Sprintf(" (of which %s waiting for a worker or a retry)", ms(min(p.WaitMillis, p.Millis)))
		}
		fmt.Fprintf(w, "    %-13s %10s%s\n", p.Phase+":", ms(p.Millis), wait)
	}
	fmt.Fprintf(w, "  catch-up before fence:      %s (caught up: %v, %d ops behind at fence; %d send + %d replay behind at precheck)\n",
		ms(res.CatchUpMillis), res.CaughtUp, res.LagAtFenceOps, res.PrecheckSendLagOps, res.PrecheckReplayLagOps)
	if res.FlushDeadline > 0 {
		fmt.Fprintf(w, "  flush deadline:             %s\n", res.FlushDeadline)
	}
	fmt.Fprintf(w, "  on the stamps: slowest flush-send %s, slowest flush-replay %s, slowest partition (send + replay) %s\n",
		ms(res.SlowestSendMillis), ms(res.SlowestReplayMillis), ms(res.SlowestFlushMillis))
}

// partitionTable lists the partitions, slowest first by the workflow's view
// (fence to replayed), then by the stamps'.
func partitionTable(w io.Writer, t workflows.PartitionTable, maxRows int) {
	n := len(t.Partition)
	if n == 0 {
		return
	}
	var final, sent, replayed uint64
	for i := range n {
		final += t.FinalLSN[i]
		sent += t.SentLSN[i]
		replayed += t.ReplayedLSN[i]
	}
	fmt.Fprintf(w, "  LSNs summed over partitions: final %d, sent %d, replayed %d\n", final, sent, replayed)
	workflowView := len(t.ReplayedAfterMillis) == n
	cost := func(i int) int64 {
		if workflowView {
			return t.ReplayedAfterMillis[i]*1_000_000 + t.SendMillis[i] + t.ReplayMillis[i]
		}
		return t.SendMillis[i] + t.ReplayMillis[i]
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return cost(order[a]) > cost(order[b]) })
	rows := n
	if maxRows > 0 && rows > maxRows {
		rows = maxRows
		fmt.Fprintf(w, "  slowest %d of %d partitions:\n", rows, n)
	}
	if !workflowView {
		fmt.Fprintf(w, "  %9s %10s %10s %10s %9s %9s\n", "partition", "final", "sent", "replayed", "send ms", "replay ms")
		for _, i := range order[:rows] {
			fmt.Fprintf(w, "  %9d %10d %10d %10d %9d %9d\n", t.Partition[i], t.FinalLSN[i], t.SentLSN[i], t.ReplayedLSN[i], t.SendMillis[i], t.ReplayMillis[i])
		}
		return
	}
	fmt.Fprintf(w, "  %9s %10s %10s %10s %11s %13s %9s %9s\n", "partition", "final", "sent", "replayed",
		"sent at ms", "replayed at ms", "send ms", "replay ms")
	for _, i := range order[:rows] {
		fmt.Fprintf(w, "  %9d %10d %10d %10d %11d %13d %9d %9d\n", t.Partition[i], t.FinalLSN[i], t.SentLSN[i], t.ReplayedLSN[i],
			t.SentAfterMillis[i], t.ReplayedAfterMillis[i], t.SendMillis[i], t.ReplayMillis[i])
	}
	fmt.Fprintf(w, "  (\"at\" columns: from the fence, as the workflow saw it; send/replay ms: on the stamps)\n")
}
