package planner_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/planner"
	"github.com/batonhq/baton/planner/plantest"
)

const d = 10 * time.Second

func off(c string) planner.Step { return planner.Step{Component: c, Phase: planner.PhaseOffline} }
func on(c string) planner.Step  { return planner.Step{Component: c, Phase: planner.PhaseOnline} }
func rst(c string) planner.Step { return planner.Step{Component: c, Phase: planner.PhaseRestore} }

func compile(t *testing.T, p planner.Plan) *planner.Graph {
	t.Helper()
	g, err := planner.Compile(p)
	require.NoError(t, err)
	return g
}

// The claim of US 8938639, with one step at a time per site: A offline;
// then B offline; then C offline on the source while B comes online on the
// target; A online only after B and C are online.
func TestPatentExampleOneSlotPerSite(t *testing.T) {
	g := compile(t, plantest.PatentExample(d, planner.Concurrency{Source: 1, Target: 1}))
	sch, err := g.Simulate()
	require.NoError(t, err)
	require.Equal(t, []planner.Slot{
		{off("A"), 0, d},
		{off("B"), d, 2 * d},
		{off("C"), 2 * d, 3 * d},
		{on("B"), 2 * d, 3 * d},
		{on("C"), 3 * d, 4 * d},
		{on("A"), 4 * d, 5 * d},
	}, sch.Slots)
	require.Equal(t, 5*d, sch.Makespan)
	require.NoError(t, g.CheckSchedule(sch.Slots))

	pr, err := g.Predict()
	require.NoError(t, err)
	require.Equal(t, 5*d, pr.Overlap)
	require.Equal(t, 6*d, pr.Sequential)
	require.Equal(t, 6*d, pr.Barrier, "groups {A}, {B,C} offline then {B,C}, {A} online, one step at a time per site")
	require.Equal(t, 4*d, pr.CriticalPathTime)
}

// With no limit, B and C go offline together and the failover takes the
// critical path.
func TestPatentExampleUnlimited(t *testing.T) {
	g := compile(t, plantest.PatentExample(d, planner.Concurrency{}))
	sch, err := g.Simulate()
	require.NoError(t, err)
	require.Equal(t, []planner.Slot{
		{off("A"), 0, d},
		{off("B"), d, 2 * d},
		{off("C"), d, 2 * d},
		{on("B"), 2 * d, 3 * d},
		{on("C"), 2 * d, 3 * d},
		{on("A"), 3 * d, 4 * d},
	}, sch.Slots)
	path, length := g.CriticalPath()
	require.Equal(t, []planner.Step{off("A"), off("B"), on("B"), on("A")}, path)
	require.Equal(t, 4*d, length)
	require.Equal(t, length, sch.Makespan)

	pr, err := g.Predict()
	require.NoError(t, err)
	require.Equal(t, 6*d, pr.Sequential)
	require.Equal(t, 4*d, pr.Barrier)
}

// A slow database and a cache whose start-up is slow: the overlap strategy
// brings the cache up on the target while the database is still going down
// on the source; the barriers cannot.
func TestOverlapBeatsBarriers(t *testing.T) {
	s := time.Second
	p := planner.Plan{Name: "shop", Components: []planner.Component{
		plantest.Wait("web", s, s, "api", "cache"),
		plantest.Wait("api", s, s, "db"),
		plantest.Wait("db", 5*s, s),
		plantest.Wait("cache", s, 4*s),
	}}
	g := compile(t, p)
	pr, err := g.Predict()
	require.NoError(t, err)
	require.Equal(t, 10*s, pr.Overlap)
	require.Equal(t, 10*s, pr.CriticalPathTime)
	require.Equal(t, 15*s, pr.Sequential)
	require.Equal(t, 13*s, pr.Barrier)
	require.Equal(t, []planner.Step{off("web"), off("api"), off("db"), on("db"), on("api"), on("web")}, pr.CriticalPath)

	sch, err := g.With(planner.StrategyBarrier, planner.Concurrency{}).Simulate()
	require.NoError(t, err)
	require.NoError(t, g.With(planner.StrategyBarrier, planner.Concurrency{}).CheckSchedule(sch.Slots))
	require.Error(t, g.CheckSchedule(nil), "a schedule with nothing in it is refused")
}

