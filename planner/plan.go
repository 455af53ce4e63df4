// Package planner is the pure decision core of Baton's application failover
// (US 8938639): an application is a graph of components that depend on each
// other, and the planner decides which offline and online steps may run, in
// which order, and how long the whole failover should take.
//
// It imports nothing from Temporal and does no I/O beyond reading a plan
// file. Like a scheduler's reconcile step it takes state in and returns a
// decision: the AppFailover workflow asks Ready what may start now and
// records what finished; Simulate asks exactly the same question over
// expected durations to predict the failover and its baselines. One rule
// implementation serves both.
//
// The rules (the patent's claim, generalised to any DAG):
//
//   - offline(c) on the source may start once every component that depends
//     on c is offline on the source;
//   - online(c) on the target may start once c is offline on the source and
//     every component c depends on is online on the target.
//
// Independent components overlap: one comes online on the target while its
// sibling is still going offline on the source, so the failover takes the
// critical path of the step graph rather than the sum of its steps.
package planner

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Plan is an application's failover plan, as written in a plan file (YAML or
// JSON; see docs/PLANS.md).
type Plan struct {
	// Name identifies the application; the AppFailover workflow ID derives
	// from it, so only one failover of a plan runs at a time.
	Name string `json:"name" yaml:"name"`
	// Description is free text shown by the CLI.
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	// Source and Target name the sites, for display only ("site-a").
	Source string `json:"source,omitempty" yaml:"source,omitempty"`
	Target string `json:"target,omitempty" yaml:"target,omitempty"`
	// Concurrency limits the steps that run at once on each site.
	Concurrency Concurrency `json:"concurrency,omitzero" yaml:"concurrency,omitempty"`
	// Strategy is how steps are ordered: StrategyOverlap (the default, the
	// patent's), or one of the two baselines, to measure them for real.
	Strategy Strategy `json:"strategy,omitempty" yaml:"strategy,omitempty"`
	// Components of the application, in any order.
	Components []Component `json:"components" yaml:"components"`
}

// Concurrency caps the steps running at once per site; 0 is no limit.
type Concurrency struct {
	// Source: offline (and, on abort, restore) steps at once on the source.
	Source int `json:"source,omitempty" yaml:"source,omitempty"`
	// Target: online steps at once on the target.
	Target int `json:"target,omitempty" yaml:"target,omitempty"`
}

// Strategy orders a plan's steps.
type Strategy string

// Strategies. Overlap is the invention; the other two are what today's DR
// tools do, kept so that the comparison can be measured, not just predicted.
const (
	// StrategyOverlap starts every step the moment the rules allow it.
	StrategyOverlap Strategy = "overlap"
	// StrategySequential runs one step at a time: every component offline
	// (dependents first), then every component online (dependencies first).
	StrategySequential Strategy = "sequential"
	// StrategyBarrier runs dependency levels as groups (SRM priority groups,
	// ASR recovery-plan groups): a group starts only when the previous group
	// has finished, and nothing starts on the target before the source is
	// fully offline.
	StrategyBarrier Strategy = "barrier"
)

// Strategies lists the strategies in display order.
var Strategies = []Strategy{StrategyOverlap, StrategySequential, StrategyBarrier}

// Component is one part of the application.
type Component struct {
	// Name is unique within the plan: letters, digits, '.', '_' and '-'.
	Name string `json:"name" yaml:"name"`
	// DependsOn names the components this one needs: they go offline after
	// it on the source and come online before it on the target.
	DependsOn []string `json:"depends_on,omitempty" yaml:"depends_on,omitempty"`
	// Offline takes the component offline on the source (required).
	Offline *Action `json:"offline" yaml:"offline"`
	// Online brings it online on the target (required).
	Online *Action `json:"online" yaml:"online"`
	// Restore brings it back online on the source when a failover is
	// aborted before any online step ran (optional: without it an aborted
	// failover leaves the component offline and says so).
	Restore *Action `json:"restore,omitempty" yaml:"restore,omitempty"`
}

// Kind is what an action does.
type Kind string

// Action kinds.
const (
	KindCommand Kind = "command" // run a program on the worker's host
	KindHTTP    Kind = "http"    // call an HTTP endpoint, check the status
	KindAccount Kind = "account" // fail a storage account over (AccountFailover child)
	KindWait    Kind = "wait"    // wait a duration (drills)
)

// Action is one step's work. Exactly one of Command, HTTP, Account and Wait
// is set; the rest tunes how it runs.
type Action struct {
	// Command is a program and its arguments, run without a shell (write
	// ["sh", "-c", "..."] for one). It runs on a worker's host and may be
	// retried, so it should be idempotent.
	Command []string `json:"command,omitempty" yaml:"command,omitempty"`
	// HTTP calls an endpoint and checks the status of the answer.
	HTTP *HTTPAction `json:"http,omitempty" yaml:"http,omitempty"`
	// Account fails a storage account over between stamps.
	Account *AccountAction `json:"account,omitempty" yaml:"account,omitempty"`
	// Wait waits this long (a durable timer).
	Wait *Duration `json:"wait,omitempty" yaml:"wait,omitempty"`

	// Timeout bounds one attempt (defaults: command 5m, http 30s,
	// account 1h; a wait takes exactly its duration).
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// Retries after a failed attempt (default 0).
	Retries int `json:"retries,omitempty" yaml:"retries,omitempty"`
	// Expected is how long the action usually takes, used for prediction
	// (default: the wait's duration for a wait, else 0).
	Expected Duration `json:"expected,omitempty" yaml:"expected,omitempty"`
}

