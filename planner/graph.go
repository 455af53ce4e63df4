package planner

import (
	"fmt"
	"sort"
	"time"
)

// Phase is what a step does to its component.
type Phase string

// Phases of a step.
const (
	// PhaseOffline takes the component offline on the source.
	PhaseOffline Phase = "offline"
	// PhaseOnline brings the component online on the target.
	PhaseOnline Phase = "online"
	// PhaseRestore brings the component back online on the source after an
	// abort.
	PhaseRestore Phase = "restore"
)

// Site is where a step runs.
func (p Phase) Site() string {
	if p == PhaseOnline {
		return "target"
	}
	return "source"
}

// Step is one phase of one component.
type Step struct {
	Component string
	Phase     Phase
}

func (s Step) String() string { return string(s.Phase) + " " + s.Component }

// Status of a step.
type Status uint8

// Step statuses.
const (
	Pending Status = iota
	Running
	Done
	Failed
)

func (s Status) String() string {
	switch s {
	case Pending:
		return "pending"
	case Running:
		return "running"
	case Done:
		return "done"
	case Failed:
		return "failed"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Graph is a validated plan, compiled for scheduling: components indexed in
// name order, both directions of every dependency, the barrier levels and
// the priority order of the steps. It is immutable; State holds progress.
type Graph struct {
	plan     Plan
	strategy Strategy
	limits   Concurrency

	names      []string // sorted
	index      map[string]int
	comp       []Component // by index
	deps       [][]int     // deps[i]: components i depends on, in name order
	dependents [][]int     // dependents[i]: components that depend on i
	// offLevel: 0 for components nothing depends on, else 1 + the highest
	// level of a dependent. onLevel: 0 without dependencies, else 1 + the
	// highest level of a dependency. Barrier groups run level by level.
	offLevel, onLevel []int
	// tail[s] is the longest expected path from the start of step s to the
	// end of the failover (the step's own duration included).
	tail map[Step]time.Duration
	// order is every offline and online step, highest priority first:
	// longest tail, then component name, then offline before online.
	order []Step
	// topo is the offline and online steps in a topological order.
	topo []Step
}

// Compile validates p and builds its Graph.
func Compile(p Plan) (*Graph, error) {
	if err := Validate(p); err != nil {
		return nil, err
	}
	g := &Graph{
		plan:     p,
		strategy: p.Strategy,
		limits:   p.Concurrency,
		index:    map[string]int{},
	}
	if g.strategy == "" {
		g.strategy = StrategyOverlap
	}
	for _, c := range p.Components {
		g.names = append(g.names, c.Name)
	}
	sort.Strings(g.names)
	for i, n := range g.names {
		g.index[n] = i
	}
	n := len(g.names)
	g.comp = make([]Component, n)
	g.deps, g.dependents = make([][]int, n), make([][]int, n)
	for _, c := range p.Components {
		g.comp[g.index[c.Name]] = c
	}
	for i, c := range g.comp {
		for _, d := range c.DependsOn {
			j := g.index[d]
			g.deps[i] = append(g.deps[i], j)
			g.dependents[j] = append(g.dependents[j], i)
		}
	}
	for i := range g.deps {
		sort.Ints(g.deps[i])
		sort.Ints(g.dependents[i])
	}
	g.topo = g.topoSteps()
	g.levels()
	g.priorities()
	return g, nil
}

// Plan is the compiled plan.
func (g *Graph) Plan() Plan { return g.plan }

// Strategy is the graph's strategy (never "").
func (g *Graph) Strategy() Strategy { return g.strategy }

// Concurrency is the graph's per-site limits.
func (g *Graph) Concurrency() Concurrency { return g.limits }

// Names are the components in name order.
func (g *Graph) Names() []string { return append([]string(nil), g.names...) }

// Action is the action a step runs (nil for a restore the plan does not
// give).
func (g *Graph) Action(s Step) *Action {
	c := g.comp[g.index[s.Component]]
	switch s.Phase {
	case PhaseOffline:
		return c.Offline
	case PhaseOnline:
		return c.Online
	}
	return c.Restore
}

// Expected is the expected duration of a step.
func (g *Graph) Expected(s Step) time.Duration { return g.Action(s).ExpectedOrDefault() }

// Steps are every offline and online step, highest priority first.
func (g *Graph) Steps() []Step { return append([]Step(nil), g.order...) }

// With returns a copy of the graph under another strategy and limits.
func (g *Graph) With(s Strategy, c Concurrency) *Graph {
	h := *g
	h.strategy, h.limits = s, c
	h.plan.Strategy, h.plan.Concurrency = s, c
	return &h
}

// predecessors of a step in the rules' step graph.
func (g *Graph) predecessors(s Step) []Step {
	i := g.index[s.Component]
	var out []Step
	switch s.Phase {
	case PhaseOffline: // every dependent offline first
		for _, j := range g.dependents[i] {
			out = append(out, Step{g.names[j], PhaseOffline})
		}
	case PhaseOnline: // itself offline, every dependency online
		out = append(out, Step{s.Component, PhaseOffline})
		for _, j := range g.deps[i] {
			out = append(out, Step{g.names[j], PhaseOnline})
		}
	}
	return out
}

// successors of a step in the rules' step graph.
func (g *Graph) successors(s Step) []Step {
	i := g.index[s.Component]
	var out []Step
	switch s.Phase {
	case PhaseOffline:
		out = append(out, Step{s.Component, PhaseOnline})
		for _, j := range g.deps[i] {
			out = append(out, Step{g.names[j], PhaseOffline})
		}
	case PhaseOnline:
		for _, j := range g.dependents[i] {
			out = append(out, Step{g.names[j], PhaseOnline})
		}
	}
	return out
}

// topoSteps orders the steps so that every step comes after its
// predecessors (Kahn; ready steps taken in name order).
func (g *Graph) topoSteps() []Step {
	indeg := map[Step]int{}
	var all []Step
	for _, n := range g.names {
		for _, ph := range []Phase{PhaseOffline, PhaseOnline} {
			s := Step{n, ph}
			all = append(all, s)
			indeg[s] = len(g.predecessors(s))
		}
	}
	var out, ready []Step
	for _, s := range all {
		if indeg[s] == 0 {
			ready = append(ready, s)
		}
	}
	for len(ready) > 0 {
		sort.Slice(ready, func(a, b int) bool { return less(ready[a], ready[b]) })
		s := ready[0]
		ready = ready[1:]
		out = append(out, s)
		for _, t := range g.successors(s) {
			if indeg[t]--; indeg[t] == 0 {
				ready = append(ready, t)
			}
		}
	}
	return out
}

func less(a, b Step) bool {
	if a.Component != b.Component {
		return a.Component < b.Component
	}
	return a.Phase == PhaseOffline && b.Phase != PhaseOffline
}

func (g *Graph) levels() {
	n := len(g.names)
	g.offLevel, g.onLevel = make([]int, n), make([]int, n)
	for _, s := range g.topo {
		i := g.index[s.Component]
		switch s.Phase {
		case PhaseOffline:
			for _, j := range g.dependents[i] {
				g.offLevel[i] = max(g.offLevel[i], g.offLevel[j]+1)
			}
		case PhaseOnline:
			for _, j := range g.deps[i] {
				g.onLevel[i] = max(g.onLevel[i], g.onLevel[j]+1)
			}
		}
	}
}

func (g *Graph) priorities() {
	g.tail = map[Step]time.Duration{}
	for k := len(g.topo) - 1; k >= 0; k-- {
		s := g.topo[k]
		var longest time.Duration
		for _, t := range g.successors(s) {
			longest = max(longest, g.tail[t])
		}
		g.tail[s] = g.Expected(s) + longest
	}
	g.order = append([]Step(nil), g.topo...)
	sort.SliceStable(g.order, func(a, b int) bool {
		sa, sb := g.order[a], g.order[b]
		if g.tail[sa] != g.tail[sb] {
			return g.tail[sa] > g.tail[sb]
		}
		return less(sa, sb)
	})
}

// State is the progress of one failover: the status of every step. The
// AppFailover workflow keeps one and so does Simulate.
type State struct {
	status  map[Step]Status
	running map[string]int // per site
}

// NewState is the state before anything ran.
func (g *Graph) NewState() *State {
	return &State{status: map[Step]Status{}, running: map[string]int{}}
}

// Status of a step.
func (st *State) Status(s Step) Status { return st.status[s] }

// Running is the number of steps running on a site ("source" or "target").
func (st *State) Running(site string) int { return st.running[site] }

// Start marks a pending step running.
func (st *State) Start(s Step) error {
	if cur := st.status[s]; cur != Pending {
		return fmt.Errorf("start %s: it is %s, not pending", s, cur)
	}
	st.status[s] = Running
	st.running[s.Phase.Site()]++
	return nil
}

// Finish marks a running step done (ok) or failed.
func (st *State) Finish(s Step, ok bool) error {
	if cur := st.status[s]; cur != Running {
		return fmt.Errorf("finish %s: it is %s, not running", s, cur)
	}
	st.status[s] = Failed
	if ok {
		st.status[s] = Done
	}
	st.running[s.Phase.Site()]--
	return nil
}

// Complete reports whether every offline and online step is done.
func (g *Graph) Complete(st *State) bool {
	for _, s := range g.order {
		if st.status[s] != Done {
			return false
		}
	}
	return true
}

// free is how many more steps may start on a site (-1: no limit).
func (g *Graph) free(st *State, site string) int {
	limit := g.limits.Source
	if site == "target" {
		limit = g.limits.Target
	}
	if g.strategy == StrategySequential {
		limit = 1
	}
	if limit == 0 {
		return -1
	}
	return max(0, limit-st.running[site])
}

// Ready returns the steps that may start now, in start order: those whose
// rules are met, under the graph's strategy, as many as the free slots of
// each site allow, highest priority first (longest expected remaining path,
// then name). The caller starts each (State.Start) and reports each end
// (State.Finish); steps that finish at the same instant should all be
// reported before Ready is asked again, as Simulate does.
func (g *Graph) Ready(st *State) []Step {
	if g.strategy == StrategySequential && st.running["source"]+st.running["target"] > 0 {
		return nil
	}
	free := map[string]int{"source": g.free(st, "source"), "target": g.free(st, "target")}
	var out []Step
	for _, s := range g.order {
		site := s.Phase.Site()
		if free[site] == 0 || st.status[s] != Pending || !g.allowed(s, st) {
			continue
		}
		out = append(out, s)
		if free[site] > 0 {
			free[site]--
		}
		if g.strategy == StrategySequential {
			break
		}
	}
	return out
}

// allowed applies the rules (and the baselines' extra barriers) to one
// pending step.
func (g *Graph) allowed(s Step, st *State) bool {
	for _, p := range g.predecessors(s) {
		if st.status[p] != Done {
			return false
		}
	}
	if g.strategy == StrategyOverlap {
		return true
	}
	i := g.index[s.Component]
	switch s.Phase {
	case PhaseOffline:
		if g.strategy == StrategyBarrier {
			for j, n := range g.names {
				if g.offLevel[j] < g.offLevel[i] && st.status[Step{n, PhaseOffline}] != Done {
					return false
				}
			}
		}
	case PhaseOnline:
		// Both baselines shut the whole source down first.
		for _, n := range g.names {
			if st.status[Step{n, PhaseOffline}] != Done {
				return false
			}
		}
		if g.strategy == StrategyBarrier {
			for j, n := range g.names {
				if g.onLevel[j] < g.onLevel[i] && st.status[Step{n, PhaseOnline}] != Done {
					return false
				}
			}
		}
	}
	return true
}

// ReadyRestore returns the restore steps that may start now, after an
// abort: restore(c) once c's offline step has ended (done or failed) and
// every component c depends on is online on the source again (never taken
// offline, or its restore ended: a failed restore does not hold the others
// back), within the source's free slots, in name order. It
// returns restores whether or not the plan gives a restore action (see
// Action); the caller records those it cannot run.
func (g *Graph) ReadyRestore(st *State) []Step {
	free := g.free(st, "source")
	var out []Step
	for i, n := range g.names {
		if free == 0 {
			break
		}
		s := Step{n, PhaseRestore}
		if st.status[s] != Pending {
			continue
		}
		if off := st.status[Step{n, PhaseOffline}]; off != Done && off != Failed {
			continue
		}
		ok := true
		for _, j := range g.deps[i] {
			dn := g.names[j]
			off, r := st.status[Step{dn, PhaseOffline}], st.status[Step{dn, PhaseRestore}]
			if off != Pending && r != Done && r != Failed {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		out = append(out, s)
		if free > 0 {
			free--
		}
	}
	return out
}
