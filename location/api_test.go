package location

import (
	"testing"
	"time"
)

// TestMaintenanceHold: the global switch holds every stamp and is named
// first; otherwise the first of the stamps asked about whose switch is on.
func TestMaintenanceHold(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	on := func(by, why string) Switch { return Switch{On: true, By: by, Reason: why, At: at} }
	tests := []struct {
		name   string
		m      Maintenance
		stamps []string
		want   string // Hold.String(), "" = not held
		scope  string
	}{
		{"nothing set", Maintenance{}, []string{"stamp-a"}, "", ""},
		{"a switch turned off", Maintenance{Stamps: map[string]Switch{"stamp-a": {By: "oncall"}}},
			[]string{"stamp-a"}, "", ""},
		{"another stamp's", Maintenance{Stamps: map[string]Switch{"stamp-c": on("oncall", "patching")}},
			[]string{"stamp-a", "stamp-b"}, "", ""},
		{"the second stamp's", Maintenance{Stamps: map[string]Switch{"stamp-b": on("oncall", "patching")}},
			[]string{"stamp-a", "stamp-b"},
			"the maintenance switch of stamp-b (on since 2026-01-02T03:04:05Z, set by oncall: patching)", "stamp-b"},
		{"global first", Maintenance{Global: on("sre", "region drill"),
			Stamps: map[string]Switch{"stamp-a": on("oncall", "patching")}}, []string{"stamp-a"},
			"the global maintenance switch (on since 2026-01-02T03:04:05Z, set by sre: region drill)", "global"},
		{"global, no stamp asked", Maintenance{Global: on("sre", "region drill")}, nil,
			"the global maintenance switch (on since 2026-01-02T03:04:05Z, set by sre: region drill)", "global"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, held := tt.m.Hold(tt.stamps...)
			if held != (tt.want != "") {
				t.Fatalf("held %v, want %v", held, tt.want != "")
			}
			if !held {
				return
			}
			if h.String() != tt.want || h.Scope() != tt.scope {
				t.Fatalf("hold %q (scope %q), want %q (scope %q)", h.String(), h.Scope(), tt.want, tt.scope)
			}
		})
	}
	if (Maintenance{Stamps: map[string]Switch{"stamp-a": {}}}).AnyStampOn() {
		t.Fatal("a switch turned off is not on")
	}
	if !(Maintenance{Stamps: map[string]Switch{"stamp-a": {}, "stamp-b": on("oncall", "x")}}).AnyStampOn() {
		t.Fatal("stamp-b's switch is on")
	}
}
