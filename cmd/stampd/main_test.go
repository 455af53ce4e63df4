package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/location/locationtest"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/stamp/stamptest"
)

func TestRegisterAndProvision(t *testing.T) {
	loc, err := locationtest.StartLocal(location.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	for _, name := range []string{"stamp-a", "stamp-b"} {
		l, err := stamptest.StartLocal(stamp.Config{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		var out bytes.Buffer
		if err := run([]string{"register", "--insecure", "--location", loc.URL(), "--name", name, "--url", l.URL() + "/"}, &out, &out); err != nil {
			t.Fatalf("register %s: %v\n%s", name, err, out.String())
		}
	}
	args := []string{"provision", "--insecure", "--location", loc.URL(), "--account", "acct", "--partitions", "3", "--primary", "stamp-a", "--secondary", "stamp-b"}
	for i := range 2 { // idempotent
		var out, errOut bytes.Buffer
		if err := run(args, &out, &errOut); err != nil {
			t.Fatalf("provision #%d: %v\n%s", i+1, err, errOut.String())
		}
		if !strings.Contains(errOut.String(), "stampd: WARNING: INSECURE") {
			t.Fatalf("--insecure was not said loudly on stderr: %q", errOut.String())
		}
		var a location.Account
		if err := json.Unmarshal(out.Bytes(), &a); err != nil || a.Primary != "stamp-a" || a.Partitions != 3 {
			t.Fatalf("provision printed %q (%v)", out.String(), err)
		}
	}
	a, err := location.NewClient(loc.URL(), nil).Lookup(context.Background(), "acct")
	if err != nil || strings.HasSuffix(a.PrimaryURL, "/") {
		t.Fatalf("lookup %+v %v (a trailing slash must be trimmed on register)", a, err)
	}

	var out bytes.Buffer
	for _, bad := range [][]string{
		{},
		{"nope"},
		{"provision", "--location", loc.URL(), "--account", "x", "--primary", "stamp-a", "--secondary", "stamp-zzz"},
		{"register", "--location", loc.URL(), "--name", "s"},
		{"serve"},
		{"location", "extra-arg"},
	} {
		if err := run(bad, &out, &out); err == nil {
			t.Errorf("run %q succeeded", bad)
		}
	}
}
