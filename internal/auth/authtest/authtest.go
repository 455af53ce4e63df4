// Package authtest makes a cluster's certificates in a test's temporary
// directory and the callers that tables of routes × identities call with:
// no credentials, a client certificate for each role, node certificates,
// a certificate from another CA and an expired one.
package authtest

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/auth"
)

// Caller names that are not a role: the identities every route refuses
// with 401.
const (
	None    = "none"     // no certificate at all
	OtherCA = "other-ca" // a certificate with every role, from another CA
	Expired = "expired"  // a certificate with every role, expired
)

// Node names the caller presenting the node certificate of stamp name.
func Node(name string) string { return "node:" + name }

// Unauthenticated reports whether caller is refused 401 everywhere.
func Unauthenticated(caller string) bool {
	return caller == None || caller == OtherCA || caller == Expired
}

// Fixture is a CA in a temporary directory and its certificates.
type Fixture struct {
	Dir   string
	other string // another CA's directory
	t     testing.TB
}

// New creates a CA, a client certificate per role, another CA's
// certificate and an expired one.
func New(t testing.TB) *Fixture {
	t.Helper()
	f := &Fixture{Dir: t.TempDir(), t: t}
	f.must(auth.CreateCA(f.Dir, time.Hour))
	for _, r := range auth.Roles {
		f.must(auth.CreateClient(f.Dir, string(r), []auth.Role{r}, time.Hour))
	}
	f.must(auth.CreateClient(f.Dir, Expired, auth.Roles, -30*time.Minute))
	f.other = t.TempDir()
	f.must(auth.CreateCA(f.other, time.Hour))
	f.must(auth.CreateClient(f.other, OtherCA, auth.Roles, time.Hour))
	return f
}

// In is a fixture over the certificates already in dir (stampd certs made
// them): only its roles' and nodes' callers, and None, are there.
func In(t testing.TB, dir string) *Fixture { return &Fixture{Dir: dir, t: t} }

func (f *Fixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// AddNode creates the node certificate of name.
func (f *Fixture) AddNode(name string) auth.Files {
	f.t.Helper()
	f.must(auth.CreateNode(f.Dir, name, nil, time.Hour))
	return auth.NodeFiles(f.Dir, name)
}

// AddClient creates the client certificate of name with roles.
func (f *Fixture) AddClient(name string, roles ...auth.Role) {
	f.t.Helper()
	f.must(auth.CreateClient(f.Dir, name, roles, time.Hour))
}

// Authenticator checks callers against the fixture's CA.
func (f *Fixture) Authenticator() *auth.Authenticator {
	f.t.Helper()
	a, err := auth.NewAuthenticator(auth.Files{CA: f.caFile()}, "", zap.NewNop())
	f.must(err)
	return a
}

func (f *Fixture) caFile() string { return auth.NodeFiles(f.Dir, "").CA }

// Serve serves h over TLS with node's certificate (AddNode it first) until
// the test ends, and returns its base URL.
func (f *Fixture) Serve(node string, h http.Handler) string {
	f.t.Helper()
	cfg, err := auth.ServerTLS(auth.NodeFiles(f.Dir, node))
	f.must(err)
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	srv.StartTLS()
	f.t.Cleanup(srv.Close)
	return srv.URL
}

// TLS is the client side of caller: a role's name, Node(name), None,
// OtherCA or Expired.
func (f *Fixture) TLS(caller string) *tls.Config {
	f.t.Helper()
	files := auth.Files{CA: f.caFile()}
	switch {
	case caller == None:
	case caller == OtherCA:
		// another CA's certificate, presented to a server of this CA
		o := auth.ClientFiles(f.other, OtherCA)
		files.Cert, files.Key = o.Cert, o.Key
	case strings.HasPrefix(caller, "node:"):
		n := auth.NodeFiles(f.Dir, strings.TrimPrefix(caller, "node:"))
		files.Cert, files.Key = n.Cert, n.Key
	default:
		c := auth.ClientFiles(f.Dir, caller)
		files.Cert, files.Key = c.Cert, c.Key
	}
	cfg, err := auth.ClientTLS(files)
	f.must(err)
	return cfg
}

// Client is an HTTP client calling as caller.
func (f *Fixture) Client(caller string) *http.Client {
	f.t.Helper()
	return &http.Client{Transport: &http.Transport{TLSClientConfig: f.TLS(caller)}, Timeout: 10 * time.Second}
}

// Callers is every identity of a route table: no credentials, each role,
// the node certificates of nodes (AddNode them first), another CA's and an
// expired certificate.
func Callers(nodes ...string) []string {
	out := []string{None, OtherCA, Expired}
	for _, r := range auth.Roles {
		out = append(out, string(r))
	}
	for _, n := range nodes {
		out = append(out, Node(n))
	}
	return out
}

// Do calls method url with body (JSON, "" for none) as hc and returns the
// status and answer.
func Do(t testing.TB, hc *http.Client, method, url, body string) (int, string) {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Anyone in Route.Allowed lets every authenticated caller in.
const Anyone = "*"

// Route is one row of a route table: how it is called and who may.
type Route struct {
	Method, Path, Body string
	// Allowed callers get Want (default 200); the others 401 if
	// Unauthenticated, else 403.
	Allowed []string
	Want    int
	// Off, when set, is every caller's answer: a route that is not served.
	Off int
}

// want is what caller should get from rt.
func (rt Route) want(caller string) int {
	switch {
	case rt.Off != 0:
		return rt.Off
	case Unauthenticated(caller):
		return http.StatusUnauthorized
	}
	for _, a := range rt.Allowed {
		if a == caller || a == Anyone {
			if rt.Want != 0 {
				return rt.Want
			}
			return http.StatusOK
		}
	}
	return http.StatusForbidden
}

// Check calls every route at base as every caller and checks the exact
// status, and that state (what the routes could change) is the same after
// every refusal as before it.
func (f *Fixture) Check(t *testing.T, base string, routes []Route, callers []string, state func() string) {
	t.Helper()
	clients := map[string]*http.Client{}
	for _, c := range callers {
		clients[c] = f.Client(c)
	}
	for _, rt := range routes {
		for _, c := range callers {
			want := rt.want(c)
			before := state()
			got, body := Do(t, clients[c], rt.Method, base+rt.Path, rt.Body)
			if got != want {
				t.Errorf("%s %s as %s: got %d, want %d: %s", rt.Method, rt.Path, c, got, want, body)
			}
			if got >= 400 {
				if after := state(); after != before {
					t.Errorf("%s %s as %s answered %d but changed the state:\nbefore %s\nafter  %s",
						rt.Method, rt.Path, c, got, before, after)
				}
			}
		}
	}
}