func TestReadyFollowsTheRulesStepByStep(t *testing.T) {
	g := compile(t, plantest.PatentExample(d, planner.Concurrency{}))
	st := g.NewState()
	start := func(ss ...planner.Step) {
		for _, s := range ss {
			require.NoError(t, st.Start(s))
		}
	}
	finish := func(ss ...planner.Step) {
		for _, s := range ss {
			require.NoError(t, st.Finish(s, true))
		}
	}
	require.Equal(t, []planner.Step{off("A")}, g.Ready(st), "only A: B and C wait for their dependent")
	start(off("A"))
	require.Empty(t, g.Ready(st))
	finish(off("A"))
	require.Equal(t, []planner.Step{off("B"), off("C")}, g.Ready(st))
	start(off("B"), off("C"))
	finish(off("C"))
	require.Equal(t, []planner.Step{on("C")}, g.Ready(st), "C comes up on the target while B still goes down")
	start(on("C"))
	finish(on("C"))
	require.Empty(t, g.Ready(st), "A waits for B online")
	finish(off("B"))
	require.Equal(t, []planner.Step{on("B")}, g.Ready(st))
	start(on("B"))
	finish(on("B"))
	require.Equal(t, []planner.Step{on("A")}, g.Ready(st))
	start(on("A"))
	require.False(t, g.Complete(st))
	finish(on("A"))
	require.True(t, g.Complete(st))

	require.Error(t, st.Start(on("A")), "a done step cannot start again")
	require.Error(t, st.Finish(off("B"), true), "a done step cannot finish again")
}

// restoreComplete reports whether every component taken offline has been
// restored (or its restore attempted) and nothing runs. The workflow needs
// no such check (it waits until nothing runs), so it lives here.
func restoreComplete(g *planner.Graph, st *planner.State) bool {
	if st.Running("source")+st.Running("target") > 0 {
		return false
	}
	for _, n := range g.Names() {
		taken := st.Status(off(n))
		if (taken == planner.Done || taken == planner.Failed) && st.Status(rst(n)) == planner.Pending {
			return false
		}
	}
	return true
}

func TestReadyRestoreBringsDependenciesBackFirst(t *testing.T) {
	g := compile(t, plantest.PatentExample(d, planner.Concurrency{}))
	st := g.NewState()
	require.NoError(t, st.Start(off("A")))
	require.NoError(t, st.Finish(off("A"), true))
	require.NoError(t, st.Start(off("B")))
	require.NoError(t, st.Start(off("C")))
	require.NoError(t, st.Finish(off("B"), true))
	// Abort now: C is still going offline.
	require.Equal(t, []planner.Step{rst("B")}, g.ReadyRestore(st), "A needs B and C back first; C is still going down")
	require.NoError(t, st.Start(rst("B")))
	require.NoError(t, st.Finish(rst("B"), true))
	require.Empty(t, g.ReadyRestore(st))
	require.False(t, restoreComplete(g, st))
	require.NoError(t, st.Finish(off("C"), false)) // its offline failed: restore it anyway
	require.Equal(t, []planner.Step{rst("C")}, g.ReadyRestore(st))
	require.NoError(t, st.Start(rst("C")))
	require.NoError(t, st.Finish(rst("C"), false))
	require.Equal(t, []planner.Step{rst("A")}, g.ReadyRestore(st), "a failed restore does not hold the others back")
	require.NoError(t, st.Start(rst("A")))
	require.NoError(t, st.Finish(rst("A"), true))
	require.True(t, restoreComplete(g, st))
}

func TestReadyRespectsSiteLimits(t *testing.T) {
	p := planner.Plan{Name: "wide", Concurrency: planner.Concurrency{Source: 2, Target: 1}}
	for _, n := range []string{"e", "d", "c", "b", "a"} {
		p.Components = append(p.Components, plantest.Wait(n, d, d))
	}
	g := compile(t, p)
	st := g.NewState()
	require.Equal(t, []planner.Step{off("a"), off("b")}, g.Ready(st), "two source slots, ties by name")
	for _, s := range g.Ready(st) {
		require.NoError(t, st.Start(s))
	}
	require.Empty(t, g.Ready(st))
	require.NoError(t, st.Finish(off("a"), true))
	require.Equal(t, []planner.Step{off("c"), on("a")}, g.Ready(st))
}

