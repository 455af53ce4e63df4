package workflows

import (
	"errors"

	"go.temporal.io/sdk/temporal"
)

// Error types of an AccountFailover that did not complete. The workflow
// fails with a non-retryable temporal.ApplicationError of the type of its
// outcome, whose details carry the FailoverResult; match them with the Is
// helpers below or OutcomeOf.
const (
	// ErrTypeRefused: the precheck (or a malformed request) refused the
	// failover; nothing was touched.
	ErrTypeRefused = "FailoverRefused"
	// ErrTypeRejected: an operator (or a resolved alert) rejected it at its
	// approval gate; nothing was touched.
	ErrTypeRejected = "FailoverRejected"
	// ErrTypeTimedOut: no approval came within the approval timeout;
	// nothing was touched.
	ErrTypeTimedOut = "FailoverTimedOut"
	// ErrTypeAborted: an operator aborted it before promote; it rolled back.
	ErrTypeAborted = "FailoverAborted"
	// ErrTypeRolledBack: a step failed, or the flush deadline passed,
	// before promote; it rolled back and the source is primary again.
	ErrTypeRolledBack = "FailoverRolledBack"
	// ErrTypeFailed: promote failed after the point of no return, or the
	// rollback failed; the report says what is left to do by hand.
	ErrTypeFailed = "FailoverFailed"
)

// errTypeOf is the error type a failover with this outcome fails with.
func errTypeOf(o Outcome) string {
	switch o {
	case OutcomeRefused:
		return ErrTypeRefused
	case OutcomeRejected:
		return ErrTypeRejected
	case OutcomeTimedOut:
		return ErrTypeTimedOut
	case OutcomeAborted:
		return ErrTypeAborted
	case OutcomeRolledBack:
		return ErrTypeRolledBack
	}
	return ErrTypeFailed
}

// OutcomeOf returns the outcome of a failover that ended with err (as
// returned by its run's Get) and its report, if err is one of a failover's
// errors.
func OutcomeOf(err error) (Outcome, FailoverResult, bool) {
	var ae *temporal.ApplicationError
	if !errors.As(err, &ae) {
		return "", FailoverResult{}, false
	}
	var res FailoverResult
	if ae.HasDetails() && ae.Details(&res) == nil && res.Outcome != "" {
		return res.Outcome, res, true
	}
	return "", FailoverResult{}, false
}

func isType(err error, typ string) bool {
	var ae *temporal.ApplicationError
	return errors.As(err, &ae) && ae.Type() == typ
}

// IsRefused reports whether err is a failover refused before it touched
// anything (precheck or request).
func IsRefused(err error) bool { return isType(err, ErrTypeRefused) }

// IsRejected reports whether err is a failover rejected at its gate.
func IsRejected(err error) bool { return isType(err, ErrTypeRejected) }

// IsTimedOut reports whether err is a failover that got no approval in time.
func IsTimedOut(err error) bool { return isType(err, ErrTypeTimedOut) }

// IsAborted reports whether err is a failover aborted (and rolled back).
func IsAborted(err error) bool { return isType(err, ErrTypeAborted) }

// IsRolledBack reports whether err is a failover that failed before
// promote and rolled back.
func IsRolledBack(err error) bool { return isType(err, ErrTypeRolledBack) }

// IsFailed reports whether err is a failover that failed at or after
// promote, or whose rollback failed: one that needs a human.
func IsFailed(err error) bool { return isType(err, ErrTypeFailed) }
