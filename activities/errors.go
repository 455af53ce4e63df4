package activities

import (
	"errors"
	"fmt"

	"go.temporal.io/sdk/temporal"

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
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", what, err), typ, err)
	}
	var le *location.APIError
	if errors.As(err, &le) && le.Status/100 == 4 {
		return temporal.NewNonRetryableApplicationError(fmt.Sprintf("%s: %v", what, err), ErrTypeLocation, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// precheckFailed is a non-retryable refusal that touched nothing.
func precheckFailed(format string, args ...any) error {
	return temporal.NewNonRetryableApplicationError(fmt.Sprintf(format, args...), ErrTypePrecheck, nil)
}
