package auth

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// cluster is a CA with a node, clients of each role and a token, serving a
// handler that needs the control role.
type cluster struct {
	dir, otherDir string
	srv           *httptest.Server
	auth          *Authenticator
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	c := &cluster{dir: t.TempDir(), otherDir: t.TempDir()}
	require.NoError(t, CreateCA(c.dir, CALifetime))
	require.NoError(t, CreateNode(c.dir, "stamp-a", nil, CertLifetime))
	for _, r := range Roles {
		require.NoError(t, CreateClient(c.dir, string(r), []Role{r}, CertLifetime))
	}
	require.NoError(t, CreateCA(c.otherDir, CALifetime))
	require.NoError(t, CreateClient(c.otherDir, "control", []Role{RoleControl}, CertLifetime))
	tokens := filepath.Join(c.dir, "tokens")
	require.NoError(t, os.WriteFile(tokens, []byte("# tools\nloadgen data s3cr3t-t0ken-0123456789\n"), 0o600))
	var err error
	c.auth, err = NewAuthenticator(NodeFiles(c.dir, "stamp-a"), tokens, nil)
	require.NoError(t, err)
	served, err := ServerTLS(NodeFiles(c.dir, "stamp-a"))
	require.NoError(t, err)
	c.srv = httptest.NewUnstartedServer(c.auth.Require(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := IdentityFrom(r.Context())
		_, _ = w.Write([]byte(id.Name))
	}), RoleControl))
	c.srv.TLS = served
	c.srv.StartTLS()
	t.Cleanup(c.srv.Close)
	return c
}

func (c *cluster) call(t *testing.T, f Files, token string) (int, string) {
	t.Helper()
	cfg, err := ClientTLS(f)
	require.NoError(t, err)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
	req, err := http.NewRequest(http.MethodPost, c.srv.URL+"/v1/control", nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b := make([]byte, 512)
	n, _ := resp.Body.Read(b)
	return resp.StatusCode, string(b[:n])
}

func TestRolesCertificatesAndTokens(t *testing.T) {
	c := newCluster(t)
	ca := Files{CA: filepath.Join(c.dir, CACert)}
	other := ClientFiles(c.otherDir, "control")
	other.CA = ca.CA
	tests := []struct {
		name  string
		files Files
		token string
		want  int
	}{
		{"no credentials", ca, "", http.StatusUnauthorized},
		{"control", ClientFiles(c.dir, "control"), "", http.StatusOK},
		{"data", ClientFiles(c.dir, "data"), "", http.StatusForbidden},
		{"admin", ClientFiles(c.dir, "admin"), "", http.StatusForbidden},
		{"a node", NodeFiles(c.dir, "stamp-a"), "", http.StatusForbidden},
		{"another CA's certificate", other, "", http.StatusUnauthorized},
		{"a data token", ca, "s3cr3t-t0ken-0123456789", http.StatusForbidden},
		{"a wrong token", ca, "s3cr3t-t0ken-0123456780", http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, body := c.call(t, tt.files, tt.token)
			require.Equal(t, tt.want, got, body)
		})
	}
	// The same control certificate, a year and a day later: expired.
	c.auth.Now = func() time.Time { return time.Now().Add(CertLifetime + 24*time.Hour) }
	got, body := c.call(t, ClientFiles(c.dir, "control"), "")
	require.Equal(t, http.StatusUnauthorized, got)
	require.Contains(t, body, "expired")
}

func TestKeysReadableByOthersAreRefused(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, CreateCA(dir, CALifetime))
	require.Error(t, CreateCA(dir, CALifetime), "a second CA would orphan every certificate")
	require.NoError(t, CreateClient(dir, "worker", []Role{RoleControl}, CertLifetime))
	f := ClientFiles(dir, "worker")
	st, err := os.Stat(f.Key)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), st.Mode().Perm())
	require.NoError(t, os.Chmod(f.Key, 0o644))
	_, err = ClientTLS(f)
	require.ErrorContains(t, err, "readable by others")
	require.ErrorContains(t, CreateClient(dir, "bad", []Role{"root"}, CertLifetime), "unknown role")
	require.ErrorContains(t, CreateClient(dir, "none", nil, CertLifetime), "at least one role")
}

func TestPlaintextIsNotServed(t *testing.T) {
	c := newCluster(t)
	// A plaintext request to a TLS listener gets no service.
	resp, err := http.Post("http"+c.srv.URL[len("https"):]+"/v1/control", "application/json", nil)
	if err == nil {
		defer resp.Body.Close()
		require.NotEqual(t, http.StatusOK, resp.StatusCode)
	}
}

// TestClientConfigs: no directory is plaintext; ClientConfig and
// AppClientConfig both reach a server of the cluster's CA as the named
// client; a missing certificate says how to make it.
func TestClientConfigs(t *testing.T) {
	c := newCluster(t)
	cfg, err := ClientConfig("", "control")
	require.NoError(t, err)
	require.Nil(t, cfg)
	for _, mk := range []func(string, string) (*tls.Config, error){ClientConfig, AppClientConfig} {
		cfg, err := mk(c.dir, "control")
		require.NoError(t, err)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := hc.Post(c.srv.URL+"/v1/control", "application/json", nil)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	_, err = ClientConfig(c.dir, "nobody")
	require.ErrorContains(t, err, "stampd certs create-client nobody")
}
