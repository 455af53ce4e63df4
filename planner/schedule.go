package planner

import (
	"fmt"
	"sort"
	"time"
)

// Slot is one step of a schedule, as offsets from the failover's start.
type Slot struct {
	Step  Step
	Start time.Duration
	End   time.Duration
}

// Schedule is a simulated (or, for the workflow's report, executed)
// failover: every step with its start and end.
type Schedule struct {
	Strategy    Strategy
	Concurrency Concurrency
	// Slots in start order (ties in the order Ready gave them).
	Slots []Slot
	// Makespan is the end of the last step.
	Makespan time.Duration
}

// Simulate runs the graph's rules over expected durations exactly as the
// AppFailover workflow runs them over real steps: ask Ready, start what it
// returns, advance to the next end, report every step ending at that
// instant, ask again.
func (g *Graph) Simulate() (Schedule, error) {
	sch := Schedule{Strategy: g.strategy, Concurrency: g.limits}
	st := g.NewState()
	type run struct {
		s   Step
		end time.Duration
	}
	var (
		running []run
		now     time.Duration
	)
	for {
		for _, s := range g.Ready(st) {
			if err := st.Start(s); err != nil {
				return sch, fmt.Errorf("simulate: %w", err)
			}
			end := now + g.Expected(s)
			running = append(running, run{s, end})
			sch.Slots = append(sch.Slots, Slot{s, now, end})
		}
		if len(running) == 0 {
			break
		}
		now = running[0].end
		for _, r := range running[1:] {
			now = min(now, r.end)
		}
		keep := running[:0]
		for _, r := range running {
			if r.end != now {
				keep = append(keep, r)
				continue
			}
			if err := st.Finish(r.s, true); err != nil {
				return sch, fmt.Errorf("simulate: %w", err)
			}
		}
		running = keep
	}
	if !g.Complete(st) {
		return sch, fmt.Errorf("simulate: no step can start and %d of %d steps did not run: the rules deadlock (a bug)",
			len(g.order)-len(sch.Slots), len(g.order))
	}
	sch.Makespan = now
	return sch, nil
}

// Prediction is what the planner predicts for a plan.
type Prediction struct {
	// Schedule under the plan's own strategy and limits.
	Schedule Schedule
	// CriticalPath is the longest chain of steps the rules impose, by
	// expected durations; with no concurrency limit the overlap strategy
	// takes exactly CriticalPathTime.
	CriticalPath     []Step
	CriticalPathTime time.Duration
	// Makespans of the same plan, under the same limits, per strategy.
	Overlap    time.Duration
	Sequential time.Duration
	Barrier    time.Duration
}

// Predict simulates the plan under its own strategy and under the three
// strategies, and computes the critical path.
func (g *Graph) Predict() (Prediction, error) {
	var p Prediction
	var err error
	if p.Schedule, err = g.Simulate(); err != nil {
		return p, err
	}
	for _, s := range Strategies {
		sch, err := g.With(s, g.limits).Simulate()
		if err != nil {
			return p, fmt.Errorf("%s: %w", s, err)
		}
		switch s {
		case StrategyOverlap:
			p.Overlap = sch.Makespan
		case StrategySequential:
			p.Sequential = sch.Makespan
		case StrategyBarrier:
			p.Barrier = sch.Makespan
		}
	}
	p.CriticalPath, p.CriticalPathTime = g.CriticalPath()
	return p, nil
}

