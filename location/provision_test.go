package location

import (
	"context"
	"testing"

	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/stamp/stamptest"
)

func TestProvisionIdempotent(t *testing.T) {
	ctx := context.Background()
	_, loc := newTestServer(t, "")
	lc := NewClient(loc.URL, nil)
	clients := map[string]*stamp.Client{}
	for _, name := range []string{"stamp-a", "stamp-b"} {
		l, err := stamptest.StartLocal(stamp.Config{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		clients[name] = stamp.NewClient(l.URL(), nil)
		if err := lc.RegisterStamp(ctx, Stamp{Name: name, URL: l.URL()}); err != nil {
			t.Fatal(err)
		}
	}
	pa, pb := clients["stamp-a"], clients["stamp-b"]
	for i := range 2 {
		a, err := Provision(ctx, lc, pa, pb, "stamp-a", "stamp-b", "acct", 3)
		if err != nil {
			t.Fatalf("provision #%d: %v", i+1, err)
		}
		if a.Primary != "stamp-a" || a.PrimaryURL != pa.Base() || a.SecondaryURL != pb.Base() || a.Epoch != 1 || a.Partitions != 3 {
			t.Fatalf("provision #%d answered %+v", i+1, a)
		}
	}
	for name, want := range map[string]struct {
		role stamp.Role
		peer string
	}{"stamp-a": {stamp.RolePrimary, pb.Base()}, "stamp-b": {stamp.RoleSecondary, pa.Base()}} {
		st, err := clients[name].Status(ctx, "acct", nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Peer != want.peer || len(st.Partitions) != 3 {
			t.Fatalf("%s status %+v", name, st)
		}
		for _, p := range st.Partitions {
			if p.Role != want.role || p.Epoch != 1 {
				t.Fatalf("%s partition %+v, want role %s epoch 1", name, p, want.role)
			}
		}
	}
	// A different spec for the same account is refused, not half-applied.
	if _, err := Provision(ctx, lc, pa, pb, "stamp-a", "stamp-b", "acct", 4); err == nil {
		t.Fatal("provision with other partitions succeeded")
	}
}
