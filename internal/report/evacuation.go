package report

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/workflows"
)

// Evacuation writes a stamp evacuation's report: the summary (outcome,
// accounts moved and left, by outcome and by tier, the data-loss ledgers
// summed for an unplanned one, the approval, pauses, changes of limits,
// runs, times, the slowest accounts, the longest write-unavailability
// window), then the per-account table. The table lists every account when
// there are at most maxRows (or maxRows <= 0); past that, only the
// accounts left on the stamp (at most maxRows of them) and a count of the
// rest. Only what is known is printed: an evacuation rejected at its gate
// has a headline and the decision.
func Evacuation(w io.Writer, res workflows.EvacuationResult, maxRows int) {
	t := &res.Table
	moved := movedRows(t)
	fmt.Fprintln(w, evacuationHeadline(res, countTrue(moved)))
	if res.Reason != "" || res.RequestedBy != "" {
		fmt.Fprintf(w, "  reason: %q, requested by %q (trigger %s)\n", res.Reason, res.RequestedBy, res.Trigger)
	}
	evacuationDecisions(w, res)
	for _, r := range res.Refusals {
		fmt.Fprintf(w, "  refused: %s\n", r)
	}
	if res.AlertsSeen > 0 {
		fmt.Fprintf(w, "  alerts: %s recorded\n", plural(res.AlertsSeen, "alert"))
	}
	if t.Len() > 0 || res.NotStarted > 0 {
		if by := byOutcome(res.ByOutcome, t); by != "" {
			fmt.Fprintf(w, "  by outcome: %s\n", by)
		}
		if res.NotStarted > 0 {
			fmt.Fprintf(w, "  never started: %s (the evacuation was aborted first)\n", plural(res.NotStarted, "account"))
		}
		if by := byTier(res.Tiers); by != "" {
			fmt.Fprintf(w, "  by tier: %s\n", by)
		}
	}
	if res.Mode == workflows.ModeUnplanned && t.Len() > 0 {
		fmt.Fprintf(w, "  data loss, summed over the accounts' ledgers: %s known lost + ~%d estimated after the last contact\n",
			plural(int(res.LostOps), "op"), res.UnseenOpsEstimate)
		if res.StoreShardsLost > 0 {
			fmt.Fprintf(w, "  and %s of PostgreSQL accounts lost what their old primaries acknowledged after the fork: "+
				"counted when they rejoin (pgrejoin)\n", plural(res.StoreShardsLost, "given-up shard"))
		}
	}
	admission := fmt.Sprintf("at most %d in flight", res.MaxInFlight)
	if res.PerDestination > 0 {
		admission += fmt.Sprintf(", %d per destination", res.PerDestination)
	}
	if res.Attempts > 0 {
		admission += fmt.Sprintf(", %s per account", plural(res.Attempts, "attempt"))
	}
	if res.MaxInFlight > 0 {
		fmt.Fprintf(w, "  admission: %s\n", admission)
	}
	for _, c := range res.Changes {
		fmt.Fprintf(w, "    %s\n", c)
	}
	if res.Runs > 1 {
		fmt.Fprintf(w, "  runs: %d (it continued as new %s, to keep each history bounded)\n",
			res.Runs, plural(res.Runs-1, "time"))
	}
	if res.TotalMillis > 0 {
		parts := ""
		if res.Partitions > 0 {
			parts = fmt.Sprintf(" (%s in the accounts it went through)", plural(res.Partitions, "partition"))
		}
		fmt.Fprintf(w, "  total time: %s%s\n", FormatDuration(ms(res.TotalMillis)), parts)
	}
	if len(res.Slowest) > 0 {
		var s []string
		for _, a := range res.Slowest {
			s = append(s, fmt.Sprintf("%s (%s) %s", a.Account, tierLabel(a.Tier), FormatDuration(ms(a.Millis))))
		}
		fmt.Fprintf(w, "  slowest accounts: %s\n", strings.Join(s, ", "))
	}
	if i := longestWindow(t); i >= 0 {
		fmt.Fprintf(w, "  longest write-unavailability window: %s (%s, fence to promote)\n",
			FormatDuration(ms(t.UnavailableMillis[i])), t.Account[i])
	}
	evacuationTable(w, res, moved, maxRows)
}

// evacuationHeadline is the report's first line: what, its outcome, and
// how many accounts moved and were left.
func evacuationHeadline(res workflows.EvacuationResult, moved int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s evacuation of %s: %s", res.Mode, res.Stamp, res.Outcome)
	went := res.Table.Len() + res.NotStarted
	switch {
	case went > 0:
		fmt.Fprintf(&b, ": %d of %s moved, %d left on %s", moved, plural(went, "account"), went-moved, res.Stamp)
	case res.Outcome == workflows.OutcomeCompleted:
		fmt.Fprintf(&b, ": no account had %s as its primary", res.Stamp)
	}
	if res.OnStamp > 0 && res.OnStamp != went {
		fmt.Fprintf(&b, " (%d on it at the start)", res.OnStamp)
	}
	return b.String()
}

