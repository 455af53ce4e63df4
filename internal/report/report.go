// Package report prints a failover's result for operators: the summary,
// the RPO/RTO numbers and the per-partition table.
package report

import (
	"fmt"
	"io"
	"sort"

	"github.com/batonhq/baton/workflows"
)

// Failover writes res. It lists the slowest partitions in full, up to
// maxRows (all of them when maxRows <= 0).
func Failover(w io.Writer, res workflows.FailoverResult, maxRows int) {
	fmt.Fprintf(w, "failover of %s: %s -> %s, epoch %d -> %d (%d partitions in %d groups)\n",
		res.Account, res.From, res.To, res.OldEpoch, res.NewEpoch, res.Partitions, res.Groups)
	if res.Reason != "" || res.RequestedBy != "" {
		fmt.Fprintf(w, "  reason: %q, requested by %q\n", res.Reason, res.RequestedBy)
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
