package planner

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func wait(d time.Duration) *Action { return &Action{Wait: DurPtr(d)} }

func comp(name string, deps ...string) Component {
	return Component{Name: name, DependsOn: deps, Offline: wait(time.Second), Online: wait(time.Second)}
}

func plan(cs ...Component) Plan { return Plan{Name: "app", Components: cs} }

func TestValidateAcceptsAGoodPlan(t *testing.T) {
	require.NoError(t, Validate(plan(comp("web", "api", "cache"), comp("api", "db"), comp("db"), comp("cache"))))
}

func TestValidateNamesTheComponentsInvolved(t *testing.T) {
	with := func(c Component, f func(*Component)) Component { f(&c); return c }
	tests := []struct {
		name    string
		plan    Plan
		wantErr string
		want    []string // components of the (single) problem
	}{
		{"cycle of three", plan(comp("a", "b"), comp("b", "c"), comp("c", "a"), comp("d", "a")),
			"dependency cycle: a -> b -> c -> a", []string{"a", "b", "c"}},
		{"self dependency", plan(comp("a", "a")), "dependency cycle: a -> a", []string{"a"}},
		{"two-cycle among others", plan(comp("x"), comp("q", "p", "x"), comp("p", "q")),
			"dependency cycle: p -> q -> p", []string{"p", "q"}},
		{"unknown dependency", plan(comp("web", "api")),
			"component web depends on api, which is not in the plan", []string{"api", "web"}},
		{"repeated dependency", plan(comp("web", "api", "api"), comp("api")),
			"component web lists api twice", []string{"web"}},
		{"duplicate name", plan(comp("db"), comp("db")), "component db is defined 2 times", []string{"db"}},
		{"no offline action", plan(with(comp("db"), func(c *Component) { c.Offline = nil })),
			"component db has no offline action", []string{"db"}},
		{"no online action", plan(with(comp("db"), func(c *Component) { c.Online = nil })),
			"component db has no online action", []string{"db"}},
		{"empty action", plan(with(comp("db"), func(c *Component) { c.Online = &Action{Retries: 1} })),
			"the online action does nothing", []string{"db"}},
		{"two kinds", plan(with(comp("db"), func(c *Component) {
			c.Offline = &Action{Command: []string{"true"}, Wait: DurPtr(0)}
		})), "the offline action sets command and wait: give it exactly one", []string{"db"}},
		{"bad url", plan(with(comp("db"), func(c *Component) {
			c.Online = &Action{HTTP: &HTTPAction{URL: "/healthz"}}
		})), `url "/healthz" is not an absolute http(s) URL`, []string{"db"}},
		{"bad method", plan(with(comp("db"), func(c *Component) {
			c.Online = &Action{HTTP: &HTTPAction{URL: "http://h/", Method: "FETCH"}}
		})), `method "FETCH"`, []string{"db"}},
		{"bad status", plan(with(comp("db"), func(c *Component) {
			c.Online = &Action{HTTP: &HTTPAction{URL: "http://h/", ExpectStatus: 42}}
		})), "expect_status 42", []string{"db"}},
		{"account offline", plan(with(comp("blob"), func(c *Component) {
			c.Offline = &Action{Account: &AccountAction{Account: "a", To: "stamp-b"}}
		})), "belongs in the online step", []string{"blob"}},
		{"account incomplete", plan(with(comp("blob"), func(c *Component) {
			c.Online = &Action{Account: &AccountAction{Account: "a"}}
		})), "needs account and to", []string{"blob"}},
		{"account to itself", plan(with(comp("blob"), func(c *Component) {
			c.Online = &Action{Account: &AccountAction{Account: "a", From: "s", To: "s"}}
		})), "over from s to itself", []string{"blob"}},
		{"same account twice", plan(
			with(comp("b1"), func(c *Component) { c.Online = &Action{Account: &AccountAction{Account: "a", To: "s"}} }),
			with(comp("b2"), func(c *Component) { c.Online = &Action{Account: &AccountAction{Account: "a", To: "s"}} }),
		), "components b1, b2 all fail storage account a over", []string{"b1", "b2"}},
		{"retries", plan(with(comp("db"), func(c *Component) { c.Offline.Retries = -1 })),
			"retries -1", []string{"db"}},
		{"negative wait", plan(with(comp("db"), func(c *Component) { c.Offline = wait(-time.Second) })),
			"waits a negative duration", []string{"db"}},
		{"negative timeout", plan(with(comp("db"), func(c *Component) { c.Offline.Timeout = -1 })),
			"negative timeout", []string{"db"}},
		{"empty program", plan(with(comp("db"), func(c *Component) { c.Offline = &Action{Command: []string{" "}} })),
			"empty program name", []string{"db"}},
		{"bad component name", plan(comp("web server")), `component name "web server"`, []string{"web server"}},
		{"unnamed component", plan(Component{Offline: wait(0), Online: wait(0)}), "component #1 has no name", nil},
		{"no name", Plan{Components: []Component{comp("a")}}, "the plan has no name", nil},
		{"bad plan name", Plan{Name: "my app", Components: []Component{comp("a")}}, `plan name "my app"`, nil},
		{"no components", Plan{Name: "x"}, "the plan has no components", nil},
		{"negative limit", Plan{Name: "x", Concurrency: Concurrency{Source: -1}, Components: []Component{comp("a")}},
			"concurrency source -1", nil},
		{"bad strategy", Plan{Name: "x", Strategy: "fast", Components: []Component{comp("a")}}, `strategy "fast"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Validate(tt.plan)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
			var ve *ValidationError
			require.True(t, errors.As(err, &ve))
			require.Len(t, ve.Problems, 1, "%v", err)
			require.Equal(t, tt.want, ve.Problems[0].Components)
			_, err = Compile(tt.plan)
			require.Error(t, err, "Compile validates")
		})
	}
}

func TestValidateListsEveryProblem(t *testing.T) {
	p := plan(comp("a", "b"), comp("b", "a"), comp("c", "ghost"), Component{Name: "d", Online: wait(0)})
	err := Validate(p)
	require.EqualError(t, err, `invalid plan: 3 problems:
  - component c depends on ghost, which is not in the plan: add it or fix the name
  - component d has no offline action: every component needs offline and online actions (a wait: 0s does nothing)
  - dependency cycle: a -> b -> a: a component cannot (indirectly) depend on itself`)
}

func TestLintWarns(t *testing.T) {
	web := Component{
		Name:    "web",
		Offline: &Action{Command: []string{"true"}},
		Online:  wait(time.Second),
		Restore: wait(0),
	}
	p := plan(web, comp("db"))
	require.NoError(t, Validate(p))
	require.Equal(t, []string{
		"component web: the offline action has no expected duration: predicted as 0s",
		"component db has no restore action: an aborted failover leaves it offline on the source",
	}, Lint(p))
}
