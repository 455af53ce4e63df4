package traffic

import (
	"slices"
	"time"
)

// LongestGap is the longest time between two consecutive acknowledgements
// in acks (in any order): how long, at worst, the clients saw no write
// succeed. With traffic running steadily, it bounds a failover's write
// unavailability as the clients saw it.
func LongestGap(acks []Ack) time.Duration {
	if len(acks) < 2 {
		return 0
	}
	at := make([]time.Time, len(acks))
	for i, a := range acks {
		at[i] = a.At
	}
	slices.SortFunc(at, func(x, y time.Time) int { return x.Compare(y) })
	var gap time.Duration
	for i := 1; i < len(at); i++ {
		gap = max(gap, at[i].Sub(at[i-1]))
	}
	return gap
}
