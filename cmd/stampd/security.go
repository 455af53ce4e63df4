package main

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"

	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/auth"
)

// security is how a server of stampd proves who it is and checks its
// callers: a certificates directory (and optional tokens), or an explicit
// --insecure.
type security struct {
	certsDir *string
	tokens   *string
	insecure *bool
}

func securityFlags(fs *flag.FlagSet) *security {
	return &security{
		certsDir: fs.String("certs-dir", "", "certificates `dir`ectory (stampd certs ...): serve TLS and authenticate every caller"),
		tokens: fs.String("tokens", "", "bearer tokens `file` (lines NAME ROLE[,ROLE] TOKEN, mode 600) "+
			"for tools that cannot present a certificate"),
		insecure: fs.Bool("insecure", false, "serve plaintext without authentication: every caller can do everything"),
	}
}

// tls is a server's side: the authenticator and listener TLS of node name,
// or nil and nil with --insecure, which it logs loudly.
func (sec *security) server(log *zap.Logger, cmd, name string) (*auth.Authenticator, *tls.Config, error) {
	switch {
	case *sec.insecure && (*sec.certsDir != "" || *sec.tokens != ""):
		return nil, nil, fmt.Errorf("%s: --insecure turns authentication off; drop --certs-dir and --tokens, or --insecure", cmd)
	case *sec.insecure:
		log.Warn("INSECURE: serving plaintext without authentication: every caller that can reach this port " +
			"can do everything (write, promote, fence, ship, move accounts). Use --certs-dir outside tests.")
		return nil, nil, nil
	case *sec.certsDir == "":
		return nil, nil, fmt.Errorf("%s: no certificates: create them (stampd certs create-ca --dir certs; "+
			"stampd certs create-node %s --dir certs) and pass --certs-dir certs, or pass --insecure for plaintext "+
			"without authentication", cmd, name)
	}
	f := auth.NodeFiles(*sec.certsDir, name)
	tlsCfg, err := auth.ServerTLS(f)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: node certificate of %s: %w", cmd, name, err)
	}
	a, err := auth.NewAuthenticator(f, *sec.tokens, log)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", cmd, err)
	}
	return a, tlsCfg, nil
}

// client is the node's side when it calls others (nil with --insecure).
func (sec *security) client(name string) (*tls.Config, error) {
	if *sec.insecure {
		return nil, nil
	}
	if *sec.certsDir == "" {
		return nil, errors.New("no --certs-dir")
	}
	cfg, err := auth.ClientTLS(auth.NodeFiles(*sec.certsDir, name))
	if err != nil {
		return nil, fmt.Errorf("node certificate of %s as a client: %w", name, err)
	}
	return cfg, nil
}
