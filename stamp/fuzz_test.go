package stamp

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// fuzzStamp is an in-memory stamp with "p" (primary, 4 partitions) and "s"
// (secondary, 4 partitions), both paired with an unreachable peer, serving
// its handler in process.
func fuzzStamp(f *testing.F) (*Server, http.Handler) {
	f.Helper()
	srv, err := Open(Config{Name: "fuzz"})
	must(f, err)
	f.Cleanup(func() { srv.Close() })
	h := srv.Handler()
	for _, spec := range []string{
		`{"account":"p","partitions":4,"role":"primary","epoch":1,"peer":"http://127.0.0.1:1"}`,
		`{"account":"s","partitions":4,"role":"secondary","epoch":1,"peer":"http://127.0.0.1:1"}`,
	} {
		if code := serveFuzz(h, "POST", "/v1/accounts", []byte(spec)); code != http.StatusCreated {
			f.Fatalf("create %s: %d", spec, code)
		}
	}
	return srv, h
}

// serveFuzz serves one request in process, bounded so that a long poll
// cannot stall the fuzzer, and returns its status.
func serveFuzz(h http.Handler, method, path string, body []byte) int {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

func receivedLSNs(srv *Server, account string) []uint64 {
	a, _ := srv.account(account)
	out := make([]uint64, len(a.parts))
	for i, p := range a.parts {
		out[i] = p.status().LastReceived
	}
	return out
}

// FuzzReplicateShipment: whatever a shipment's body holds, the stamp
// answers it without an internal error, a refused shipment receives
// nothing, and an accepted one never moves a partition's log backwards.
func FuzzReplicateShipment(f *testing.F) {
	for _, s := range []string{
		shipment("stamp-a", 1),
		`{"account":"s","from_stamp":"x","partitions":[{"partition":0,"entries":[{"lsn":1,"epoch":1,"op":"put","key":"a","value":"v"},{"lsn":2,"epoch":1,"op":"delete","key":"a"}]}]}`,
		`{"account":"s","partitions":[{"partition":0,"entries":[{"lsn":5,"epoch":1,"op":"put","key":"a"}]}]}`,
		`{"account":"s","partitions":[{"partition":9,"entries":[]}]}`,
		`{"account":"s","partitions":[{"partition":1},{"partition":1}]}`,
		`{"account":"p","partitions":[{"partition":0,"entries":[{"lsn":1,"epoch":1,"op":"put","key":"a"}]}]}`,
		`{"account":"s","sent_at":"2026-01-01T00:00:00Z","written":{"0":7}}`,
		`{"account":"s","partitions":[{"partition":0,"entries":[{"lsn":1,"epoch":0,"op":"x","key":""}]}]}`,
		``, `{}`, `[]`, `{"account":"s","extra":1}`,
	} {
		f.Add([]byte(s))
	}
	srv, h := fuzzStamp(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		before := receivedLSNs(srv, "s")
		code := serveFuzz(h, "POST", "/v1/internal/replicate", body)
		after := receivedLSNs(srv, "s")
		if code >= 500 {
			t.Fatalf("shipment %q: %d", body, code)
		}
		for i := range before {
			if code != http.StatusOK && after[i] != before[i] {
				t.Fatalf("refused shipment (%d) %q moved partition %d from %d to %d", code, body, i, before[i], after[i])
			}
			if after[i] < before[i] {
				t.Fatalf("shipment %q moved partition %d back from %d to %d", body, i, before[i], after[i])
			}
		}
	})
}

// stampRequests are the data and control routes a body is fuzzed into.
var stampRequests = []struct{ method, path string }{
	{"PUT", "/v1/accounts/p/keys/k"},
	{"POST", "/v1/accounts/p/batch"},
	{"POST", "/v1/accounts/p/read"},
	{"POST", "/v1/accounts/s/restore"},
	{"POST", "/v1/accounts"},
	{"POST", "/v1/accounts/p/control/" + CtlFence},
	{"POST", "/v1/accounts/p/control/" + CtlUnfence},
	{"POST", "/v1/accounts/s/control/" + CtlPromote},
	{"POST", "/v1/accounts/s/control/flush-replay"},
	{"POST", "/v1/accounts/p/partitions/1/" + CtlFence},
	{"POST", "/v1/accounts/s/partitions/2/" + CtlDemote},
	{"POST", "/v1/internal/heartbeats"},
}

// FuzzStampRequestBodies: a data or control request with any body is
// answered without an internal error (5xx other than 503, which an
// unreachable peer earns) and without a panic.
func FuzzStampRequestBodies(f *testing.F) {
	for i, s := range []string{
		`{"value":"v"}`, `{"ops":[{"op":"put","key":"a","value":"1"},{"op":"delete","key":"b"}]}`,
		`{"keys":["a","b"]}`, `{"values":[{"key":"a","value":"v","lsn":1},{"key":"b","deleted":true}]}`,
		`{"account":"n","partitions":2,"role":"secondary","epoch":1}`, `{"all":true}`, `{"partitions":[0,1],"epoch":1}`,
		`{"all":true,"epoch":2}`, `{"all":true,"targets":{"0":3},"wait_ms":50}`, `{}`, `{"epoch":3}`,
		`{"from_stamp":"x","accounts":[{"account":"s","written":{"0":1},"sent_at":"2026-01-01T00:00:00Z"}]}`,
	} {
		f.Add(uint8(i), []byte(s))
	}
	f.Add(uint8(1), []byte(`{"ops":[`))
	f.Add(uint8(5), []byte(`{"partitions":[99]}`))
	_, h := fuzzStamp(f)
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rq := stampRequests[int(route)%len(stampRequests)]
		if code := serveFuzz(h, rq.method, rq.path, body); code >= 500 && code != http.StatusServiceUnavailable {
			t.Fatalf("%s %s %q: %d", rq.method, rq.path, body, code)
		}
	})
}
