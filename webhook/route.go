package webhook

import "fmt"

// Route is what the config makes of one alert: the rule that took it and
// the failover (reprotect, evacuation) it asks for.
type Route struct {
	Rule    *Rule
	Account string
	To      string
	// From is the stamp the alert is about ("" when the rule has no
	// from_label): the precheck refuses if it is no longer the primary.
	From string
	// Stamp is the stamp to evacuate (a rule with scope: stamp).
	Stamp string
}

// subject is what the route's workflow is per: the stamp to evacuate, or
// the account.
func (r Route) subject() string {
	if r.Rule != nil && r.Rule.Scope == ScopeStamp {
		return r.Stamp
	}
	return r.Account
}

// Route finds the first rule whose matchers all match labels. ok is false
// when no rule matches; err is set when a rule matches but the alert does
// not carry what the rule needs (the alert is unmapped).
func (c *Config) Route(labels map[string]string) (r Route, ok bool, err error) {
	for i := range c.Rules {
		rule := &c.Rules[i]
		if !rule.matches(labels) {
			continue
		}
		r = Route{Rule: rule, Account: rule.Account, To: rule.Target, Stamp: rule.Stamp}
		if rule.StampLabel != "" {
			r.Stamp = labels[rule.StampLabel]
		}
		if rule.AccountLabel != "" {
			r.Account = labels[rule.AccountLabel]
		}
		if rule.TargetLabel != "" {
			r.To = labels[rule.TargetLabel]
		}
		if rule.FromLabel != "" {
			r.From = labels[rule.FromLabel]
		}
		return r, true, r.check()
	}
	return Route{}, false, nil
}

// validNames says what a valid account or stamp name is.
const validNames = "1-200 printable characters, no spaces"

// check says what the alert lacks for the failover (reprotect, evacuation)
// its rule asks for.
func (r Route) check() error {
	name := r.Rule.Name
	switch {
	case r.Rule.Scope == ScopeStamp && r.Stamp == "":
		return fmt.Errorf("rule %q matches but the alert has no %q label naming the stamp to evacuate",
			name, r.Rule.StampLabel)
	case r.Rule.Scope == ScopeStamp && !validName(r.Stamp):
		return fmt.Errorf("rule %q: stamp %q is not a valid name (%s)", name, r.Stamp, validNames)
	case r.Rule.Scope == ScopeStamp:
		return nil // an evacuation names the stamp only
	case r.Account == "":
		return fmt.Errorf("rule %q matches but the alert has no %q label naming the account",
			name, r.Rule.AccountLabel)
	case !validName(r.Account):
		return fmt.Errorf("rule %q: account %q is not a valid name (%s)", name, r.Account, validNames)
	case r.Rule.Action == ActionReprotect:
		return nil // a reprotect names the account only
	case r.To == "":
		return fmt.Errorf("rule %q matches but the alert has no %q label naming the stamp to fail over to",
			name, r.Rule.TargetLabel)
	case !validName(r.To):
		return fmt.Errorf("rule %q: stamp %q is not a valid name (%s)", name, r.To, validNames)
	case r.From != "" && !validName(r.From):
		return fmt.Errorf("rule %q: stamp %q is not a valid name (%s)", name, r.From, validNames)
	case r.From == r.To:
		return fmt.Errorf("rule %q: the alert is about %s and names it as the destination too", name, r.To)
	}
	return nil
}

func (r *Rule) matches(labels map[string]string) bool {
	for _, m := range r.Matchers {
		if !m.Matches(labels) {
			return false
		}
	}
	return true
}