// evacuationDecisions writes the approval (or that none was needed), the
// rejection, the abort and every pause and resume.
func evacuationDecisions(w io.Writer, res workflows.EvacuationResult) {
	switch {
	case res.Approval != nil && res.ApprovalRequired:
		fmt.Fprintf(w, "  approval (%s): approved by %s at %s: %s\n", res.ApprovalReason, res.Approval.By,
			res.Approval.At.Format(time.RFC3339), res.Approval.Reason)
	case res.Approval != nil:
		fmt.Fprintf(w, "  approval: given with the request by %s: %s\n", res.Approval.By, res.Approval.Reason)
	case res.ApprovalRequired && res.Rejection == nil:
		fmt.Fprintf(w, "  approval (%s): none given\n", res.ApprovalReason)
	case res.ApprovalRequired:
		fmt.Fprintf(w, "  approval (%s): rejected\n", res.ApprovalReason)
	case res.Outcome != "" && res.Outcome != workflows.OutcomeRefused:
		fmt.Fprintln(w, "  approval: not required (planned, started by hand)")
	}
	for _, d := range []struct {
		what string
		d    *workflows.Decision
	}{{"rejected", res.Rejection}, {"aborted", res.Abort}} {
		if d.d != nil {
			fmt.Fprintf(w, "  %s by %s at %s: %s\n", d.what, d.d.By, d.d.At.Format(time.RFC3339), d.d.Reason)
		}
	}
	// Pauses and resumes alternate: a pause is refused while paused, a
	// resume while not.
	for i, d := range res.Pauses {
		what := "paused"
		if i%2 == 1 {
			what = "resumed"
		}
		fmt.Fprintf(w, "  %s by %s at %s: %s\n", what, d.By, d.At.Format(time.RFC3339), d.Reason)
	}
}

// byOutcome is "completed 47, rolled-back 2", from the result's counts or,
// if it has none (a report taken mid-run), from the table.
func byOutcome(counts []workflows.OutcomeCount, t *workflows.EvacuationTable) string {
	if len(counts) == 0 {
		seen := map[workflows.Outcome]int{}
		var order []workflows.Outcome
		for _, o := range t.Outcome {
			if seen[o] == 0 {
				order = append(order, o)
			}
			seen[o]++
		}
		for _, o := range order {
			counts = append(counts, workflows.OutcomeCount{Outcome: o, Accounts: seen[o]})
		}
	}
	var s []string
	for _, c := range counts {
		s = append(s, fmt.Sprintf("%s %d", c.Outcome, c.Accounts))
	}
	return strings.Join(s, ", ")
}

// byTier is "tier 0: 10 moved; tier 1: 9 moved, 1 left; no tier: 3
// moved".
// Count is a number and what it counts, e.g. {3, "moved"}.
type Count struct {
	N    int
	What string
}

// Counts names the non-zero counts in order, e.g. ["3 moved", "1 left"].
func Counts(cs ...Count) []string {
	var out []string
	for _, c := range cs {
		if c.N > 0 {
			out = append(out, fmt.Sprintf("%d %s", c.N, c.What))
		}
	}
	return out
}

func byTier(tiers []workflows.TierCount) string {
	var s []string
	for _, c := range tiers {
		n := Counts(Count{N: c.Done, What: "moved"}, Count{N: c.Failed, What: "left"}, Count{N: c.Running, What: "running"},
			Count{N: c.Waiting, What: "waiting to retry"})
		if len(n) > 0 {
			s = append(s, tierLabel(c.Tier)+": "+strings.Join(n, ", "))
		}
	}
	return strings.Join(s, "; ")
}

// tierLabel is "tier 2", or "no tier".
func tierLabel(t int) string {
	if t >= activities.NoTier {
		return "no tier"
	}
	return "tier " + strconv.Itoa(t)
}

// movedRows are the rows of the accounts no longer on the stamp.
func movedRows(t *workflows.EvacuationTable) []bool {
	out := make([]bool, t.Len())
	for i, o := range t.Outcome {
		out[i] = o == workflows.OutcomeCompleted || o == workflows.OutcomeMoved
	}
	return out
}

// longestWindow is the row with the longest write-unavailability window
// (-1: none had one).
func longestWindow(t *workflows.EvacuationTable) int {
	best := -1
	for i, v := range t.UnavailableMillis {
		if v > 0 && (best < 0 || v > t.UnavailableMillis[best]) {
			best = i
		}
	}
	return best
}

