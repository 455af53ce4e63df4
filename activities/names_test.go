package activities

import (
	"reflect"
	"slices"
	"testing"
)

// TestActivityNamesAreTheMethods: the activity type names recorded in every
// history are the exported methods of *Activities (the SDK registers a
// struct's methods under their own names); each has its constant, and each
// constant names a method, so a rename cannot slip through.
func TestActivityNamesAreTheMethods(t *testing.T) {
	names := []string{NamePrecheck, NameCatchUp, NameFence, NameFlushSend, NameFlushReplay,
		NamePromote, NameUnfence, NameLossLedger, NameRunCommand, NameCallHTTP,
		NameReprotectPrecheck, NameDemote, NameRestoreDiverged, NameSeed, NameProtect, NameMarkProtected,
		NameDrillReadiness, NameWriteCanaries, NameCheckCanaries, NameDeleteCanaries,
		NameEvacuationPage, NameLookUpAccounts, NameAwaitFailover}
	var methods []string
	typ := reflect.TypeOf(&Activities{})
	for i := range typ.NumMethod() {
		methods = append(methods, typ.Method(i).Name)
	}
	slices.Sort(names)
	slices.Sort(methods)
	if !slices.Equal(names, methods) {
		t.Fatalf("activity name constants %v differ from the methods of *Activities %v", names, methods)
	}
}
