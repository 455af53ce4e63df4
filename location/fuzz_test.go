package location

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// locationRequests are the routes a body is fuzzed into.
var locationRequests = []struct{ method, path string }{
	{"PUT", "/v1/stamps/stamp-a"},
	{"POST", "/v1/accounts"},
	{"POST", "/v1/accounts/acct/move"},
	{"POST", "/v1/accounts/acct/protect"},
	{"PUT", "/v1/accounts/acct/labels"},
	{"PUT", "/v1/maintenance"},
}

// FuzzLocationBodies: a request with any body is answered without an
// internal error or a panic, and the account stays resolvable to one of
// its two stamps.
func FuzzLocationBodies(f *testing.F) {
	for i, s := range []string{
		`{"url":"http://127.0.0.1:7101"}`,
		`{"account":"acct2","partitions":2,"primary":"stamp-a","secondary":"stamp-b"}`,
		`{"from":"stamp-a","to":"stamp-b","expected_epoch":1,"epoch":2,"operation":"op"}`,
		`{"epoch":2}`, `{"labels":{"tier":"0"}}`, `{"stamp":"stamp-a","on":true,"by":"me","reason":"why"}`,
	} {
		f.Add(uint8(i), []byte(s))
	}
	f.Add(uint8(0), []byte(`{"name":"other","url":"ftp://x"}`))
	f.Add(uint8(2), []byte(`{"from":"stamp-a","to":"stamp-a"}`))
	f.Add(uint8(5), []byte(`{"on":true}`))
	srv, err := Open(Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { srv.Close() })
	h := srv.Handler()
	for _, setup := range []struct{ method, path, body string }{
		{"PUT", "/v1/stamps/stamp-a", `{"url":"http://127.0.0.1:7101"}`},
		{"PUT", "/v1/stamps/stamp-b", `{"url":"http://127.0.0.1:7102"}`},
		{"POST", "/v1/accounts", `{"account":"acct","partitions":2,"primary":"stamp-a","secondary":"stamp-b"}`},
	} {
		if code := serveLocation(h, setup.method, setup.path, []byte(setup.body)); code/100 != 2 {
			f.Fatalf("%s %s: %d", setup.method, setup.path, code)
		}
	}
	f.Fuzz(func(t *testing.T, route uint8, body []byte) {
		rq := locationRequests[int(route)%len(locationRequests)]
		if code := serveLocation(h, rq.method, rq.path, body); code >= 500 {
			t.Fatalf("%s %s %q: %d", rq.method, rq.path, body, code)
		}
		a, err := srv.st.lookup("acct")
		if err != nil || (a.Primary != "stamp-a" && a.Primary != "stamp-b") {
			t.Fatalf("after %s %s %q the account is %+v (%v)", rq.method, rq.path, body, a, err)
		}
	})
}

func serveLocation(h http.Handler, method, path string, body []byte) int {
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}
