package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/workflows"
)

// failure is what baton says about an error: one line for the operator
// (the root cause with its context, each message once, without the SDK's
// wrappers), what to do next, and the whole chain for whoever needs it
// (-v, --output json).
type failure struct {
	// Error is the operator's line.
	Error string `json:"error"`
	// Next is what to do next, when baton knows ("" otherwise).
	Next string `json:"next,omitempty"`
	// Chain is every error of the chain, outermost first, as the Go and
	// Temporal SDK types print themselves (each without its cause's text).
	Chain []string `json:"chain"`
}

// line is the one line baton prints: "baton: CAUSE. Next: WHAT TO DO."
func (f failure) line() string {
	s := "baton: " + f.Error
	if f.Next != "" {
		s = strings.TrimSuffix(s, ".") + ". Next: " + f.Next
	}
	return s
}

// usageError is a command line baton cannot take (unknown or bad flag,
// wrong arguments): the hint is the command's help.
type usageError struct {
	cmd *cobra.Command
	err error
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// requestError is the error of a failover baton started: the request names
// the destination, which the result of a failover refused by its precheck
// may not, for the next step.
type requestError struct {
	account, to string
	err         error
}

func (e requestError) Error() string { return e.err.Error() }
func (e requestError) Unwrap() error { return e.err }

// printFailure writes err for the operator: the line and what to do next
// on stderr; with verbose, the whole chain too; with --output json, the
// failure as a JSON object (chain included).
func printFailure(w io.Writer, err error, g *globals) {
	f := describeError(err)
	if g != nil && g.json() {
		_ = printJSON(w, f)
		return
	}
	fmt.Fprintln(w, f.line())
	if g != nil && g.verbose {
		fmt.Fprintln(w, "  error chain, outermost first:")
		for _, c := range f.Chain {
			fmt.Fprintln(w, "  -", c)
		}
	}
}

// describeError turns an error into the operator's failure: it unwraps the
// chain (WorkflowExecutionError, ActivityError, ChildWorkflowExecutionError,
// ApplicationError, fmt wrapping), keeps each distinct message once
// (Baton's workflows put the text of the error they wrap into their own
// message, so the same words come back at every level), drops the SDK's
// decorations (event IDs, run IDs, "(type: X, retryable: false)"), and
// says what to do next from the kind of failure.
func describeError(err error) failure {
	if err == nil {
		return failure{}
	}
	var chain []error
	for e := err; e != nil; e = errors.Unwrap(e) {
		chain = append(chain, e)
	}
	f := failure{}
	for i, e := range chain {
		if inner := next(chain, i); inner != nil && e.Error() == inner.Error() {
			continue // a transparent wrapper (usageError, requestError)
		}
		f.Chain = append(f.Chain, typeName(e)+": "+ownText(e, next(chain, i)))
	}
	// Innermost first: the root cause, then each wrapper's context that is
	// not already said by what it wraps.
	var kept []string
	for i := len(chain) - 1; i >= 0; i-- {
		t := clean(message(chain[i], next(chain, i)))
		t = trimKnownSuffixes(t, kept)
		if t == "" || containedIn(t, kept) {
			continue
		}
		// A wrapper whose message holds an inner one (e.g. "... X ...
		// (rolled back: ...)") says it better: the inner one goes.
		kept = slicesFilter(kept, func(p string) bool { return !holds(t, p) })
		kept = append(kept, t)
	}
	parts := make([]string, 0, len(kept))
	for i := len(kept) - 1; i >= 0; i-- {
		parts = append(parts, kept[i])
	}
	f.Error = dedupeSegments(strings.Join(parts, ": "))
	if f.Error == "" {
		f.Error = oneLine(err.Error())
	}
	f.Next = nextStep(err)
	return f
}

func next(chain []error, i int) error {
	if i+1 < len(chain) {
		return chain[i+1]
	}
	return nil
}

// typeName is the error's Go type without package or pointer, e.g.
// ApplicationError, with an application error's own type added.
func typeName(e error) string {
	n := fmt.Sprintf("%T", e)
	n = n[strings.LastIndex(n, ".")+1:]
	var ae *temporal.ApplicationError
	if errors.As(e, &ae) && ae == e && ae.Type() != "" {
		n += "(" + ae.Type() + ")"
	}
	return n
}

// ownText is e's text without its cause's: what this level adds.
func ownText(e, inner error) string {
	s := e.Error()
	if inner != nil {
		s = strings.TrimSuffix(s, ": "+inner.Error())
	}
	return oneLine(s)
}

// message is what e says in words, "" for the SDK's pure wrappers.
func message(e, inner error) string {
	switch t := e.(type) {
	case *temporal.WorkflowExecutionError, *temporal.ActivityError, *temporal.ChildWorkflowExecutionError:
		return ""
	case *temporal.ApplicationError:
		return t.Message()
	case *temporal.TimeoutError:
		if m := t.Message(); m != "" {
			return m
		}
		return "timed out (" + strings.ToLower(strings.TrimPrefix(t.TimeoutType().String(), "TIMEOUT_TYPE_")) + ")"
	case *temporal.ServerError:
		return t.Message()
	case *temporal.TerminatedError:
		return "the workflow was terminated"
	case usageError, requestError, evacuationError:
		return ""
	}
	return ownText(e, inner)
}

var (
	// The SDK's wrappers, as they appear inside messages that were built
	// from an error's text (fmt.Errorf("...: %w", err).Error() in a
	// workflow becomes the message of the application error it fails with).
	reWrapper = regexp.MustCompile(
		`(?:workflow execution error|child workflow execution error|activity error) \([^()]*\)(?:: )?`)
	// "(type: FailoverRefused, retryable: false)", "(type: StartToClose)".
	reTypeTag = regexp.MustCompile(` ?\(type: [A-Za-z0-9_.*-]+(?:, retryable: (?:true|false))?\)`)
	reSpaces  = regexp.MustCompile(`\s+`)
	// cobra's suggestion for a mistyped command, on several lines.
	reSuggest = regexp.MustCompile(`\s*Did you mean this\?\s*((?:\S+\s*)+)$`)
)

func clean(s string) string {
	s = reWrapper.ReplaceAllString(s, "")
	s = reTypeTag.ReplaceAllString(s, "")
	s = oneLine(s)
	return strings.TrimSpace(strings.TrimSuffix(s, ":"))
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	if m := reSuggest.FindStringSubmatch(s); m != nil {
		s = strings.TrimSuffix(s, m[0]) + " (did you mean " + strings.Join(strings.Fields(m[1]), " or ") + "?)"
	}
	return strings.TrimSpace(reSpaces.ReplaceAllString(s, " "))
}

// trimKnownSuffixes removes from t the inner messages already kept that
// it ends with (": <inner>").
func trimKnownSuffixes(t string, kept []string) string {
	for changed := true; changed && t != ""; {
		changed = false
		for _, p := range kept {
			if t == p {
				return ""
			}
			if strings.HasSuffix(t, ": "+p) {
				t, changed = strings.TrimSuffix(t, ": "+p), true
			}
		}
	}
	return t
}

func containedIn(t string, kept []string) bool {
	for _, p := range kept {
		if holds(p, t) {
			return true
		}
	}
	return false
}

// holds reports whether big says small: small appears in it from the start
// of a ": "-separated segment to the end of a word ("connect" is not in
// "connection refused", "X" is in "A: X (rolled back)").
func holds(big, small string) bool {
	for i := 0; small != ""; {
		j := strings.Index(big[i:], small)
		if j < 0 {
			return false
		}
		at, end := i+j, i+j+len(small)
		if (at == 0 || strings.HasSuffix(big[:at], ": ")) && (end == len(big) || !isWordByte(big[end])) {
			return true
		}
		i = at + 1
	}
	return false
}

func slicesFilter(s []string, keep func(string) bool) []string {
	out := s[:0]
	for _, v := range s {
		if keep(v) {
			out = append(out, v)
		}
	}
	return out
}

// dedupeSegments drops a text repeated right after itself ("A: B: B" ->
// "A: B", "A: B: C: B: C (x)" -> "A: B: C (x)"), which an error that
// carries its cause both in its message and as its cause leaves in a
// message built from its text. The repeated text starts at the start of a
// ": "-separated segment and is followed by the end of the text or a
// non-word character.
func dedupeSegments(s string) string {
	for changed := true; changed; {
		changed = false
		starts := []int{0}
		for i := 0; i+2 <= len(s); i++ {
			if s[i:i+2] == ": " {
				starts = append(starts, i+2)
			}
		}
	search:
		for _, a := range starts {
			// Longest first: the ends are the ": " after a, last one first.
			for j := len(starts) - 1; j >= 0; j-- {
				b := starts[j] - 2
				if b <= a {
					break
				}
				rep := s[a:b]
				rest := s[b:]
				if !strings.HasPrefix(rest, ": "+rep) {
					continue
				}
				after := rest[2+len(rep):]
				if after != "" && isWordByte(after[0]) {
					continue
				}
				s = s[:b] + after
				changed = true
				break search
			}
		}
	}
	return s
}

func isWordByte(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// nextStep says what to do after err, from what kind of failure it is.
func nextStep(err error) string {
	var ue usageError
	if errors.As(err, &ue) && ue.cmd != nil {
		return fmt.Sprintf("see `%s --help`", ue.cmd.CommandPath())
	}
	if errors.Is(err, launch.ErrAlreadyRunning) {
		return "" // its message names the commands
	}
	var evac evacuationError
	if errors.As(err, &evac) {
		if s := evacuationNext(err, evac.stamp); s != "" {
			return s
		}
	}
	// The outermost application error of Baton's workflows tells the
	// outcome; its details carry the result.
	for e := err; e != nil; e = errors.Unwrap(e) {
		ae, ok := e.(*temporal.ApplicationError)
		if !ok {
			continue
		}
		var req requestError
		errors.As(err, &req)
		if s := failoverNext(ae, req); s != "" {
			return s
		}
		if s := appNext(ae); s != "" {
			return s
		}
		if s := reprotectNext(ae); s != "" {
			return s
		}
		if s := drillNext(ae); s != "" {
			return s
		}
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) && strings.Contains(nf.Message, "already completed") {
		return "the failover has already ended: `baton result ACCOUNT` shows how"
	}
	if errors.As(err, &nf) {
		return "no such failover (yet): `baton list` shows the failovers, `baton list ACCOUNT` one account's"
	}
	var unavailable *serviceerror.Unavailable
	if errors.As(err, &unavailable) || strings.Contains(err.Error(), "failed reaching server") {
		return fmt.Sprintf("check that Temporal answers at %s (TEMPORAL_ADDRESS) and that a Baton worker runs",
			envOr("TEMPORAL_ADDRESS", "localhost:7233"))
	}
	if errors.Is(err, context.DeadlineExceeded) && !fromTemporal(err) {
		return "it took longer than allowed: raise --timeout, or check that Temporal and a Baton worker answer"
	}
	return ""
}

// failoverNext is the next step after an account failover that did not
// complete.
func failoverNext(ae *temporal.ApplicationError, req requestError) string {
	var res workflows.FailoverResult
	switch ae.Type() {
	case workflows.ErrTypeRefused, workflows.ErrTypeRejected, workflows.ErrTypeTimedOut, workflows.ErrTypeAborted,
		workflows.ErrTypeRolledBack, workflows.ErrTypeFailed:
		if ae.HasDetails() {
			_ = ae.Details(&res)
		}
	default:
		return ""
	}
	acct := orPlaceholder(res.Account, orPlaceholder(req.account, "ACCOUNT"))
	to := orPlaceholder(res.To, orPlaceholder(req.to, "STAMP"))
	switch ae.Type() {
	case workflows.ErrTypeRefused:
		return fmt.Sprintf("fix what the precheck found, check with `baton failover %s --to %s --dry-run`, "+
			"then start the failover again", acct, to)
	case workflows.ErrTypeRejected, workflows.ErrTypeTimedOut:
		return fmt.Sprintf("if the failover is still wanted, start it again: `baton failover %s --to %s`", acct, to)
	case workflows.ErrTypeAborted:
		return fmt.Sprintf("%s stays where it was and takes writes; `baton status %s` shows it", acct, acct)
	case workflows.ErrTypeRolledBack:
		return fmt.Sprintf("%s is still primary on its source and takes writes (`baton status %s`); "+
			"fix the cause, then start the failover again", acct, acct)
	default: // ErrTypeFailed
		return fmt.Sprintf("see where %s is now with `baton status %s`; the error says what to do by hand", acct, acct)
	}
}

// appNext is the next step after an application failover that did not
// complete.
func appNext(ae *temporal.ApplicationError) string {
	var res workflows.AppFailoverResult
	switch ae.Type() {
	case workflows.ErrTypeAppPlanInvalid:
		return "fix the plan; `baton plan validate FILE` checks it without running anything"
	case workflows.ErrTypeAppAborted, workflows.ErrTypeAppRolledBack, workflows.ErrTypeAppFailed:
		if ae.HasDetails() {
			_ = ae.Details(&res)
		}
	default:
		return ""
	}
	plan := orPlaceholder(res.Plan, "PLAN")
	if ae.Type() == workflows.ErrTypeAppFailed {
		return fmt.Sprintf("past the point of no return: `baton plan status %s` shows where each component is", plan)
	}
	return fmt.Sprintf("the components taken offline were brought back on the source; "+
		"`baton plan status %s` shows each step", plan)
}

// fromTemporal: the chain holds a workflow's or an activity's failure (a
// timeout there is the workflow's business, not baton's --timeout).
func fromTemporal(err error) bool {
	var wee *temporal.WorkflowExecutionError
	var ae *temporal.ApplicationError
	var acte *temporal.ActivityError
	return errors.As(err, &wee) || errors.As(err, &ae) || errors.As(err, &acte)
}

func orPlaceholder(s, placeholder string) string {
	if s == "" {
		return placeholder
	}
	return s
}