func TestSequentialRunsOneStepAtATime(t *testing.T) {
	g := compile(t, plantest.PatentExample(d, planner.Concurrency{Source: 5, Target: 5})).
		With(planner.StrategySequential, planner.Concurrency{})
	sch, err := g.Simulate()
	require.NoError(t, err)
	var order []planner.Step
	for _, s := range sch.Slots {
		order = append(order, s.Step)
	}
	require.Equal(t, []planner.Step{off("A"), off("B"), off("C"), on("B"), on("C"), on("A")}, order)
	require.Equal(t, 6*d, sch.Makespan)
}

// Property tests over hundreds of seeded random DAGs, under random limits
// and strategies.
func TestSimulatedSchedulesObeyTheRules(t *testing.T) {
	for seed := range uint64(600) {
		p := plantest.RandomPlan(seed, plantest.RandomOptions{
			MaxComponents: 14,
			MaxLimit:      3,
			Strategies:    planner.Strategies,
		})
		g := compile(t, p)
		sch, err := g.Simulate()
		require.NoError(t, err, "seed %d", seed)
		require.NoError(t, g.CheckSchedule(sch.Slots), "seed %d", seed)
		pr, err := g.Predict()
		require.NoError(t, err)
		require.Equal(t, sch.Makespan, pr.Schedule.Makespan)

		var sum time.Duration
		for _, s := range g.Steps() {
			sum += g.Expected(s)
		}
		require.Equal(t, sum, pr.Sequential, "seed %d: sequential is the sum of the steps", seed)
		require.GreaterOrEqual(t, sch.Makespan, pr.CriticalPathTime, "seed %d", seed)
		require.LessOrEqual(t, pr.Overlap, pr.Sequential, "seed %d: the greedy schedule never idles", seed)
		require.LessOrEqual(t, pr.Barrier, pr.Sequential, "seed %d", seed)
		var onPath time.Duration
		for _, s := range pr.CriticalPath {
			onPath += g.Expected(s)
		}
		require.Equal(t, pr.CriticalPathTime, onPath, "seed %d: the path's steps add up to its length", seed)

		// With no limit the overlap strategy takes exactly the critical
		// path and never loses to the barriers.
		free := g.With(planner.StrategyOverlap, planner.Concurrency{})
		fp, err := free.Predict()
		require.NoError(t, err)
		require.Equal(t, fp.CriticalPathTime, fp.Overlap, "seed %d", seed)
		require.LessOrEqual(t, fp.Overlap, fp.Barrier, "seed %d", seed)

		// The order of components in the file changes nothing.
		q := p
		q.Components = append([]planner.Component(nil), p.Components...)
		rand.New(rand.NewPCG(seed, 1)).Shuffle(len(q.Components), func(i, j int) {
			q.Components[i], q.Components[j] = q.Components[j], q.Components[i]
		})
		sch2, err := compile(t, q).Simulate()
		require.NoError(t, err)
		require.Equal(t, sch, sch2, "seed %d", seed)
	}
}

// With no limit, the order in which simultaneous ends are reported does not
// matter: any event order reaches the critical path.
func TestUnlimitedOverlapIsOrderIndependent(t *testing.T) {
	for seed := range uint64(300) {
		g := compile(t, plantest.RandomPlan(seed, plantest.RandomOptions{MaxComponents: 12}))
		rng := rand.New(rand.NewPCG(seed, 2))
		st := g.NewState()
		type run struct {
			s   planner.Step
			end time.Duration
		}
		var running []run
		var now, last time.Duration
		var slots []planner.Slot
		for {
			for _, s := range g.Ready(st) {
				require.NoError(t, st.Start(s))
				running = append(running, run{s, now + g.Expected(s)})
				slots = append(slots, planner.Slot{Step: s, Start: now, End: now + g.Expected(s)})
			}
			if len(running) == 0 {
				break
			}
			// Finish one of the earliest-ending steps, chosen at random.
			now = running[0].end
			for _, r := range running {
				now = min(now, r.end)
			}
			var due []int
			for i, r := range running {
				if r.end == now {
					due = append(due, i)
				}
			}
			i := due[rng.IntN(len(due))]
			require.NoError(t, st.Finish(running[i].s, true))
			running = append(running[:i], running[i+1:]...)
			last = now
		}
		require.True(t, g.Complete(st))
		require.NoError(t, g.CheckSchedule(slots))
		_, cp := g.CriticalPath()
		require.Equal(t, cp, last, "seed %d", seed)
	}
}