// CriticalPath is the longest chain of steps through the rules' step graph
// by expected durations, and its length: the fastest any schedule can be.
// Ties go to the higher-priority step, then to names.
func (g *Graph) CriticalPath() ([]Step, time.Duration) {
	start, end := map[Step]time.Duration{}, map[Step]time.Duration{}
	for _, s := range g.topo {
		var es time.Duration
		for _, p := range g.predecessors(s) {
			es = max(es, end[p])
		}
		start[s], end[s] = es, es+g.Expected(s)
	}
	var last Step
	var length time.Duration
	for i, s := range g.order {
		if i == 0 || end[s] > length {
			last, length = s, end[s]
		}
	}
	path := []Step{last}
	for cur := last; ; {
		var prev *Step
		for _, p := range g.predecessors(cur) {
			if end[p] == start[cur] {
				p := p
				prev = &p
				break
			}
		}
		if prev == nil {
			break
		}
		path = append(path, *prev)
		cur = *prev
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path, length
}

// SortSlots orders slots by start, then end, then step, for reports built
// from recorded events.
func SortSlots(ss []Slot) {
	sort.SliceStable(ss, func(i, j int) bool {
		a, b := ss[i], ss[j]
		if a.Start != b.Start {
			return a.Start < b.Start
		}
		if a.End != b.End {
			return a.End < b.End
		}
		return less(a.Step, b.Step)
	})
}

// CheckSchedule verifies that an executed (or simulated) schedule obeys the
// graph's rules: every offline and online step ran exactly once, none
// started before its predecessors ended (nor before the barriers of the
// baseline strategies), and no site ran more steps at once than its limit.
// Zero-length steps take no slot time and are left out of the concurrency
// count.
func (g *Graph) CheckSchedule(slots []Slot) error {
	at := map[Step]Slot{}
	for _, sl := range slots {
		if sl.Step.Phase == PhaseRestore {
			continue
		}
		if _, dup := at[sl.Step]; dup {
			return fmt.Errorf("%s ran twice", sl.Step)
		}
		if sl.End < sl.Start {
			return fmt.Errorf("%s ends (%s) before it starts (%s)", sl.Step, sl.End, sl.Start)
		}
		at[sl.Step] = sl
	}
	for _, s := range g.order {
		if _, ok := at[s]; !ok {
			return fmt.Errorf("%s never ran", s)
		}
	}
	for _, s := range g.order {
		for _, p := range g.predecessors(s) {
			if at[s].Start < at[p].End {
				return fmt.Errorf("rule broken: %s started at %s, before %s ended at %s", s, at[s].Start, p, at[p].End)
			}
		}
		if g.strategy == StrategyOverlap {
			continue
		}
		i := g.index[s.Component]
		for j, n := range g.names {
			off, on := Step{n, PhaseOffline}, Step{n, PhaseOnline}
			barrier := g.strategy == StrategyBarrier
			switch {
			case s.Phase == PhaseOnline && at[s].Start < at[off].End:
				return fmt.Errorf("%s barrier broken: %s started at %s, before %s ended at %s",
					g.strategy, s, at[s].Start, off, at[off].End)
			case barrier && s.Phase == PhaseOffline && g.offLevel[j] < g.offLevel[i] && at[s].Start < at[off].End:
				return fmt.Errorf("barrier broken: %s (group %d) started at %s, before %s (group %d) ended at %s",
					s, g.offLevel[i], at[s].Start, off, g.offLevel[j], at[off].End)
			case barrier && s.Phase == PhaseOnline && g.onLevel[j] < g.onLevel[i] && at[s].Start < at[on].End:
				return fmt.Errorf("barrier broken: %s (group %d) started at %s, before %s (group %d) ended at %s",
					s, g.onLevel[i], at[s].Start, on, g.onLevel[j], at[on].End)
			}
		}
	}
	limit := map[string]int{"source": g.limits.Source, "target": g.limits.Target}
	if g.strategy == StrategySequential {
		limit = map[string]int{"source": 1, "target": 1}
	}
	for _, a := range slots {
		if a.End == a.Start {
			continue
		}
		busy := map[string]int{}
		for _, b := range slots {
			if b.End > b.Start && b.Start <= a.Start && a.Start < b.End {
				busy[b.Step.Phase.Site()]++
			}
		}
		for _, site := range []string{"source", "target"} {
			if limit[site] > 0 && busy[site] > limit[site] {
				return fmt.Errorf("%d steps ran at once on the %s at %s (limit %d)",
					busy[site], site, a.Start, limit[site])
			}
		}
		if g.strategy == StrategySequential && busy["source"]+busy["target"] > 1 {
			return fmt.Errorf("sequential: %d steps ran at once at %s", busy["source"]+busy["target"], a.Start)
		}
	}
	return nil
}
