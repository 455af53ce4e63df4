// Package plantest builds plans for tests: the patent's own example and
// seeded random DAGs. It is used by the planner's tests and by the
// AppFailover workflow's tests, so both check the same graphs.
package plantest

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/batonhq/baton/planner"
)

// Wait is a component whose offline and online steps wait off and on.
func Wait(name string, off, on time.Duration, deps ...string) planner.Component {
	return planner.Component{
		Name:      name,
		DependsOn: deps,
		Offline:   &planner.Action{Wait: planner.DurPtr(off)},
		Online:    &planner.Action{Wait: planner.DurPtr(on)},
		Restore:   &planner.Action{Wait: planner.DurPtr(on)},
	}
}

// PatentExample is the example of US 8938639's claim: A depends on B and C,
// B and C are mutually independent, every step takes d.
func PatentExample(d time.Duration, limits planner.Concurrency) planner.Plan {
	return planner.Plan{
		Name:        "patent-example",
		Concurrency: limits,
		Components: []planner.Component{
			Wait("A", d, d, "B", "C"),
			Wait("B", d, d),
			Wait("C", d, d),
		},
	}
}

// RandomOptions shape RandomPlan.
type RandomOptions struct {
	// Components: between 1 and MaxComponents (default 12).
	MaxComponents int
	// EdgeChance is the chance that a component depends on each earlier
	// one (default 0.3).
	EdgeChance float64
	// Durations are drawn from 1..MaxUnits units (default 4, unit 1s), so
	// that many steps end at the same instant.
	MaxUnits int
	Unit     time.Duration
	// Limits: when set, the plan's limits are drawn from 0..MaxLimit per
	// site (0 = no limit).
	MaxLimit int
	// Strategies: when set, the strategy is drawn from them.
	Strategies []planner.Strategy
}

// RandomPlan is a random DAG plan of wait actions, the same for the same
// seed. Components are named in shuffled order so that names do not follow
// the topology.
func RandomPlan(seed uint64, o RandomOptions) planner.Plan {
	if o.MaxComponents <= 0 {
		o.MaxComponents = 12
	}
	if o.EdgeChance <= 0 {
		o.EdgeChance = 0.3
	}
	if o.MaxUnits <= 0 {
		o.MaxUnits = 4
	}
	if o.Unit <= 0 {
		o.Unit = time.Second
	}
	rng := rand.New(rand.NewPCG(seed, 0x6261746f6e))
	n := 1 + rng.IntN(o.MaxComponents)
	names := make([]string, n)
	for i, p := range rng.Perm(n) {
		names[i] = fmt.Sprintf("c%02d", p)
	}
	dur := func() time.Duration { return time.Duration(1+rng.IntN(o.MaxUnits)) * o.Unit }
	p := planner.Plan{Name: fmt.Sprintf("random-%d", seed)}
	for i := range n {
		var deps []string
		for j := range i {
			if rng.Float64() < o.EdgeChance {
				deps = append(deps, names[j])
			}
		}
		p.Components = append(p.Components, Wait(names[i], dur(), dur(), deps...))
	}
	rng.Shuffle(len(p.Components), func(i, j int) {
		p.Components[i], p.Components[j] = p.Components[j], p.Components[i]
	})
	if o.MaxLimit > 0 {
		p.Concurrency = planner.Concurrency{Source: rng.IntN(o.MaxLimit + 1), Target: rng.IntN(o.MaxLimit + 1)}
	}
	if len(o.Strategies) > 0 {
		p.Strategy = o.Strategies[rng.IntN(len(o.Strategies))]
	}
	return p
}
