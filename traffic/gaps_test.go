package traffic

import (
	"testing"
	"time"
)

func TestLongestGap(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	acks := []Ack{{At: t0.Add(3 * time.Second)}, {At: t0}, {At: t0.Add(500 * time.Millisecond)}, {At: t0.Add(3100 * time.Millisecond)}}
	if got := LongestGap(acks); got != 2500*time.Millisecond {
		t.Fatalf("longest gap = %s, want 2.5s", got)
	}
	if got := LongestGap(acks[:1]); got != 0 {
		t.Fatalf("one ack: %s", got)
	}
}
