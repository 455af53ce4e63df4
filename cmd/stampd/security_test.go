package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/auth/authtest"
)

// TestServeIsSecureByDefault: without certificates and without --insecure
// neither server starts, and says what to do; contradictory or unsafe
// flags are refused.
func TestServeIsSecureByDefault(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--name", "stamp-a", "--listen", "127.0.0.1:0"},
		{"location", "--listen", "127.0.0.1:0"},
	} {
		var out bytes.Buffer
		err := run(args, &out, &out)
		if err == nil || !strings.Contains(err.Error(), "stampd certs create-ca") || !strings.Contains(err.Error(), "--insecure") {
			t.Errorf("%q: %v, want a refusal naming stampd certs and --insecure", args, err)
		}
	}
	for args, want := range map[string]string{
		"serve --name s --insecure --certs-dir x":              "drop --certs-dir",
		"serve --name s --insecure --fault-error-rate 0.5":     "--enable-faults",
		"certs create-client ops --dir " + t.TempDir():         "--roles is required",
		"certs create-client ops --roles root --dir /nonexist": "unknown role",
		"certs create-node --dir x":                            "NAME comes first",
	} {
		var out bytes.Buffer
		if err := run(strings.Fields(args), &out, &out); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", args, err, want)
		}
	}
}

// TestCertsAndTLSServe: stampd certs writes a CA, a node and a client
// certificate (keys 0600); serve with --certs-dir answers over TLS, a
// caller with the right role and 401 to one without a certificate.
func TestCertsAndTLSServe(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "certs")
	for _, args := range []string{
		"certs create-ca --dir " + dir,
		"certs create-node stamp-a --host stamp-a.example --dir " + dir,
		"certs create-client ops --roles control,data --dir " + dir,
	} {
		var out bytes.Buffer
		if err := run(strings.Fields(args), &out, &out); err != nil {
			t.Fatalf("%s: %v\n%s", args, err, out.String())
		}
	}
	for _, key := range []string{auth.CAKey, "node.stamp-a.key", "client.ops.key"} {
		st, err := os.Stat(filepath.Join(dir, key))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", key, st, err)
		}
	}
	port := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--name", "stamp-a", "--certs-dir", dir, "--listen", "127.0.0.1:" + port}, &bytes.Buffer{})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	f := authtest.In(t, dir)
	ops, anon := f.Client("ops"), f.Client(authtest.None)
	url := "https://127.0.0.1:" + port + "/v1/accounts"
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := anon.Get(url); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("stampd serve --certs-dir did not answer over TLS within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got, body := authtest.Do(t, anon, "GET", url, ""); got != 401 {
		t.Errorf("no certificate: %d %s, want 401", got, body)
	}
	if got, body := authtest.Do(t, ops, "GET", url, ""); got != 200 {
		t.Errorf("control certificate: %d %s, want 200", got, body)
	}
	if got, body := authtest.Do(t, ops, "POST", url, `{}`); got != 403 {
		t.Errorf("control certificate creating an account: %d %s, want 403", got, body)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// TestCertsInitKeepsWhatExists: certs init creates the CA and the named
// certificates once; run again it creates nothing and keeps the CA.
func TestCertsInitKeepsWhatExists(t *testing.T) {
	dir := t.TempDir()
	args := strings.Fields("certs init --dir " + dir + " --node stamp-a --client worker=control,admin,data")
	var out bytes.Buffer
	if err := run(args, &out, &out); err != nil || !strings.Contains(out.String(), "3 certificate(s) created") {
		t.Fatalf("first init: %v\n%s", err, out.String())
	}
	ca, err := os.ReadFile(filepath.Join(dir, auth.CACert))
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(args, &out, &out); err != nil || !strings.Contains(out.String(), "0 certificate(s) created") {
		t.Fatalf("second init: %v\n%s", err, out.String())
	}
	if again, _ := os.ReadFile(filepath.Join(dir, auth.CACert)); !bytes.Equal(ca, again) {
		t.Fatal("a second init replaced the CA")
	}
	if err := run(strings.Fields("certs init --dir "+dir+" --client ops=root"), &out, &out); err == nil ||
		!strings.Contains(err.Error(), "NAME=ROLE") {
		t.Fatalf("a client with an unknown role: %v", err)
	}
}
