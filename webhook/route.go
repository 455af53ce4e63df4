package webhook

import "fmt"

// Route is what the config makes of one alert: the rule that took it and
// the failover it asks for.
type Route struct {
	Rule    *Rule
	Account string
	To      string
	// From is the stamp the alert is about ("" when the rule has no
	// from_label): the precheck refuses if it is no longer the primary.
	From string
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
		r = Route{Rule: rule, Account: rule.Account, To: rule.Target}
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

// check says what the alert lacks for the failover (or reprotect) its rule
// asks for.
func (r Route) check() error {
	const validNames = "1-200 printable characters, no spaces"
	name := r.Rule.Name
	switch {
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
