package auth

import (
	"flag"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestClientSecurityHasNoSilentPlaintext: a client calls over TLS with a
// certificate, or in plaintext only with --insecure (said once, loudly);
// without either, or with a URL that contradicts the choice, it refuses
// and says what to pass.
func TestClientSecurityHasNoSilentPlaintext(t *testing.T) {
	c := newCluster(t)
	for _, tc := range []struct {
		name     string
		sec      ClientSecurity
		base     string
		wantTLS  bool
		warned   bool
		errParts []string
	}{
		{name: "certificate", sec: ClientSecurity{Dir: c.dir, Name: "control"}, base: "https://h:1", wantTLS: true},
		{name: "insecure", sec: ClientSecurity{Insecure: true}, base: "http://h:1", warned: true},
		{name: "neither", sec: ClientSecurity{Name: "operator"}, base: "https://h:1",
			errParts: []string{"no client certificate", "--certs-dir", EnvCertsDir, "create-client operator", "--insecure"}},
		{name: "both", sec: ClientSecurity{Dir: c.dir, Name: "control", Insecure: true}, base: "http://h:1",
			errParts: []string{"drop --certs-dir", "or --insecure"}},
		{name: "insecure to https", sec: ClientSecurity{Insecure: true}, base: "https://h:1",
			errParts: []string{"https://h:1", "pass --certs-dir"}},
		{name: "certificate to http", sec: ClientSecurity{Dir: c.dir, Name: "control"}, base: "http://h:1",
			errParts: []string{"http://h:1 is plaintext", "use https://"}},
		{name: "certificate to HTTP", sec: ClientSecurity{Dir: c.dir, Name: "control"}, base: "HTTP://h:1",
			errParts: []string{"HTTP://h:1 is plaintext"}},
		{name: "missing certificate", sec: ClientSecurity{Dir: c.dir, Name: "nobody"}, base: "https://h:1",
			errParts: []string{`client certificate "nobody"`, "create-client nobody"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var warnings []string
			cfg, err := tc.sec.Config(tc.base, func(m string) { warnings = append(warnings, m) })
			if len(tc.errParts) > 0 {
				require.Error(t, err)
				for _, p := range tc.errParts {
					require.Contains(t, err.Error(), p)
				}
				require.Nil(t, cfg)
				require.Empty(t, warnings)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantTLS, cfg != nil)
			if tc.wantTLS {
				require.Len(t, cfg.Certificates, 1, "presents its client certificate")
			}
			if tc.warned {
				require.Equal(t, []string{InsecureWarning}, warnings)
			} else {
				require.Empty(t, warnings)
			}
		})
	}
}

// TestClientSecurityFlagsReadTheEnvironment: the flags' defaults come from
// BATON_CERTS_DIR, BATON_CERT_NAME and BATON_INSECURE.
func TestClientSecurityFlagsReadTheEnvironment(t *testing.T) {
	t.Setenv(EnvCertsDir, "/certs")
	t.Setenv(EnvCertName, "ops")
	t.Setenv(EnvInsecure, "true")
	var sec ClientSecurity
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	sec.Flags(fs, "worker", "control")
	require.NoError(t, fs.Parse(nil))
	require.Equal(t, ClientSecurity{Dir: "/certs", Name: "ops", Insecure: true}, sec)

	t.Setenv(EnvCertName, "")
	t.Setenv(EnvInsecure, "")
	sec = ClientSecurity{}
	fs = flag.NewFlagSet("x", flag.ContinueOnError)
	sec.Flags(fs, "worker", "control")
	require.NoError(t, fs.Parse([]string{"--insecure"}))
	require.Equal(t, ClientSecurity{Dir: "/certs", Name: "worker", Insecure: true}, sec)
}
