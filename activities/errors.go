package activities

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// Error types carried by non-retryable application errors, so workflows and
// operators can tell why a failover stopped.
const (
	ErrTypePrecheck   = "PrecheckFailed"
	ErrTypeStaleEpoch = "StaleEpoch"
	ErrTypeRefused    = "RefusedByStamp"
	ErrTypeLocation   = "LocationConflict"
)

// classify turns a stamp or location error into what Temporal should do with
// it: a 4xx is the stamp refusing the request as asked (bad input, stale
// epoch, a state that retrying cannot change), so it is non-retryable; 5xx,
// injected faults and network errors are retried by the activity's policy.
//
// A final refusal of one partition (a *Refusal in the chain) carries that
// partition as the error's details, a PartitionFailure, so the workflow
// names it.
func classify(what string, err error) error {
	if err == nil {
		return nil
	}
	var se *stamp.APIError
	if errors.As(err, &se) && !se.Retryable() {
		typ := ErrTypeRefused
		if se.Code == stamp.CodeStaleEpoch {
			typ = ErrTypeStaleEpoch
		}
		return refused(what, typ, err)
	}
	if driver.IsFinal(err) {
		return refused(what, ErrTypeRefused, err)
	}
	var le *location.APIError
	if errors.As(err, &le) && le.Status/100 == 4 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", what, err), ErrTypeLocation, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// refused is a final refusal of type typ, naming the partition refused
// (a *Refusal in err's chain) in its details.
func refused(what, typ string, err error) error {
	var details []any
	var rf *Refusal
	if errors.As(err, &rf) {
		details = append(details, PartitionFailure{Partition: rf.Partition, Error: rf.Err.Error()})
	}
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", what, err), typ, err, details...)
}

// precheckFailed is a non-retryable refusal that touched nothing.
func precheckFailed(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrTypePrecheck, nil)
}

// Refusal is one partition's refusal of a control call.
type Refusal struct {
	Partition int
	Err       error
}

// refusal is partition p's refusal err, unless err is the answer of a
// whole call (driver.WholeCall): that names no partition.
func refusal(p int, err error) error {
	if driver.IsWholeCall(err) {
		return err
	}
	return &Refusal{Partition: p, Err: err}
}

func (r *Refusal) Error() string { return fmt.Sprintf("partition %d: %v", r.Partition, r.Err) }
func (r *Refusal) Unwrap() error { return r.Err }

// RefusedPartition returns the partition a final refusal names (from its
// details), if it names one.
func RefusedPartition(err error) (PartitionFailure, bool) {
	var ae *temporal.ApplicationError
	var pf PartitionFailure
	if errors.As(err, &ae) && ae.HasDetails() && ae.Details(&pf) == nil {
		return pf, true
	}
	return pf, false
}
