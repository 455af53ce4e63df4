// Command pgrejoin rejoins the old primary of a PostgreSQL shard as a
// standby of the new primary, on the old primary's host, after Baton
// failed the account over (docs/STORES.md). It first reports the WAL the
// old primary has and the new one does not: after an unplanned failover,
// the commits it acknowledged that were never replicated (the WAL range,
// the transactions that committed in it and the rows they inserted into
// each --table); after a planned one, nothing. Then it rewinds the old
// primary with pg_rewind -R, which leaves it ready to start as the new
// primary's standby. Start it (pg_ctlcluster, systemctl or pg_ctl) and run
// baton reprotect ACCOUNT.
//
// Run it as the data directory's owner with the old primary stopped:
//
//	pgrejoin --pgdata /var/lib/postgresql/15/main --new-primary db-b1:5432 \
//	  --password-file /etc/baton/pg-password --ca /etc/baton/ca.crt --table kv
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/batonhq/baton/driver/pgdriver"
	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	cli.Exit("pgrejoin", err)
}

// config is the command line.
type config struct {
	o            pgdriver.RewindOptions
	passwordFile string
	ca           string
	insecure     bool
	output       string
	tables       tableList
}

// tableList is a repeatable --table.
type tableList []string

func (l *tableList) String() string     { return fmt.Sprint(*l) }
func (l *tableList) Set(v string) error { *l = append(*l, v); return nil }

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("pgrejoin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: pgrejoin --pgdata DIR --new-primary HOST:PORT --password-file FILE (--ca FILE | --insecure)
                [--table T]... [--report-only] [-o text|json]

Run on a PostgreSQL old primary's host, as its data directory's owner, the
server stopped: reports the WAL it has that the new primary does not (the
commits it acknowledged that were lost), then rewinds it (pg_rewind -R) into
a standby of the new primary. Start it, then baton reprotect ACCOUNT.

Options:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.o.DataDir, "pgdata", "", "the old primary's data directory (it must be stopped) (required)")
	fs.StringVar(&c.o.Source, "new-primary", "", "the new primary, host:port (required)")
	fs.StringVar(&c.o.User, "user", "baton", "Baton's role on the new primary (a superuser, or one with REPLICATION, "+
		"pg_checkpoint and EXECUTE on pg_ls_dir, pg_stat_file, pg_read_file and pg_read_binary_file)")
	fs.StringVar(&c.passwordFile, "password-file", "", "file (mode 0600) holding the role's password (required)")
	fs.StringVar(&c.ca, "ca", "", "the cluster's CA certificate: the new primary's is verified against it "+
		"(required, unless --insecure)")
	fs.BoolVar(&c.insecure, "insecure", false, "connect to the new primary in plaintext (a test server without TLS)")
	fs.StringVar(&c.o.BinDir, "bindir", "", "directory of pg_rewind, pg_waldump and pg_controldata "+
		"(default: $BATON_PG_BIN, else /usr/lib/postgresql/VERSION/bin of the data directory's version)")
	fs.Var(&c.tables, "table", "a table whose rows the lost transactions inserted are counted (repeatable)")
	fs.StringVar(&c.o.DBName, "dbname", "postgres", "the database of the --table tables")
	fs.StringVar(&c.o.PassFile, "passfile", "", "the password file the rewound standby connects with, named in its "+
		"primary_conninfo (default: none, the server user's ~/.pgpass); the password itself is never written there")
	fs.BoolVar(&c.o.ReportOnly, "report-only", false, "report the diverged WAL and rewind nothing")
	fs.StringVar(&c.output, "o", "text", "output: text (one line) or json (the whole report)")
	if err := cli.Parse(fs, args); err != nil {
		return c, err
	}
	return c, c.check()
}

// check refuses a command line missing what the rejoin needs.
func (c *config) check() error {
	switch {
	case c.o.DataDir == "":
		return errors.New("--pgdata is required: the old primary's data directory")
	case c.o.Source == "":
		return errors.New("--new-primary is required: the new primary's host:port")
	case c.passwordFile == "":
		return errors.New("--password-file is required: the file holding the password of --user")
	case c.ca == "" && !c.insecure:
		return errors.New("--ca is required: the cluster's CA certificate, to verify the new primary " +
			"(or --insecure for a server without TLS)")
	case c.ca != "" && c.insecure:
		return errors.New("--ca and --insecure: give one of them")
	case c.output != "text" && c.output != "json":
		return fmt.Errorf("-o %s: give text or json", c.output)
	}
	return nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parse(args, stderr)
	if err != nil {
		return err
	}
	if c.o.Password, err = auth.ReadSecretFile(c.passwordFile); err != nil {
		return fmt.Errorf("--password-file: %w", err)
	}
	if c.ca != "" {
		if c.o.TLS, err = auth.ClientTLS(auth.Files{CA: c.ca}); err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
		c.o.SSLRootCert = c.ca
	}
	if c.o.BinDir == "" {
		if c.o.BinDir, err = pgdriver.BinDirFor(c.o.DataDir, "pg_rewind", "pg_waldump", "pg_controldata"); err != nil {
			return err
		}
	}
	c.o.Tables = c.tables
	d, err := pgdriver.Rewind(ctx, c.o)
	if d.To == 0 { // no report: nothing was rewound
		return err
	}
	// The report first, even if the rewind failed: pg_rewind may have
	// removed the WAL it was read from.
	if perr := report(stdout, d, c.output); perr != nil || err != nil {
		return errors.Join(err, perr)
	}
	if !c.o.ReportOnly && c.output == "text" {
		fmt.Fprintf(stdout, "rewound %s: start it (it follows %s as a standby), then baton reprotect ACCOUNT\n",
			c.o.DataDir, c.o.Source)
	}
	return nil
}

// report writes the diverged WAL's report: one line, or the whole of it
// in JSON.
func report(w io.Writer, d pgdriver.Diverged, output string) error {
	if output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(d)
	}
	_, err := fmt.Fprintln(w, d)
	return err
}
