package report

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/batonhq/baton/workflows"
)

// reprotectRows bounds the partitions the reprotect report lists by name
// (those with the most recovered writes first).
const reprotectRows = 10

// Reprotect writes a reprotect's report: where the account replicates now,
// the writes set aside in the recovered area next to what the failover's
// ledger knew of them, the keys rewound, what was seeded, and the times.
// Only what is known is printed: a reprotect refused by its precheck has
// a headline and its reason, nothing else.
func Reprotect(w io.Writer, res workflows.ReprotectResult) {
	fmt.Fprintln(w, reprotectHeadline(res))
	if res.Reason != "" || res.RequestedBy != "" {
		trigger := ""
		if res.Trigger != "" {
			trigger = fmt.Sprintf(" (trigger %s)", res.Trigger)
		}
		fmt.Fprintf(w, "  reason: %q, requested by %q%s\n", res.Reason, res.RequestedBy, trigger)
	}
	if res.AlertsSeen > 0 {
		fmt.Fprintf(w, "  alerts: %s recorded\n", plural(res.AlertsSeen, "alert"))
	}
	if res.AlreadyProtected {
		fmt.Fprintf(w, "  already protected: %s replicates to %s; nothing to do\n", res.Primary, res.Secondary)
		return
	}
	recovered(w, res)
	if res.RestoredKeys > 0 {
		fmt.Fprintf(w, "  restored: %s on %s rewound to %s's values\n",
			plural(res.RestoredKeys, "key"), res.Secondary, res.Primary)
	}
	if len(res.Seeded) > 0 {
		fmt.Fprintf(w, "  seeded: %s (%s) from a snapshot of %s, %s\n", plural(len(res.Seeded), "partition"),
			ranges(res.Seeded), res.Primary, bytesOf(res.SeededBytes))
	}
	switch {
	case res.CatchUpMillis == 0 && res.Outcome != workflows.OutcomeCompleted:
	case res.LagOps == 0:
		fmt.Fprintf(w, "  lag at the end: none (%s had replayed all %s wrote)\n", res.Secondary, res.Primary)
	default:
		fmt.Fprintf(w, "  lag at the end: %s written on %s not yet replayed on %s\n",
			plural(int(res.LagOps), "op"), res.Primary, res.Secondary)
	}
	if res.TotalMillis > 0 {
		catchUp := ""
		if res.CatchUpMillis > 0 {
			catchUp = fmt.Sprintf(" (catch-up %s)", FormatDuration(ms(res.CatchUpMillis)))
		}
		fmt.Fprintf(w, "  total time: %s%s\n", FormatDuration(ms(res.TotalMillis)), catchUp)
	}
}

// reprotectHeadline is the report's first line, naming only what is known.
func reprotectHeadline(res workflows.ReprotectResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "reprotect of %s", res.Account)
	if res.Primary != "" && res.Secondary != "" {
		fmt.Fprintf(&b, ": primary %s, secondary %s (the old primary)", res.Primary, res.Secondary)
	}
	if res.Epoch > 0 {
		fmt.Fprintf(&b, ", epoch %d", res.Epoch)
	}
	if res.Partitions > 0 {
		fmt.Fprintf(&b, " (%s)", plural(res.Partitions, "partition"))
	}
	fmt.Fprintf(&b, ": %s", res.Outcome)
	return b.String()
}

// recovered says what the demote set aside, next to the failover's
// ledger: the ledger only knew what the old primary reported before contact
// was lost, so it is a lower bound, and the difference is stated.
func recovered(w io.Writer, res workflows.ReprotectResult) {
	switch {
	case res.Recovered == nil && len(res.Seeded) > 0 && len(res.Seeded) == res.Partitions:
		fmt.Fprintf(w, "  recovered writes: none (%s held no data of the account)\n", res.Secondary)
		if res.LedgerLostOps > 0 {
			fmt.Fprintf(w, "    the failover's ledger (%s) counted %s lost: they went with %s's data\n",
				res.LastFailoverMode, plural(int(res.LedgerLostOps), "write"), res.Secondary)
		}
		return
	case res.Recovered == nil:
		return // the reprotect ended before demote
	case res.RecoveredOps == 0:
		fmt.Fprintf(w, "  recovered writes: none (%s held nothing past what %s replayed)\n", res.Secondary, res.Primary)
	default:
		fmt.Fprintf(w, "  recovered writes: %s on %s past what %s replayed, set aside (baton recovered %s lists them)\n",
			plural(int(res.RecoveredOps), "write"), res.Secondary, res.Primary, res.Account)
		perPartition(w, res.Recovered)
	}
	ledger(w, res)
}

// ledger compares the recovered writes with the failover's ledger.
func ledger(w io.Writer, res workflows.ReprotectResult) {
	n, m := res.LedgerLostOps, res.RecoveredOps
	switch {
	case res.LastFailoverMode == string(workflows.ModePlanned) && m == 0:
		fmt.Fprintln(w, "    the last failover was planned: nothing was lost, nothing diverged")
	case res.LastFailoverMode == string(workflows.ModePlanned):
		fmt.Fprintln(w, "    the last failover was planned: its report has no ledger to compare with")
	case res.LastFailoverMode == "" && m == 0:
	case res.LastFailoverMode == "":
		fmt.Fprintln(w, "    (the last failover's report is no longer in Temporal: no ledger to compare with)")
	case n == m:
		fmt.Fprintf(w, "    the failover's ledger (%s) saw all %s: none written after the last contact\n",
			res.LastFailoverMode, plural(int(m), "write"))
	case n < m:
		fmt.Fprintf(w, "    the failover's ledger (%s) saw %d of %d; %d written after the last contact%s\n",
			res.LastFailoverMode, n, m, m-n, estimated(res.LedgerUnseenEstimate))
	default:
		fmt.Fprintf(w, "    the failover's ledger (%s) counted %d, %d more than recovered\n", res.LastFailoverMode, n, n-m)
	}
}

// estimated is the ledger's own estimate of the writes after the last
// contact, if it made one.
func estimated(e uint64) string {
	if e == 0 {
		return ""
	}
	return fmt.Sprintf(" (its estimate was ~%d)", e)
}

// perPartition lists the partitions with recovered writes, most first, up
// to reprotectRows, then a count.
func perPartition(w io.Writer, counts []int) {
	var ps []int
	for p, n := range counts {
		if n > 0 {
			ps = append(ps, p)
		}
	}
	sort.SliceStable(ps, func(a, b int) bool { return counts[ps[a]] > counts[ps[b]] })
	for _, p := range ps[:min(len(ps), reprotectRows)] {
		fmt.Fprintf(w, "    partition %d: %s\n", p, plural(counts[p], "write"))
	}
	if len(ps) > reprotectRows {
		more := strings.Replace(plural(len(ps)-reprotectRows, "partition"), " ", " more ", 1)
		fmt.Fprintf(w, "    ... and %s\n", more)
	}
}

// ranges writes sorted partitions compactly: "0-3, 7, 9-10".
func ranges(ps []int) string {
	s := append([]int(nil), ps...)
	sort.Ints(s)
	var parts []string
	for i := 0; i < len(s); {
		j := i
		for j+1 < len(s) && s[j+1] == s[j]+1 {
			j++
		}
		if j == i {
			parts = append(parts, fmt.Sprint(s[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", s[i], s[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// bytesOf writes a byte count for people: "512 bytes", "1.5 MiB".
func bytesOf(n int64) string {
	const unit = 1024
	if n < unit {
		return plural(int(n), "byte")
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
