package stamp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"
)

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// local is a stamp served on a loopback port. The tests of this package
// cannot use stamptest.Local, which imports it.
type local struct {
	Server *Server
	srv    *http.Server
	url    string
}

// URL is the base URL the stamp serves on.
func (l *local) URL() string { return l.url }

// Close stops serving and closes the stamp.
func (l *local) Close() error {
	l.srv.Close()
	return l.Server.Close()
}

// startLocal opens a stamp and serves it on 127.0.0.1:0 until the test
// ends.
func startLocal(t testing.TB, cfg Config) *local {
	t.Helper()
	cfg.EnableFaults = true // the package's tests strike stamps through /v1/faults
	return serveAt(t, cfg, "127.0.0.1:0")
}

// pair is a primary stamp A and a secondary stamp B for one account.
type pair struct {
	a, b   *local
	ca, cb *Client
	acct   string
	parts  int
}

func newPair(t testing.TB, parts int, cfgA, cfgB Config) *pair {
	t.Helper()
	if cfgA.Name == "" {
		cfgA.Name = "stamp-a"
	}
	if cfgB.Name == "" {
		cfgB.Name = "stamp-b"
	}
	a := startLocal(t, cfgA)
	b := startLocal(t, cfgB)
	p := &pair{a: a, b: b, ca: NewClient(a.URL(), nil), cb: NewClient(b.URL(), nil), acct: "acct-1", parts: parts}
	ctx := context.Background()
	must(t, p.cb.CreateAccount(ctx, AccountSpec{Account: p.acct, Partitions: parts, Role: RoleSecondary, Epoch: 1, Peer: a.URL()}))
	must(t, p.ca.CreateAccount(ctx, AccountSpec{Account: p.acct, Partitions: parts, Role: RolePrimary, Epoch: 1, Peer: b.URL()}))
	return p
}

// raw sends a request and returns status, headers and body.
func raw(t testing.TB, method, url, contentType string, body []byte, hdr map[string]string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	must(t, err)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must(t, err)
	return resp.StatusCode, resp.Header, b
}

func jsonBody(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return b
}

// wantAPIError checks err is (or wraps, as a bulk call's *PartitionErrors
// does) an APIError with status and code.
func wantAPIError(t testing.TB, err error, status int, code string) *APIError {
	t.Helper()
	var ae *APIError
	if !errors.As(err, &ae) {
		t.Fatalf("want API error %d %s, got %v", status, code, err)
	}
	if ae.Status != status || ae.Code != code {
		t.Fatalf("want %d %s, got %d %s: %s", status, code, ae.Status, ae.Code, ae.Message)
	}
	return ae
}

func status(t testing.TB, c *Client, acct string) AccountStatus {
	t.Helper()
	st, err := c.Status(context.Background(), acct, nil)
	must(t, err)
	return st
}

// caughtUp reports whether every partition B replayed what A wrote.
func (p *pair) caughtUp(t testing.TB) bool {
	sa, sb := status(t, p.ca, p.acct), status(t, p.cb, p.acct)
	for i := range sa.Partitions {
		if sb.Partitions[i].LastReplayed != sa.Partitions[i].LastWritten || sa.Partitions[i].LastAcked != sa.Partitions[i].LastWritten {
			return false
		}
	}
	return true
}