// tableRows picks the rows of the per-account table: every account (all)
// if maxRows allows, else at most maxRows of those left on the stamp; and
// how many were left.
func tableRows(moved []bool, maxRows int) (rows []int, left int, all bool) {
	n := len(moved)
	for i := range n {
		if !moved[i] {
			left++
		}
	}
	all = maxRows <= 0 || n <= maxRows
	rows = make([]int, 0, min(n, max(maxRows, 0)))
	for i := range n {
		if all || !moved[i] && len(rows) < maxRows {
			rows = append(rows, i)
		}
	}
	return rows, left, all
}

// evacuationTable writes the per-account table, in the order the accounts
// ended: all of them, or, past maxRows, the ones left on the stamp (at
// most maxRows) and a count of the rest.
func evacuationTable(w io.Writer, res workflows.EvacuationResult, moved []bool, maxRows int) {
	t := &res.Table
	n := t.Len()
	if n == 0 {
		return
	}
	rows, left, all := tableRows(moved, maxRows)
	switch {
	case all:
		fmt.Fprintf(w, "  %s, in the order they ended:\n", plural(n, "account"))
	case left == 0:
		fmt.Fprintf(w, "  all %d accounts moved; --rows 0 lists them\n", n)
		return
	case len(rows) < left:
		fmt.Fprintf(w, "  the first %d of the %d accounts left on %s (--rows 0 lists every account):\n",
			len(rows), left, res.Stamp)
	default:
		fmt.Fprintf(w, "  the %s left on %s (--rows 0 lists every account):\n", plural(left, "account"), res.Stamp)
	}
	unplanned := res.Mode == workflows.ModeUnplanned
	attached := map[int]bool{}
	for _, r := range t.Attached {
		attached[r] = true
	}
	var buf bytes.Buffer
	tw := tabwriter.NewWriter(&buf, 0, 0, 2, ' ', 0)
	header := []string{"account", "tier", "partitions", "to", "outcome", "attempts", "started after", "took",
		"unavailable"}
	if unplanned {
		header = append(header, "lost ops")
	}
	header = append(header, "attached", "error")
	fmt.Fprintln(tw, "    "+strings.Join(header, "\t"))
	for _, i := range rows {
		tier := "-"
		if t.Tier[i] < activities.NoTier {
			tier = strconv.Itoa(t.Tier[i])
		}
		cols := []string{t.Account[i], tier, strconv.Itoa(t.Partitions[i]), t.To[i], string(t.Outcome[i]),
			strconv.Itoa(t.Attempts[i]), millisCell(at(t.StartedAfterMillis, i)), millisCell(at(t.Millis, i)),
			millisCell(at(t.UnavailableMillis, i))}
		if unplanned {
			cols = append(cols, strconv.FormatUint(atU(t.LostOps, i), 10))
		}
		yes := ""
		if attached[i] {
			yes = "yes"
		}
		cols = append(cols, yes, oneLineText(t.ErrorOf(i)))
		fmt.Fprintln(tw, "    "+strings.Join(cols, "\t"))
	}
	_ = tw.Flush()
	// The last cells are often empty: no padding at the ends of lines.
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		if l != "" {
			fmt.Fprintln(w, strings.TrimRight(l, " \n"))
		}
	}
	if rest := n - len(rows); rest > 0 {
		var s []string
		if notListed := left - countLeft(rows, moved); notListed > 0 {
			s = append(s, fmt.Sprintf("%d more left on %s", notListed, res.Stamp))
		}
		if m := n - left; m > 0 {
			s = append(s, fmt.Sprintf("%d moved", m))
		}
		fmt.Fprintf(w, "    ... and %s, not listed\n", strings.Join(s, " and "))
	}
	fmt.Fprintln(w, "  (started after: from the evacuation's start, its last attempt; unavailable: fence to promote)")
}

// countTrue counts the true values.
func countTrue(v []bool) int {
	n := 0
	for _, b := range v {
		if b {
			n++
		}
	}
	return n
}

// countLeft counts the rows listed that were left on the stamp.
func countLeft(rows []int, moved []bool) int {
	n := 0
	for _, r := range rows {
		if !moved[r] {
			n++
		}
	}
	return n
}

// millisCell is a table cell of milliseconds: "-" for none.
func millisCell(v int64) string {
	if v <= 0 {
		return "-"
	}
	return FormatDuration(ms(v))
}

// at and atU read a column that may be short (a hand-made table).
func at(col []int64, i int) int64 {
	if i < len(col) {
		return col[i]
	}
	return 0
}

func atU(col []uint64, i int) uint64 {
	if i < len(col) {
		return col[i]
	}
	return 0
}

// oneLineText keeps a table cell on its line.
func oneLineText(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
