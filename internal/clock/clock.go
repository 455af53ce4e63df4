// Package clock holds the one way Baton's code waits outside a workflow:
// for a duration, unless its context ends first.
package clock

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
