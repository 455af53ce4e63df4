package location

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/batonhq/baton/internal/auth/authtest"
)

// startAuthLocation serves the location service over TLS with
// authentication, with stamp-a and stamp-b registered and "acct" moved
// from stamp-a to stamp-b and protected at epoch 2 (so that repeating the
// move and the protect answers 200).
func startAuthLocation(t *testing.T, f *authtest.Fixture) (*Server, string) {
	t.Helper()
	srv, err := Open(Config{Auth: f.Authenticator()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	url := f.Serve("location", srv.Handler())
	admin := f.Client("admin")
	for _, step := range []struct{ method, path, body string }{
		{"PUT", "/v1/stamps/stamp-a", `{"url":"https://127.0.0.1:7101"}`},
		{"PUT", "/v1/stamps/stamp-b", `{"url":"https://127.0.0.1:7102"}`},
		{"POST", "/v1/accounts", `{"account":"acct","partitions":2,"primary":"stamp-a","secondary":"stamp-b"}`},
		{"POST", "/v1/accounts/acct/move", `{"from":"stamp-a","to":"stamp-b","expected_epoch":1,"epoch":2}`},
		{"POST", "/v1/accounts/acct/protect", `{"epoch":2}`},
	} {
		if got, body := authtest.Do(t, admin, step.method, url+step.path, step.body); got/100 != 2 {
			t.Fatalf("%s %s: %d %s", step.method, step.path, got, body)
		}
	}
	return srv, url
}

// locationState is everything the routes could change.
func locationState(srv *Server) func() string {
	return func() string {
		stamps, err1 := srv.st.stamps()
		accounts, err2 := srv.st.accounts()
		m, err3 := srv.st.maintenance()
		b, _ := json.Marshal([]any{stamps, accounts, m, err1, err2, err3})
		return string(b)
	}
}

// TestLocationRoutesAuthorize: every route × every kind of caller gets
// exactly 2xx, 401 or 403, and a refused call changes nothing; a stamp's
// node certificate registers that stamp and no other.
func TestLocationRoutesAuthorize(t *testing.T) {
	f := authtest.New(t)
	for _, n := range []string{"location", "stamp-a", "stamp-c"} {
		f.AddNode(n)
	}
	srv, url := startAuthLocation(t, f)
	any, admin, controlOrAdmin := []string{authtest.Anyone}, []string{"admin"}, []string{"control", "admin"}
	routes := []authtest.Route{
		{Method: "GET", Path: "/v1/health", Allowed: any},
		{Method: "GET", Path: "/metrics", Allowed: any},
		{Method: "GET", Path: "/v1/stamps", Allowed: any},
		{Method: "PUT", Path: "/v1/stamps/stamp-a", Body: `{"url":"https://127.0.0.1:7101"}`,
			Allowed: []string{"admin", authtest.Node("stamp-a")}},
		{Method: "POST", Path: "/v1/accounts", Body: `{"account":"new","partitions":1,"primary":"stamp-a","secondary":"stamp-b"}`,
			Allowed: admin, Want: http.StatusCreated},
		{Method: "GET", Path: "/v1/accounts", Allowed: any},
		{Method: "GET", Path: "/v1/accounts/acct", Allowed: any},
		{Method: "GET", Path: "/v1/stamps/stamp-b/accounts", Allowed: any},
		{Method: "GET", Path: "/v1/maintenance", Allowed: any},
		{Method: "POST", Path: "/v1/accounts/acct/move", Body: `{"from":"stamp-a","to":"stamp-b","expected_epoch":1,"epoch":2}`,
			Allowed: controlOrAdmin},
		{Method: "POST", Path: "/v1/accounts/acct/protect", Body: `{"epoch":2}`, Allowed: controlOrAdmin},
		{Method: "PUT", Path: "/v1/accounts/acct/labels", Body: `{"labels":{"tier":"1"}}`, Allowed: admin},
		{Method: "PUT", Path: "/v1/maintenance", Body: `{"on":false}`, Allowed: admin},
	}
	f.Check(t, url, routes, authtest.Callers("stamp-a", "stamp-c"), locationState(srv))
	_, metrics := authtest.Do(t, f.Client("admin"), "GET", url+"/metrics", "")
	for _, want := range []string{
		`baton_location_auth_refusals_total{reason="forbidden",route="POST /v1/accounts/{account}/move"}`,
		`baton_location_auth_refusals_total{reason="forbidden",route="PUT /v1/stamps/{name}"}`,
		`baton_location_auth_refusals_total{reason="unauthenticated",route="GET /v1/accounts"}`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s:\n%s", want, metrics)
		}
	}
}
