package auth

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"
)

// Role is what a caller may do.
type Role string

// Roles, least privilege first.
const (
	// RoleData: key reads and writes of accounts.
	RoleData Role = "data"
	// RoleControl: fence, flush-send, flush-replay, promote, unfence,
	// status (Baton's worker).
	RoleControl Role = "control"
	// RoleReplication: shipments and heartbeats, and only from the stamp
	// registered as the account's peer (a node certificate).
	RoleReplication Role = "replication"
	// RoleAdmin: accounts created and deleted, stamps registered, location
	// moves by hand, labels and maintenance switches.
	RoleAdmin Role = "admin"
	// RoleFaults: fault injection, only on a stamp started with
	// --enable-faults (drills and tests).
	RoleFaults Role = "faults"
)

// Roles lists every role.
var Roles = []Role{RoleData, RoleControl, RoleReplication, RoleAdmin, RoleFaults}

// Valid reports whether r is a role.
func (r Role) Valid() bool {
	for _, x := range Roles {
		if r == x {
			return true
		}
	}
	return false
}

// RoleList is the roles, for messages.
func RoleList() string {
	s := make([]string, len(Roles))
	for i, r := range Roles {
		s[i] = string(r)
	}
	return strings.Join(s, ", ")
}

// ParseRoles reads "control,data".
func ParseRoles(s string) ([]Role, error) {
	var out []Role
	for _, f := range strings.Split(s, ",") {
		r := Role(strings.TrimSpace(f))
		if !r.Valid() {
			return nil, fmt.Errorf("unknown role %q: use %s", r, RoleList())
		}
		out = append(out, r)
	}
	return out, nil
}

// Identity is who calls: a certificate's common name and roles, or a
// token's.
type Identity struct {
	Name  string
	Roles []Role
	// Via is "certificate", "token" or "insecure".
	Via string
}

// Has reports whether the identity holds role r.
func (id Identity) Has(r Role) bool {
	for _, x := range id.Roles {
		if x == r {
			return true
		}
	}
	return false
}

// ServerTLS is a listener's TLS: it serves f's certificate and asks every
// caller for one (checked against f's CA by the Authenticator, so that a
// bad certificate gets a 401 that says why, not a failed handshake).
func ServerTLS(f Files) (*tls.Config, error) {
	cert, pool, err := load(f)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequestClientCert,
		ClientCAs:    pool,
	}, nil
}

// ClientTLS is a caller's TLS: it trusts f's CA and presents f's
// certificate (if f names one: a token-only tool presents none).
func ClientTLS(f Files) (*tls.Config, error) {
	pool, err := caPool(f.CA)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	if f.Cert != "" {
		cert, err := keyPair(f)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func load(f Files) (tls.Certificate, *x509.CertPool, error) {
	cert, err := keyPair(f)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool, err := caPool(f.CA)
	return cert, pool, err
}

func keyPair(f Files) (tls.Certificate, error) {
	keyPEM, err := readPrivate(f.Key)
	if err != nil {
		return tls.Certificate{}, err
	}
	certPEM, err := os.ReadFile(f.Cert)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s: %w", f.Cert, err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate %s with key %s: %w", f.Cert, f.Key, err)
	}
	return cert, nil
}

func caPool(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %s: %w", path, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", path)
	}
	return pool, nil
}

// Tokens are bearer tokens for tools that cannot present a certificate:
// one per line, "NAME ROLE[,ROLE] TOKEN" ('#' starts a comment).
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	id    Identity
	token []byte
}

// LoadTokens reads a tokens file, refusing one that others may read.
func LoadTokens(path string) (*Tokens, error) {
	b, err := readPrivate(path)
	if err != nil {
		return nil, err
	}
	t := &Tokens{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s line %d: want NAME ROLE[,ROLE] TOKEN", path, n)
		}
		roles, err := ParseRoles(f[1])
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		if len(f[2]) < 16 {
			return nil, fmt.Errorf("%s line %d: the token of %s is shorter than 16 characters", path, n, f[0])
		}
		t.entries = append(t.entries, tokenEntry{Identity{Name: f[0], Roles: roles, Via: "token"}, []byte(f[2])})
	}
	return t, sc.Err()
}

