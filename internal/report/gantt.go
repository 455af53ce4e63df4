package report

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/batonhq/baton/planner"
)

// bar is one row of a Gantt chart.
type bar struct {
	label      string
	phase      planner.Phase
	start, end time.Duration
}

// bars turns a schedule's slots (simulated, or recorded by a failover) into
// Gantt rows, in the slots' order.
func bars(slots []planner.Slot) []bar {
	out := make([]bar, len(slots))
	for i, sl := range slots {
		out[i] = bar{
			label: sl.Step.String(),
			phase: sl.Step.Phase,
			start: sl.Start,
			end:   sl.End,
		}
	}
	return out
}

// fills per phase: the source's steps and the target's look different.
var fills = map[planner.Phase]string{planner.PhaseOffline: "#", planner.PhaseOnline: "=", planner.PhaseRestore: "~"}

// gantt writes a text Gantt chart of bars scaled to width columns.
func gantt(w io.Writer, bars []bar, width int) {
	width = max(width, 10)
	var total time.Duration
	labelW := len("step")
	for _, b := range bars {
		total = max(total, b.end)
		labelW = max(labelW, len(b.label))
	}
	scale := func(d time.Duration) int {
		if total <= 0 {
			return 0
		}
		return int(int64(d) * int64(width) / int64(total))
	}
	axisEnd := FormatDuration(total)
	fmt.Fprintf(w, "%-*s %9s %9s  |0s%s%s|\n", labelW, "step", "start", "end",
		strings.Repeat(" ", max(1, width-2-len(axisEnd))), axisEnd)
	for _, b := range bars {
		from, to := scale(b.start), scale(b.end)
		row := []byte(strings.Repeat(" ", width))
		fill := fills[b.phase]
		if fill == "" {
			fill = "*"
		}
		switch {
		case b.end <= b.start:
			row[min(from, width-1)] = '|'
		default:
			if to == from {
				to = from + 1
			}
			if to > width {
				from, to = width-1, width
			}
			for i := from; i < to; i++ {
				row[i] = fill[0]
			}
		}
		fmt.Fprintf(w, "%-*s %9s %9s  |%s|\n",
			labelW, b.label, FormatDuration(b.start), FormatDuration(b.end), row)
	}
	fmt.Fprintf(w, "%*s  legend: # offline on the source, = online on the target, ~ restore on the source\n",
		labelW+21, "")
}

// FormatDuration prints a duration rounded for people: ms below a minute,
// seconds above.
func FormatDuration(d time.Duration) string {
	if d >= time.Minute {
		return d.Round(time.Second).String()
	}
	return d.Round(time.Millisecond).String()
}
