package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/batonhq/baton/workflows"
)

// DefaultCooldown is how long after a completed failover of an account new
// automatic triggers for it are refused, unless the config says otherwise.
const DefaultCooldown = 30 * time.Minute

// Config maps alerts to failovers. See docs/WEBHOOK.md and
// examples/webhook.yaml.
type Config struct {
	// Cooldown is the default of every rule and of the plain JSON trigger.
	Cooldown Duration `yaml:"cooldown"`
	// FlushDeadline is the default flush deadline of every rule and of the
	// plain JSON trigger: the bound on a failover's fenced window before
	// promote, past which a planned failover rolls back. Unset: the
	// workflow's default (workflows.DefaultFlushDeadline, 2m).
	FlushDeadline *Duration `yaml:"flush_deadline"`
	// Rules are tried in order; the first whose matchers all match an alert
	// decides what happens with it.
	Rules []Rule `yaml:"rules"`
	// Trigger configures the plain JSON trigger (POST /v1/trigger).
	Trigger TriggerConfig `yaml:"trigger"`
}

// Rule turns the alerts it matches into failovers (or reprotects).
type Rule struct {
	// Name identifies the rule in answers, logs and metrics.
	Name string `yaml:"name"`
	// Action is what the rule's alerts start or attach to: failover
	// (default) or reprotect, the account's Reprotect (e.g. on an alert that
	// the old primary is back). A reprotect rule names the account only: a
	// reprotect has no destination, mode, approval gate or flush deadline.
	Action Action `yaml:"action"`
	// Scope is what the rule's alerts are about: account (default), one
	// account's failover or reprotect; or stamp, the stamp's evacuation
	// (every account whose primary it is, each to its own secondary).
	Scope Scope `yaml:"scope"`
	// Matchers must all match the alert's labels (Alertmanager syntax:
	// name="v", name!="v", name=~"re", name!~"re"; regexes are anchored).
	Matchers []Matcher `yaml:"matchers"`
	// The account is the value of AccountLabel, or Account if fixed.
	AccountLabel string `yaml:"account_label"`
	Account      string `yaml:"account"`
	// The stamp of a scope: stamp rule is the value of StampLabel, or Stamp
	// if fixed.
	StampLabel string `yaml:"stamp_label"`
	Stamp      string `yaml:"stamp"`
	// MaxInFlight, PerDestination and Attempts are an evacuation's
	// admission (scope: stamp only; workflows.EvacuationRequest): at most
	// this many accounts fail over at once (default 20), at most
	// PerDestination to any one stamp (default no cap), each tried up to
	// Attempts times (default 3).
	MaxInFlight    *int `yaml:"max_in_flight"`
	PerDestination *int `yaml:"per_destination"`
	Attempts       *int `yaml:"attempts"`
	// The destination stamp is the value of TargetLabel, or Target if fixed.
	TargetLabel string `yaml:"target_label"`
	Target      string `yaml:"target"`
	// FromLabel, if set, names the label holding the stamp the alert is
	// about: the failover is refused by its precheck if that is no longer
	// the account's primary (a stale alert cannot move it back).
	FromLabel string `yaml:"from_label"`
	// Mode is planned (default) or unplanned.
	Mode workflows.Mode `yaml:"mode"`
	// ApprovalRequired (default true): the failover waits at its approval
	// gate for `baton approve`. false pre-approves it in the config's name.
	ApprovalRequired *bool `yaml:"approval_required"`
	// ApprovalTimeout: no decision within it aborts the failover (default:
	// the workflow's, 1h).
	ApprovalTimeout Duration `yaml:"approval_timeout"`
	// CancelOnResolve: a resolved notification of the alert rejects the
	// account's failover if it still waits for approval.
	CancelOnResolve bool `yaml:"cancel_on_resolve"`
	// Cooldown overrides Config.Cooldown for this rule.
	Cooldown *Duration `yaml:"cooldown"`
	// FlushDeadline overrides Config.FlushDeadline for this rule.
	FlushDeadline *Duration `yaml:"flush_deadline"`
}