// identify finds the token's identity, comparing every entry in constant
// time.
func (t *Tokens) identify(token string) (Identity, bool) {
	var found Identity
	ok := 0
	for _, e := range t.entries {
		if subtle.ConstantTimeCompare(e.token, []byte(token)) == 1 {
			found, ok = e.id, 1
		}
	}
	return found, ok == 1
}

// Authenticator decides who calls and whether they may.
type Authenticator struct {
	// CA checks callers' certificates; nil with Insecure.
	CA *x509.CertPool
	// Tokens, optional.
	Tokens *Tokens
	// Insecure lets every caller in with every role: plaintext, for a
	// test that proves --insecure still works, nothing else.
	Insecure bool
	Log      *zap.Logger
	// Refused hears every refusal (for a metric): the route (the
	// ServeMux pattern that matched, or the path), the reason
	// ("unauthenticated" or "forbidden") and the role that was needed.
	Refused func(route, reason string, role Role)
	// Now is the clock certificates are checked against (nil: time.Now).
	Now func() time.Time
}

// NewAuthenticator checks callers against f's CA and the tokens file (""
// for none).
func NewAuthenticator(f Files, tokensFile string, log *zap.Logger) (*Authenticator, error) {
	pool, err := caPool(f.CA)
	if err != nil {
		return nil, err
	}
	a := &Authenticator{CA: pool, Log: log}
	if tokensFile != "" {
		if a.Tokens, err = LoadTokens(tokensFile); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// errNoCredentials: the caller presented neither a certificate nor a
// token.
var errNoCredentials = errors.New("no credentials: present a client certificate signed by this cluster's CA, " +
	"or a bearer token")

// Identify says who calls, or why that is not known.
func (a *Authenticator) Identify(r *http.Request) (Identity, error) {
	if a.Insecure {
		return Identity{Name: "anyone", Roles: Roles, Via: "insecure"}, nil
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return a.fromCertificate(r.TLS.PeerCertificates)
	}
	if h := r.Header.Get("Authorization"); h != "" {
		token, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || a.Tokens == nil {
			return Identity{}, errors.New("the Authorization header is not a bearer token this service knows")
		}
		id, ok := a.Tokens.identify(strings.TrimSpace(token))
		if !ok {
			return Identity{}, errors.New("unknown bearer token")
		}
		return id, nil
	}
	return Identity{}, errNoCredentials
}

func (a *Authenticator) fromCertificate(chain []*x509.Certificate) (Identity, error) {
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	_, err := leaf.Verify(x509.VerifyOptions{Roots: a.CA, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	var inv x509.CertificateInvalidError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return Identity{}, fmt.Errorf("certificate of %q expired or not yet valid (valid %s to %s)",
			leaf.Subject.CommonName, leaf.NotBefore.Format(time.RFC3339), leaf.NotAfter.Format(time.RFC3339))
	case err != nil:
		return Identity{}, fmt.Errorf("certificate of %q is not signed by this cluster's CA", leaf.Subject.CommonName)
	}
	id := Identity{Name: leaf.Subject.CommonName, Via: "certificate"}
	for _, ou := range leaf.Subject.OrganizationalUnit {
		if r := Role(ou); r.Valid() {
			id.Roles = append(id.Roles, r)
		}
	}
	return id, nil
}

type identityKey struct{}

// IdentityFrom is the caller a Require'd handler serves.
func IdentityFrom(ctx context.Context) (Identity, bool) {
	id, ok := ctx.Value(identityKey{}).(Identity)
	return id, ok
}

// Require serves h to callers holding one of roles (any identity at all
// if none is given): no credentials, or bad ones, get 401; the wrong role
// 403; either way nothing is changed, and the refusal is logged with who
// and what and counted.
func (a *Authenticator) Require(h http.Handler, roles ...Role) http.Handler {
	need := Role(strings.Join(roleStrings(roles), "|"))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, err := a.Identify(r)
		if err != nil {
			a.refuse(w, r, http.StatusUnauthorized, "unauthenticated", need, "", err.Error())
			return
		}
		if len(roles) > 0 && !id.HasAny(roles) {
			a.refuse(w, r, http.StatusForbidden, "forbidden", need, id.Name,
				fmt.Sprintf("%s (%s) may not %s %s: it needs the %s role", id.Name, id.Via, r.Method, r.URL.Path,
					strings.Join(roleStrings(roles), " or ")))
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

func roleStrings(roles []Role) []string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return s
}

// HasAny reports whether the identity holds one of roles.
func (id Identity) HasAny(roles []Role) bool {
	for _, r := range roles {
		if id.Has(r) {
			return true
		}
	}
	return false
}

// Refuse answers 403 for a check a handler makes itself (e.g. a shipment
// from a stamp that is not the account's peer), logged and counted as
// Require's.
func (a *Authenticator) Refuse(w http.ResponseWriter, r *http.Request, role Role, who, msg string) {
	a.refuse(w, r, http.StatusForbidden, "forbidden", role, who, msg)
}

// Route names r's route for logs and metrics: the ServeMux pattern that
// matched it (bounded, unlike paths), or its method and path.
func Route(r *http.Request) string {
	if r.Pattern != "" {
		return r.Pattern
	}
	return r.Method + " " + r.URL.Path
}

func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, status int, code string, role Role,
	who, msg string) {
	if a.Log != nil {
		a.Log.Warn("refused", zap.String("reason", code), zap.String("who", who), zap.String("method", r.Method),
			zap.String("path", r.URL.Path), zap.String("role", string(role)), zap.String("remote", r.RemoteAddr),
			zap.String("why", msg))
	}
	if a.Refused != nil {
		a.Refused(Route(r), code, role)
	}
	w.Header().Set("Content-Type", "application/json")
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="baton"`)
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
}

// The environment a tool reads its client certificate from (when its
// --certs-dir and --cert-name flags are not given).
const (
	EnvCertsDir = "BATON_CERTS_DIR"
	EnvCertName = "BATON_CERT_NAME"
)

// ClientConfig is the TLS of a client presenting the certificate name in
// dir (ClientFiles; "" presents none, trusting dir's CA only). dir ""
// means plaintext: nil, for servers started with --insecure.
func ClientConfig(dir, name string) (*tls.Config, error) {
	if dir == "" {
		return nil, nil
	}
	f := Files{CA: filepath.Join(dir, CACert)}
	if name != "" {
		f = ClientFiles(dir, name)
	}
	cfg, err := ClientTLS(f)
	if err != nil {
		return nil, fmt.Errorf("client certificate %q in %s (stampd certs create-client %s --dir %s): %w",
			name, dir, name, dir, err)
	}
	return cfg, nil
}

// AppClientConfig is ClientConfig for calls to applications' own endpoints
// (a plan's HTTP steps): it trusts the system's CAs as well as dir's, so a
// public endpoint and one signed by the cluster's CA both verify, and it
// presents the certificate to a server that asks for one.
func AppClientConfig(dir, name string) (*tls.Config, error) {
	cfg, err := ClientConfig(dir, name)
	if cfg == nil || err != nil {
		return cfg, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool() // no system roots on this host: the cluster's CA only
	}
	b, err := os.ReadFile(filepath.Join(dir, CACert))
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA certificate %s: no PEM certificate in it", filepath.Join(dir, CACert))
	}
	cfg.RootCAs = pool
	return cfg, nil
}
