package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/location/locationtest"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/stamp/stamptest"
	"github.com/batonhq/baton/traffic"
)

func TestRunAuditExitStatus(t *testing.T) {
	ctx := context.Background()
	loc, err := locationtest.StartLocal(location.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer loc.Close()
	lc := location.NewClient(loc.URL(), nil)
	var sc []*stamp.Client
	for _, name := range []string{"stamp-a", "stamp-b"} {
		l, err := stamptest.StartLocal(stamp.Config{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := lc.RegisterStamp(ctx, location.Stamp{Name: name, URL: l.URL()}); err != nil {
			t.Fatal(err)
		}
		sc = append(sc, stamp.NewClient(l.URL(), nil))
	}
	if _, err := location.Provision(ctx, lc, sc[0], sc[1], "stamp-a", "stamp-b", "acct", 4); err != nil {
		t.Fatal(err)
	}
	acks := filepath.Join(t.TempDir(), "acks.jsonl")
	var out bytes.Buffer
	err = run([]string{"run", "--insecure", "--location", loc.URL(), "--account", "acct", "--rate", "0", "--workers", "2",
		"--duration", "300ms", "--progress", "0", "--out", acks, "--audit"}, &out, &out)
	if err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "audit PASS") {
		t.Fatalf("no passing audit in:\n%s", out.String())
	}

	out.Reset()
	if err := run([]string{"audit", "--insecure", "--location", loc.URL(), "--account", "acct", "--acks", acks}, &out, &out); err != nil {
		t.Fatalf("audit: %v\n%s", err, out.String())
	}

	// Lose one acknowledged write: the audit must say so and fail.
	f, err := os.Open(acks)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := traffic.ReadAcks(f)
	f.Close()
	if err != nil || len(recs) == 0 {
		t.Fatalf("read acks: %d, %v", len(recs), err)
	}
	if _, err := sc[0].Delete(ctx, "acct", recs[0].Key, 1); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run([]string{"audit", "--insecure", "--location", loc.URL(), "--account", "acct", "--acks", acks}, &out, &out)
	if !errors.Is(err, errFindings) || !strings.Contains(out.String(), "lost:               1") ||
		!strings.Contains(out.String(), recs[0].Key) {
		t.Fatalf("audit after a loss: %v\n%s", err, out.String())
	}

	// An empty ack file proves nothing: a finding (exit status 2), not a pass.
	empty := filepath.Join(t.TempDir(), "empty.jsonl")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run([]string{"audit", "--insecure", "--location", loc.URL(), "--account", "acct", "--acks", empty}, &out, &out)
	if !errors.Is(err, errFindings) || !strings.Contains(err.Error(), "nothing was acknowledged") ||
		!strings.Contains(out.String(), "audit FAIL") {
		t.Fatalf("audit of no acks: %v\n%s", err, out.String())
	}

	// Bad usage is an error, not a finding.
	if err := run([]string{"audit", "--acks", acks}, &out, &out); err == nil || errors.Is(err, errFindings) {
		t.Fatalf("audit without --account: %v", err)
	}
}