// TriggerConfig configures the plain JSON trigger.
type TriggerConfig struct {
	// Disabled refuses every plain JSON trigger (404).
	Disabled bool `yaml:"disabled"`
	// ApprovalRequired (default true), ApprovalTimeout, Cooldown and
	// FlushDeadline mean what they mean in a Rule.
	ApprovalRequired *bool     `yaml:"approval_required"`
	ApprovalTimeout  Duration  `yaml:"approval_timeout"`
	Cooldown         *Duration `yaml:"cooldown"`
	FlushDeadline    *Duration `yaml:"flush_deadline"`
}

// Duration is a time.Duration written as "30m" in YAML.
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a duration like 30m: %w", n.Line, err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %s is negative", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// LoadConfig reads and checks a config file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read webhook config: %w", err)
	}
	cfg, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("webhook config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and checks a YAML config. Unknown keys are errors, so
// that a typo cannot silently drop a safety setting.
func ParseConfig(b []byte) (*Config, error) {
	cfg := &Config{Cooldown: Duration(DefaultCooldown)}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("parse YAML: %w", err)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) validate() error {
	if len(c.Rules) == 0 && c.Trigger.Disabled {
		return errors.New("no rules and the plain trigger is disabled: this receiver would refuse everything")
	}
	if err := positiveFlushDeadline(c.FlushDeadline); err != nil {
		return err
	}
	if err := positiveFlushDeadline(c.Trigger.FlushDeadline); err != nil {
		return fmt.Errorf("trigger: %w", err)
	}
	seen := map[string]bool{}
	for i := range c.Rules {
		r := &c.Rules[i]
		if r.Name == "" {
			return fmt.Errorf("rule %d: no name", i+1)
		}
		if seen[r.Name] {
			return fmt.Errorf("rule %q: name used twice", r.Name)
		}
		seen[r.Name] = true
		if err := r.validate(); err != nil {
			return fmt.Errorf("rule %q: %w", r.Name, err)
		}
	}
	return nil
}

func (r *Rule) validate() error {
	if len(r.Matchers) == 0 {
		return errors.New("no matchers: a rule must say which alerts it takes (e.g. alertname=\"StampDown\")")
	}
	switch r.Scope {
	case "":
		r.Scope = ScopeAccount
	case ScopeAccount:
	case ScopeStamp:
		return r.validateStamp()
	default:
		return fmt.Errorf("scope %q: use %s (the default) or %s", r.Scope, ScopeAccount, ScopeStamp)
	}
	if err := r.refuseStampKeys(); err != nil {
		return err
	}
	if (r.AccountLabel == "") == (r.Account == "") {
		return errors.New("set exactly one of account_label and account")
	}
	switch r.Action {
	case "":
		r.Action = ActionFailover
	case ActionFailover:
	case ActionReprotect:
		return r.validateReprotect()
	default:
		return fmt.Errorf("action %q: use %s (the default) or %s", r.Action, ActionFailover, ActionReprotect)
	}
	if (r.TargetLabel == "") == (r.Target == "") {
		return errors.New("set exactly one of target_label and target")
	}
	return r.validateMove()
}

// validateMove checks what a rule that moves primaries (a failover, an
// evacuation) says about the move: its mode (planned by default) and flush
// deadline.
func (r *Rule) validateMove() error {
	if r.Mode == "" {
		r.Mode = workflows.ModePlanned
	}
	if !r.Mode.Valid() {
		return fmt.Errorf("mode %q: use %s or %s", r.Mode, workflows.ModePlanned, workflows.ModeUnplanned)
	}
	return positiveFlushDeadline(r.FlushDeadline)
}

// ruleKey is a key of a rule, and whether the config sets it.
type ruleKey struct {
	key string
	set bool
}

// refuseKeys refuses the first of keys the config sets: it does not apply
// to where (why), and would otherwise be silently dropped.
func refuseKeys(where, why string, keys ...ruleKey) error {
	for _, k := range keys {
		if k.set {
			return fmt.Errorf("%s does not apply to %s: %s; leave it out", k.key, where, why)
		}
	}
	return nil
}

// positiveFlushDeadline refuses a flush_deadline of 0: a failover cannot
// flush in no time, and 0 must not quietly mean "the default" either.
func positiveFlushDeadline(d *Duration) error {
	if d != nil && *d <= 0 {
		return fmt.Errorf("flush_deadline %s: must be positive (leave it out for the default, %s)",
			time.Duration(*d), workflows.DefaultFlushDeadline)
	}
	return nil
}

// approvalRequired is the rule's (or trigger's) setting, true by default.
func approvalRequired(p *bool) bool { return p == nil || *p }

// flushDeadline is the rule's (or trigger's) own flush deadline, else the
// config's, else 0: the workflow's default.
func (c *Config) flushDeadline(own *Duration) time.Duration {
	switch {
	case own != nil:
		return time.Duration(*own)
	case c.FlushDeadline != nil:
		return time.Duration(*c.FlushDeadline)
	}
	return 0
}

// cooldown is the rule's own cooldown or the config's.
func (c *Config) cooldown(own *Duration) time.Duration {
	if own != nil {
		return time.Duration(*own)
	}
	return time.Duration(c.Cooldown)
}

// Matcher is one label matcher in Alertmanager's syntax.
type Matcher struct {
	Name  string
	Op    string // =, !=, =~, !~
	Value string
	re    *regexp.Regexp
}

// ParseMatcher parses name="value", name!="value", name=~"regex" or
// name!~"regex"; the quotes are optional.
func ParseMatcher(s string) (Matcher, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, "=!")
	if i <= 0 {
		return Matcher{}, fmt.Errorf("matcher %q: want name=value, name!=value, name=~regex or name!~regex", s)
	}
	m := Matcher{Name: strings.TrimSpace(s[:i])}
	rest := s[i:]
	for _, op := range []string{"=~", "!~", "!=", "="} {
		if strings.HasPrefix(rest, op) {
			m.Op, rest = op, rest[len(op):]
			break
		}
	}
	if m.Op == "" {
		return Matcher{}, fmt.Errorf("matcher %q: want name=value, name!=value, name=~regex or name!~regex", s)
	}
	if !validLabelName(m.Name) {
		return Matcher{}, fmt.Errorf("matcher %q: %q is not a label name", s, m.Name)
	}
	v := strings.TrimSpace(rest)
	if strings.HasPrefix(v, `"`) {
		uq, err := strconv.Unquote(v)
		if err != nil {
			return Matcher{}, fmt.Errorf("matcher %q: bad quoted value: %w", s, err)
		}
		v = uq
	}
	m.Value = v
	if m.Op == "=~" || m.Op == "!~" {
		re, err := regexp.Compile("^(?:" + v + ")$")
		if err != nil {
			return Matcher{}, fmt.Errorf("matcher %q: %w", s, err)
		}
		m.re = re
	}
	return m, nil
}

func validLabelName(s string) bool {
	for i, r := range s {
		if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

// UnmarshalYAML reads a matcher string.
func (m *Matcher) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: a matcher like alertname=\"StampDown\": %w", n.Line, err)
	}
	pm, err := ParseMatcher(s)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*m = pm
	return nil
}

// String is the matcher in Alertmanager's syntax.
func (m Matcher) String() string { return m.Name + m.Op + strconv.Quote(m.Value) }

// Matches applies the matcher to labels; a missing label is "".
func (m Matcher) Matches(labels map[string]string) bool {
	v := labels[m.Name]
	switch m.Op {
	case "=":
		return v == m.Value
	case "!=":
		return v != m.Value
	case "=~":
		return m.re.MatchString(v)
	case "!~":
		return !m.re.MatchString(v)
	}
	return false
}
