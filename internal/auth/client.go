package auth

import (
	"crypto/tls"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// EnvInsecure set to true is a client's --insecure.
const EnvInsecure = "BATON_INSECURE"

// InsecureWarning is what every client logs at start with --insecure.
const InsecureWarning = "INSECURE: calling the location service, the stamps and the stores' servers in plaintext " +
	"without a certificate: anyone on the path can read and change what is sent, passwords included; " +
	"use --certs-dir outside tests"

// ClientSecurity is how a tool (baton, the worker, load, stampd's admin
// commands) calls the location service and the stamps: presenting the
// client certificate Name from Dir, or, only when Insecure says so,
// plaintext. Neither is an error: there is no silent plaintext.
type ClientSecurity struct {
	Dir, Name string
	Insecure  bool
}

// flagSet is what ClientSecurity needs of a flag set: both the standard
// library's and cobra's (pflag) have it.
type flagSet interface {
	StringVar(p *string, name, value, usage string)
	BoolVar(p *bool, name string, value bool, usage string)
}

// Flags declares --certs-dir, --cert-name (defaultName unless the
// environment names one) and --insecure on fs, the same in every program.
func (c *ClientSecurity) Flags(fs flagSet, defaultName, roles string) {
	fs.StringVar(&c.Dir, "certs-dir", os.Getenv(EnvCertsDir),
		"certificates directory: call the location service and the stamps over TLS with a client certificate (env "+
			EnvCertsDir+"; stampd certs create-client NAME --dir DIR makes one)")
	name := os.Getenv(EnvCertName)
	if name == "" {
		name = defaultName
	}
	fs.StringVar(&c.Name, "cert-name", name, "client certificate name in --certs-dir, with the "+roles+
		" role(s) (env "+EnvCertName+")")
	insecure, _ := strconv.ParseBool(os.Getenv(EnvInsecure))
	fs.BoolVar(&c.Insecure, "insecure", insecure, "call the services in plaintext without a certificate, "+
		"for services started with --insecure (env "+EnvInsecure+"=true)")
}

// Config is the TLS of calls to the service at base (checked against it:
// https with a certificate, http with --insecure): the client
// certificate, or nil with Insecure, which it tells warn first. Without
// either it is an error saying what to pass.
func (c ClientSecurity) Config(base string, warn func(string)) (*tls.Config, error) {
	scheme, _, _ := strings.Cut(strings.ToLower(base), "://")
	switch {
	case c.Insecure && c.Dir != "":
		return nil, fmt.Errorf("--insecure calls in plaintext without a certificate: drop --certs-dir (%s), or --insecure", EnvCertsDir)
	case c.Insecure && scheme == "https":
		return nil, fmt.Errorf("--insecure with %s: a service started with --insecure is http://; "+
			"for https:// pass --certs-dir instead of --insecure", base)
	case c.Insecure:
		warn(InsecureWarning)
		return nil, nil
	case c.Dir == "":
		return nil, fmt.Errorf("no client certificate: pass --certs-dir DIR (env %s; stampd certs create-client %s --dir DIR makes one), "+
			"or --insecure (env %s=true) for services started with --insecure", EnvCertsDir, c.Name, EnvInsecure)
	case scheme == "http":
		return nil, fmt.Errorf("%s is plaintext but a client certificate is given: use https://, "+
			"or --insecure instead of --certs-dir for a service started with --insecure", base)
	}
	return ClientConfig(c.Dir, c.Name)
}
