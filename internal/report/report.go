// Package report prints a failover's result for operators: the summary,
// the RPO/RTO numbers and the per-partition table.
package report

import (
	"fmt"
	"io"
	"sort"
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
	fmt.Fprintf(w, "%s failover of %s: %s -> %s, epoch %d -> %d (%d partitions in %d groups): %s\n",
		res.Mode, res.Account, res.From, res.To, res.OldEpoch, res.NewEpoch, res.Partitions, res.Groups, res.Outcome)
	if res.Reason != "" || res.RequestedBy != "" {
		fmt.Fprintf(w, "  reason: %q, requested by %q (trigger %s)\n", res.Reason, res.RequestedBy, res.Trigger)
	}
	for _, d := range []struct {
		what string
		d    *workflows.Decision
	}{{"approved", res.Approval}, {"rejected", res.Rejection}, {"aborted", res.Abort}} {
		if d.d != nil {
			fmt.Fprintf(w, "  %s by %s at %s: %s\n", d.what, d.d.By, d.d.At.Format(time.RFC3339), d.d.Reason)
		}
	}
	if len(res.Alerts) > 0 {
		fmt.Fprintf(w, "  alerts: %d recorded\n", len(res.Alerts))
	}
	for _, r := range res.Refusals {
		fmt.Fprintf(w, "  refused: %s\n", r)
	}
	if len(res.GivenUp) > 0 {
		fmt.Fprintf(w, "  DATA LOSS: %d ops known lost on %d partitions whose source was given up on:\n", res.LostOps, len(res.GivenUp))
		for _, e := range res.Ledger {
			fmt.Fprintf(w, "    partition %d: LSNs %d..%d (%d ops), known as of %s\n", e.Partition, e.FromLSN, e.ToLSN, e.Ops, e.KnownAsOf.Format(time.RFC3339Nano))
		}
	}
	if res.Outcome != workflows.OutcomeCompleted {
		return
	}
	fmt.Fprintf(w, "  total time:                 %d ms\n", res.TotalMillis)
	fmt.Fprintf(w, "  write unavailability:       %d ms (fence to promote)\n", res.UnavailableMillis)
	fmt.Fprintf(w, "  catch-up before fence:      %d ms (caught up: %v, %d ops behind at fence; %d send + %d replay behind at precheck)\n",
		res.CatchUpMillis, res.CaughtUp, res.LagAtFenceOps, res.PrecheckSendLagOps, res.PrecheckReplayLagOps)
	fmt.Fprintf(w, "  slowest flush-send:         %d ms\n", res.SlowestSendMillis)
	fmt.Fprintf(w, "  slowest flush-replay:       %d ms\n", res.SlowestReplayMillis)
	fmt.Fprintf(w, "  slowest partition (s + r):  %d ms\n", res.SlowestFlushMillis)
	t := res.Table
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
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		return t.SendMillis[order[a]]+t.ReplayMillis[order[a]] > t.SendMillis[order[b]]+t.ReplayMillis[order[b]]
	})
	rows := n
	if maxRows > 0 && rows > maxRows {
		rows = maxRows
		fmt.Fprintf(w, "  slowest %d of %d partitions:\n", rows, n)
	}
	fmt.Fprintf(w, "  %9s %10s %10s %10s %9s %9s\n", "partition", "final", "sent", "replayed", "send ms", "replay ms")
	for _, i := range order[:rows] {
		fmt.Fprintf(w, "  %9d %10d %10d %10d %9d %9d\n", t.Partition[i], t.FinalLSN[i], t.SentLSN[i], t.ReplayedLSN[i], t.SendMillis[i], t.ReplayMillis[i])
	}
}