// HTTPAction is an HTTP call whose answer must have the expected status.
type HTTPAction struct {
	URL string `json:"url" yaml:"url"`
	// Method defaults to GET.
	Method string `json:"method,omitempty" yaml:"method,omitempty"`
	// Body is sent as is; Headers are added to the request.
	Body    string            `json:"body,omitempty" yaml:"body,omitempty"`
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	// ExpectStatus is the status that counts as success (default 200).
	ExpectStatus int `json:"expect_status,omitempty" yaml:"expect_status,omitempty"`
}

// AccountAction fails a storage account over, as the AccountFailover
// workflow (US 9274906) run as a child of the application's failover.
type AccountAction struct {
	Account string `json:"account" yaml:"account"`
	// To is the stamp to fail over to: the account's secondary.
	To string `json:"to" yaml:"to"`
	// From is the expected current primary ("" accepts the current one).
	From string `json:"from,omitempty" yaml:"from,omitempty"`
}

// Default timeouts per attempt.
const (
	DefaultCommandTimeout = 5 * time.Minute
	DefaultHTTPTimeout    = 30 * time.Second
	DefaultAccountTimeout = time.Hour
)

// Kind says what the action does ("" when none or several are set, which
// Validate reports).
func (a *Action) Kind() Kind {
	if a == nil {
		return ""
	}
	var kinds []Kind
	if len(a.Command) > 0 {
		kinds = append(kinds, KindCommand)
	}
	if a.HTTP != nil {
		kinds = append(kinds, KindHTTP)
	}
	if a.Account != nil {
		kinds = append(kinds, KindAccount)
	}
	if a.Wait != nil {
		kinds = append(kinds, KindWait)
	}
	if len(kinds) != 1 {
		return ""
	}
	return kinds[0]
}

// TimeoutOrDefault is the per-attempt timeout, with the kind's default.
func (a *Action) TimeoutOrDefault() time.Duration {
	if a.Timeout > 0 {
		return a.Timeout.D()
	}
	switch a.Kind() {
	case KindCommand:
		return DefaultCommandTimeout
	case KindHTTP:
		return DefaultHTTPTimeout
	case KindAccount:
		return DefaultAccountTimeout
	case KindWait:
		return a.Wait.D()
	}
	return 0
}

// ExpectedOrDefault is the duration used for prediction.
func (a *Action) ExpectedOrDefault() time.Duration {
	if a == nil {
		return 0
	}
	if a.Expected > 0 {
		return a.Expected.D()
	}
	if a.Wait != nil {
		return a.Wait.D()
	}
	return 0
}

// Describe is a one-line description of the action, for summaries and the
// CLI ("wait 5s", "GET http://... expect 200").
func (a *Action) Describe() string {
	switch a.Kind() {
	case KindCommand:
		s := fmt.Sprintf("%q", a.Command)
		if len(s) > 80 {
			s = s[:77] + "..."
		}
		return "command " + s
	case KindHTTP:
		return fmt.Sprintf("%s %s expect %d", a.HTTP.MethodOrDefault(), a.HTTP.URL, a.HTTP.ExpectStatusOrDefault())
	case KindAccount:
		return fmt.Sprintf("fail storage account %s over to %s", a.Account.Account, a.Account.To)
	case KindWait:
		return "wait " + a.Wait.D().String()
	}
	return "invalid action"
}

// MethodOrDefault is the request method (GET by default).
func (h *HTTPAction) MethodOrDefault() string {
	if h.Method == "" {
		return "GET"
	}
	return h.Method
}

// ExpectStatusOrDefault is the status that counts as success (200 by
// default).
func (h *HTTPAction) ExpectStatusOrDefault() int {
	if h.ExpectStatus == 0 {
		return 200
	}
	return h.ExpectStatus
}

// Duration is a time.Duration written as a string ("1m30s") in plan files
// and in JSON, so that a plan reads the same in both.
type Duration time.Duration

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Dur converts a time.Duration.
func Dur(d time.Duration) Duration { return Duration(d) }

// DurPtr is a pointer to d, for Action.Wait.
func DurPtr(d time.Duration) *Duration { x := Duration(d); return &x }

func (d Duration) String() string { return time.Duration(d).String() }

var errDurationForm = errors.New(`a duration is a string with a unit, such as "30s", "1m30s" or "250ms"`)

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q: %w", s, errDurationForm)
	}
	return Duration(v), nil
}

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a string such as "30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s: %w", b, errDurationForm)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a string such as "30s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!int" || n.Tag == "!!float" {
		return fmt.Errorf("line %d: %q: %w", n.Line, n.Value, errDurationForm)
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = v
	return nil
}
