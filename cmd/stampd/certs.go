package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/cli"
)

const certsUsage = `stampd certs creates the certificates of a Baton cluster (docs/SECURITY.md).

Usage:
  stampd certs init          [--node NAME]... [--client NAME=ROLE[,ROLE]]... [--dir DIR]
  stampd certs create-ca     [--dir DIR] [--lifetime D]
  stampd certs create-node   NAME [--host H]... [--dir DIR] [--lifetime D]
  stampd certs create-client NAME --roles ROLE[,ROLE] [--dir DIR] [--lifetime D]

init           the CA and every --node and --client certificate that DIR lacks
               yet (what exists is kept): a cluster's certificates in one step
create-ca      a new CA (ca.crt, ca.key) that signs every certificate below
create-node    a stamp's (or the location service's) certificate: it serves as
               NAME (and every --host) and calls its peers as NAME
create-client  a caller's certificate with roles: data, control, replication,
               admin, faults

Keys are written readable by their owner only.
`

func certs(args []string, stdout, stderr io.Writer) error {
	return cli.Dispatch(args, certsUsage, stdout, stderr, cli.Subcommands{
		"create-ca": func(_ context.Context, args []string) error {
			fs := cli.NewFlagSet("stampd certs", "create-ca", "create-ca [--dir DIR]", stderr)
			dir, lifetime := certFlags(fs, auth.CALifetime)
			if err := cli.Parse(fs, args); err != nil {
				return err
			}
			if err := auth.CreateCA(*dir, *lifetime); err != nil {
				return fmt.Errorf("create-ca: %w", err)
			}
			fmt.Fprintf(stdout, "CA written to %s\n", *dir)
			return nil
		},
		"init":          func(_ context.Context, args []string) error { return initCerts(args, stdout, stderr) },
		"create-node":   func(_ context.Context, args []string) error { return createNode(args, stdout, stderr) },
		"create-client": func(_ context.Context, args []string) error { return createClient(args, stdout, stderr) },
	})
}

// hosts collects repeated --host flags.
type hosts []string

func (h *hosts) String() string     { return strings.Join(*h, ",") }
func (h *hosts) Set(v string) error { *h = append(*h, v); return nil }

func certFlags(fs *flag.FlagSet, lifetime time.Duration) (*string, *time.Duration) {
	return fs.String("dir", "certs", "certificates `dir`ectory"),
		fs.Duration("lifetime", lifetime, "how long the certificate is valid")
}

// nameFirst splits the leading NAME from the flags after it.
func nameFirst(args []string, what string) (string, []string, error) {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		return "", nil, fmt.Errorf("%s: NAME comes first, e.g. stampd certs %s stamp-a", what, what)
	}
	return args[0], args[1:], nil
}

func createNode(args []string, stdout, stderr io.Writer) error {
	name, args, err := nameFirst(args, "create-node")
	if err != nil {
		return err
	}
	fs := cli.NewFlagSet("stampd certs", "create-node", "create-node NAME [--host H]...", stderr)
	dir, lifetime := certFlags(fs, auth.CertLifetime)
	var hs hosts
	fs.Var(&hs, "host", "a `name or address` the node is reached at (repeatable; NAME, localhost and 127.0.0.1 are always in)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if err := auth.CreateNode(*dir, name, hs, *lifetime); err != nil {
		return fmt.Errorf("create-node %s: %w", name, err)
	}
	f := auth.NodeFiles(*dir, name)
	fmt.Fprintf(stdout, "node certificate of %s written to %s (key %s)\n", name, f.Cert, f.Key)
	return nil
}

func createClient(args []string, stdout, stderr io.Writer) error {
	name, args, err := nameFirst(args, "create-client")
	if err != nil {
		return err
	}
	fs := cli.NewFlagSet("stampd certs", "create-client", "create-client NAME --roles ROLE[,ROLE]", stderr)
	dir, lifetime := certFlags(fs, auth.CertLifetime)
	roleList := fs.String("roles", "", "comma-separated `roles`: "+auth.RoleList()+" (required)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	if *roleList == "" {
		return errors.New("create-client: --roles is required: " + auth.RoleList())
	}
	roles, err := auth.ParseRoles(*roleList)
	if err != nil {
		return fmt.Errorf("create-client %s: %w", name, err)
	}
	if err := auth.CreateClient(*dir, name, roles, *lifetime); err != nil {
		return fmt.Errorf("create-client %s: %w", name, err)
	}
	f := auth.ClientFiles(*dir, name)
	fmt.Fprintf(stdout, "client certificate of %s (%s) written to %s (key %s)\n", name, *roleList, f.Cert, f.Key)
	return nil
}

// initCerts creates what dir lacks of the CA and the named certificates.
func initCerts(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("stampd certs", "init", "init [--node NAME]... [--client NAME=ROLE[,ROLE]]...", stderr)
	dir, _ := certFlags(fs, auth.CertLifetime)
	var nodes, clients hosts
	fs.Var(&nodes, "node", "a node certificate `name` to create if missing (repeatable; it serves as that host name)")
	fs.Var(&clients, "client", "a client certificate `NAME=ROLE[,ROLE]` to create if missing (repeatable)")
	if err := cli.Parse(fs, args); err != nil {
		return err
	}
	made := 0
	create := func(f auth.Files, what string, mk func() error) error {
		if _, err := os.Stat(f.Key); err == nil {
			return nil
		}
		if err := mk(); err != nil {
			return fmt.Errorf("init: %s: %w", what, err)
		}
		made++
		fmt.Fprintf(stdout, "created %s (%s)\n", what, f.Cert)
		return nil
	}
	ca := auth.Files{Key: filepath.Join(*dir, auth.CAKey), Cert: filepath.Join(*dir, auth.CACert)}
	if err := create(ca, "the CA", func() error { return auth.CreateCA(*dir, auth.CALifetime) }); err != nil {
		return err
	}
	for _, n := range nodes {
		err := create(auth.NodeFiles(*dir, n), "node "+n, func() error { return auth.CreateNode(*dir, n, nil, auth.CertLifetime) })
		if err != nil {
			return err
		}
	}
	for _, c := range clients {
		name, list, ok := strings.Cut(c, "=")
		roles, err := auth.ParseRoles(list)
		if !ok || err != nil {
			return fmt.Errorf("init: --client %q: want NAME=ROLE[,ROLE] with roles of %s", c, auth.RoleList())
		}
		err = create(auth.ClientFiles(*dir, name), "client "+name, func() error {
			return auth.CreateClient(*dir, name, roles, auth.CertLifetime)
		})
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s: %d certificate(s) created, the others kept\n", *dir, made)
	return nil
}
