package planner

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// Problem is one thing wrong with a plan.
type Problem struct {
	// Components involved, sorted (empty for plan-level problems).
	Components []string
	// Message says what is wrong and, where it helps, what to do.
	Message string
}

// ValidationError lists everything wrong with a plan, in a stable order.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid plan: " + e.Problems[0].Message
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid plan: %d problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  - ")
		b.WriteString(p.Message)
	}
	return b.String()
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// MaxRetries bounds an action's retries.
const MaxRetries = 100

// Validate checks a plan: names, dependencies (unknown, repeated, cycles),
// actions (missing, ambiguous, malformed) and limits. It returns nil or a
// *ValidationError naming the components involved in every problem.
func Validate(p Plan) error {
	var v validator
	v.plan(p)
	if len(v.problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: v.problems}
}

type validator struct{ problems []Problem }

func (v *validator) add(components []string, format string, args ...any) {
	cs := append([]string(nil), components...)
	sort.Strings(cs)
	v.problems = append(v.problems, Problem{Components: cs, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) plan(p Plan) {
	switch {
	case p.Name == "":
		v.add(nil, "the plan has no name: give it one (name: my-app); the failover's workflow ID derives from it")
	case !nameRE.MatchString(p.Name):
		v.add(nil, "plan name %q: use letters, digits, '.', '_' and '-' (starting with a letter or digit)", p.Name)
	}
	if p.Concurrency.Source < 0 || p.Concurrency.Target < 0 {
		v.add(nil, "concurrency source %d, target %d: a limit is a positive number of steps, or 0 for no limit",
			p.Concurrency.Source, p.Concurrency.Target)
	}
	switch p.Strategy {
	case "", StrategyOverlap, StrategySequential, StrategyBarrier:
	default:
		v.add(nil, "strategy %q: use overlap (the default), sequential or barrier", p.Strategy)
	}
	if len(p.Components) == 0 {
		v.add(nil, "the plan has no components: list them under components:")
		return
	}

	count := map[string]int{}
	for i, c := range p.Components {
		switch {
		case c.Name == "":
			v.add(nil, "component #%d has no name", i+1)
		case !nameRE.MatchString(c.Name):
			v.add([]string{c.Name},
				"component name %q: use letters, digits, '.', '_' and '-' (starting with a letter or digit)", c.Name)
		}
		count[c.Name]++
	}
	for _, name := range sortedKeys(count) {
		if name != "" && count[name] > 1 {
			v.add([]string{name}, "component %s is defined %d times: names must be unique", name, count[name])
		}
	}

	accounts := map[string][]string{}
	for _, c := range p.Components {
		seen := map[string]bool{}
		for _, d := range c.DependsOn {
			switch {
			case seen[d]:
				v.add([]string{c.Name}, "component %s lists %s twice in depends_on", c.Name, d)
			case count[d] == 0:
				v.add([]string{c.Name, d},
					"component %s depends on %s, which is not in the plan: add it or fix the name", c.Name, d)
			}
			seen[d] = true
		}
		v.action(c.Name, "offline", c.Offline, true)
		v.action(c.Name, "online", c.Online, true)
		v.action(c.Name, "restore", c.Restore, false)
		if c.Online != nil && c.Online.Account != nil && c.Online.Account.Account != "" {
			accounts[c.Online.Account.Account] = append(accounts[c.Online.Account.Account], c.Name)
		}
	}
	for _, acct := range sortedKeys(accounts) {
		if cs := accounts[acct]; len(cs) > 1 {
			v.add(cs, "components %s all fail storage account %s over: an account fails over once per plan",
				strings.Join(cs, ", "), acct)
		}
	}
	for _, cycle := range findCycles(p.Components) {
		members := append([]string(nil), cycle[:len(cycle)-1]...)
		v.add(members, "dependency cycle: %s: a component cannot (indirectly) depend on itself",
			strings.Join(cycle, " -> "))
	}
}

func (v *validator) action(comp, step string, a *Action, required bool) {
	cs := []string{comp}
	if a == nil {
		if required {
			v.add(cs, "component %s has no %s action: "+
				"every component needs offline and online actions (a wait: 0s does nothing)", comp, step)
		}
		return
	}
	var set []string
	if len(a.Command) > 0 {
		set = append(set, "command")
	}
	if a.HTTP != nil {
		set = append(set, "http")
	}
	if a.Account != nil {
		set = append(set, "account")
	}
	if a.Wait != nil {
		set = append(set, "wait")
	}
	switch len(set) {
	case 0:
		v.add(cs, "component %s: the %s action does nothing: give it one of command, http, account or wait", comp, step)
	case 1:
	default:
		v.add(cs, "component %s: the %s action sets %s: give it exactly one", comp, step, strings.Join(set, " and "))
	}
	if a.Timeout < 0 || a.Expected < 0 {
		v.add(cs, "component %s: the %s action has a negative timeout or expected duration", comp, step)
	}
	if a.Retries < 0 || a.Retries > MaxRetries {
		v.add(cs, "component %s: the %s action's retries %d: use 0 to %d", comp, step, a.Retries, MaxRetries)
	}
	if len(a.Command) > 0 && strings.TrimSpace(a.Command[0]) == "" {
		v.add(cs, "component %s: the %s command has an empty program name", comp, step)
	}
	if a.Wait != nil && *a.Wait < 0 {
		v.add(cs, "component %s: the %s action waits a negative duration %s", comp, step, a.Wait)
	}
	if h := a.HTTP; h != nil {
		u, err := url.Parse(h.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add(cs, "component %s: the %s action's url %q is not an absolute http(s) URL", comp, step, h.URL)
		}
		switch h.MethodOrDefault() {
		case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		default:
			v.add(cs, "component %s: the %s action's method %q is not an HTTP method", comp, step, h.Method)
		}
		if s := h.ExpectStatusOrDefault(); s < 100 || s > 599 {
			v.add(cs, "component %s: the %s action's expect_status %d is not an HTTP status", comp, step, s)
		}
	}
	if ac := a.Account; ac != nil {
		if step != "online" {
			v.add(cs, "component %s: a storage-account failover belongs in the online step "+
				"(it brings the account online on the target), not in %s", comp, step)
		}
		if ac.Account == "" || ac.To == "" {
			v.add(cs, "component %s: the %s account action needs account and to (the stamp to fail over to)",
				comp, step)
		}
		if ac.From != "" && ac.From == ac.To {
			v.add(cs, "component %s: the %s account action fails %s over from %s to itself",
				comp, step, ac.Account, ac.To)
		}
	}
}

// Lint returns warnings about a valid plan: things that work but are
// probably not what the author meant.
func Lint(p Plan) []string {
	var out []string
	for _, c := range p.Components {
		if c.Restore == nil {
			out = append(out, fmt.Sprintf(
				"component %s has no restore action: an aborted failover leaves it offline on the source", c.Name))
		}
		for _, s := range []struct {
			step string
			a    *Action
		}{{"offline", c.Offline}, {"online", c.Online}} {
			if s.a != nil && s.a.Kind() != KindWait && s.a.Kind() != "" && s.a.Expected == 0 {
				out = append(out, fmt.Sprintf(
					"component %s: the %s action has no expected duration: predicted as 0s", c.Name, s.step))
			}
		}
	}
	return out
}

// findCycles returns one cycle per strongly connected component of the
// depends_on graph that has one (a -> b -> a), each starting and ending at
// its smallest name, in name order. Unknown dependencies are ignored.
func findCycles(cs []Component) [][]string {
	deps := map[string][]string{}
	for _, c := range cs {
		deps[c.Name] = append(deps[c.Name], c.DependsOn...)
	}
	names := sortedKeys(deps)
	for _, n := range names {
		ds := append([]string(nil), deps[n]...)
		sort.Strings(ds)
		deps[n] = ds
	}
	// Tarjan's strongly connected components.
	index, low := map[string]int{}, map[string]int{}
	onStack := map[string]bool{}
	var stack []string
	var sccs [][]string
	next := 0
	var strong func(n string)
	strong = func(n string) {
		index[n], low[n] = next, next
		next++
		stack = append(stack, n)
		onStack[n] = true
		for _, d := range deps[n] {
			if _, known := deps[d]; !known {
				continue
			}
			if _, seen := index[d]; !seen {
				strong(d)
				low[n] = min(low[n], low[d])
			} else if onStack[d] {
				low[n] = min(low[n], index[d])
			}
		}
		if low[n] == index[n] {
			var scc []string
			for {
				top := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				onStack[top] = false
				scc = append(scc, top)
				if top == n {
					break
				}
			}
			sccs = append(sccs, scc)
		}
	}
	for _, n := range names {
		if _, seen := index[n]; !seen {
			strong(n)
		}
	}
	var cycles [][]string
	for _, scc := range sccs {
		in := map[string]bool{}
		for _, n := range scc {
			in[n] = true
		}
		sort.Strings(scc)
		start := scc[0]
		if len(scc) == 1 && !contains(deps[start], start) {
			continue
		}
		cycles = append(cycles, cyclePath(start, deps, in))
	}
	sort.Slice(cycles, func(i, j int) bool { return cycles[i][0] < cycles[j][0] })
	return cycles
}

// cyclePath finds a path start -> ... -> start inside one strongly
// connected component (depth first, smallest names first).
func cyclePath(start string, deps map[string][]string, in map[string]bool) []string {
	visited := map[string]bool{}
	var path []string
	var dfs func(n string) bool
	dfs = func(n string) bool {
		path = append(path, n)
		for _, d := range deps[n] {
			if d == start {
				path = append(path, start)
				return true
			}
			if in[d] && !visited[d] {
				visited[d] = true
				if dfs(d) {
					return true
				}
			}
		}
		path = path[:len(path)-1]
		return false
	}
	visited[start] = true
	dfs(start)
	return path
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	// The keys are sorted below, so the map's order never shows.
	//workflowcheck:ignore
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
