package main

import (
	"flag"
	"os"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/location"
)

// locationFlags declares --location and the client certificate that load
// calls it and the stamps with; the func returned makes the client.
func locationFlags(fs *flag.FlagSet) func() (*location.Client, error) {
	loc := fs.String("location", "http://127.0.0.1:7100", "location service base `URL`")
	dir := fs.String("certs-dir", os.Getenv(auth.EnvCertsDir), "certificates `dir`ectory: TLS with a client certificate "+
		"(env "+auth.EnvCertsDir+"; empty: plaintext, for services started with --insecure)")
	name := fs.String("cert-name", envOr(auth.EnvCertName, "load"),
		"client certificate `name` in --certs-dir, with the data role (env "+auth.EnvCertName+")")
	return func() (*location.Client, error) { return location.Dial(*loc, *dir, *name) }
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
