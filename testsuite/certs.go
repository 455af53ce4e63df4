package testsuite

import (
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/batonhq/baton/internal/auth"
)

// The harness's client certificates (in Cluster.CertsDir): the worker's,
// the baton CLI's and the tests' own.
const (
	// CertWorker: the worker fences, flushes, promotes and moves (control),
	// creates an account on a wiped stamp when it reprotects (admin), and
	// reads and writes keys in drills and when it rewinds diverged keys
	// (data).
	CertWorker = "worker"
	// CertOperator: the baton CLI reads status and the recovered area
	// (control) and sets maintenance switches (admin).
	CertOperator = "operator"
	// CertTest: the tests provision, write, inspect and strike the stamps:
	// every role.
	CertTest = "test"
)

// NodeWebhook is the node certificate the alert receiver serves TLS with
// (baton webhook --serve-cert's default).
const NodeWebhook = "webhook"

// makeCerts creates the cluster's CA, the node certificates of the
// location service and the stamps, and the client certificates, in
// CertsDir, and the TLS the tests call with.
func (c *Cluster) makeCerts() error {
	c.CertsDir = filepath.Join(c.Opts.Dir, "certs")
	if err := auth.CreateCA(c.CertsDir, auth.CALifetime); err != nil {
		return fmt.Errorf("harness certificates: %w", err)
	}
	for _, n := range []string{"location", StampA, StampB, NodeWebhook} {
		if err := auth.CreateNode(c.CertsDir, n, nil, auth.CertLifetime); err != nil {
			return fmt.Errorf("harness certificates: %w", err)
		}
	}
	for name, roles := range map[string][]auth.Role{
		CertWorker:   {auth.RoleControl, auth.RoleAdmin, auth.RoleData},
		CertOperator: {auth.RoleControl, auth.RoleAdmin},
		CertTest:     auth.Roles,
	} {
		if err := auth.CreateClient(c.CertsDir, name, roles, auth.CertLifetime); err != nil {
			return fmt.Errorf("harness certificates: %w", err)
		}
	}
	var err error
	c.TLS, err = auth.ClientConfig(c.CertsDir, CertTest)
	return err
}

// scheme is the services' URL scheme: https unless Options.Insecure.
func (c *Cluster) scheme() string {
	if c.Opts.Insecure {
		return "http://"
	}
	return "https://"
}

// serverArgs are the flags that make a stampd server secure (its node
// certificate is its name's), or --insecure.
func (c *Cluster) serverArgs() []string {
	if c.Opts.Insecure {
		return []string{"--insecure"}
	}
	return []string{"--certs-dir", c.CertsDir}
}

// clientArgs are the flags that give a worker its certificate, or
// --insecure.
func (c *Cluster) clientArgs(cert string) []string {
	if c.Opts.Insecure {
		return []string{"--insecure"}
	}
	return []string{"--certs-dir", c.CertsDir, "--cert-name", cert}
}

// CLIEnv is the environment the baton CLI (and the webhook receiver) runs
// with against the cluster: Temporal, the location service and the
// operator's certificate.
func (c *Cluster) CLIEnv() []string {
	env := []string{"TEMPORAL_ADDRESS=" + c.Temporal.HostPort, "TEMPORAL_NAMESPACE=default", "BATON_LOCATION=" + c.LocationURL}
	if c.Opts.Insecure {
		return append(env, auth.EnvInsecure+"=true")
	}
	env = append(env, auth.EnvCertsDir+"="+c.CertsDir, auth.EnvCertName+"="+CertOperator)
	return env
}

// HTTP is an HTTP client calling the services as the tests do (every
// role), over TLS unless Options.Insecure.
func (c *Cluster) HTTP() *http.Client {
	if c.Loc == nil { // not yet: only plain HTTP is up
		return http.DefaultClient
	}
	return c.Loc.HTTPClient()
}
