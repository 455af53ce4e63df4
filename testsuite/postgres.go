package testsuite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/batonhq/baton/driver/pgdriver"
)

// ErrNoPostgres: the PostgreSQL server binaries (initdb, postgres,
// pg_isready) are not installed. On Debian: apt-get install postgresql.
var ErrNoPostgres = errors.New("PostgreSQL server binaries (initdb, postgres, pg_isready) not found: apt-get install postgresql, or set BATON_PG_BIN to their directory")

// PostgresBinDir finds the directory of PostgreSQL's server binaries
// (pgdriver.FindBinDir).
func PostgresBinDir() (string, error) {
	d, err := pgdriver.FindBinDir("initdb", "postgres", "pg_isready")
	if err != nil {
		return "", fmt.Errorf("%w (%v)", ErrNoPostgres, err)
	}
	return d, nil
}

// PostgresOptions configure a throwaway PostgreSQL server.
type PostgresOptions struct {
	// Dir receives the server's log (postgres.log). The data directory is
	// a fresh directory under the system temp dir, so that a non-root user
	// can own it; Stop removes it.
	Dir string
	// User and Password of the superuser that initdb creates (default
	// temporal/temporal). Connections from 127.0.0.1 are trusted.
	User, Password string
	// NonDurable turns fsync, full_page_writes and synchronous_commit off
	// (and initdb --no-sync): faster, but a crash of the machine can lose
	// or corrupt committed data. For quick experiments only, never what
	// production runs; the default is PostgreSQL's durable defaults.
	NonDurable bool
}

// Postgres is a running PostgreSQL server on 127.0.0.1, made by initdb for
// one harness cluster. When the harness runs as root (CI, containers) the
// server runs as the postgres user (or nobody), since PostgreSQL refuses to
// run as root.
type Postgres struct {
	*Process
	BinDir   string
	DataDir  string
	Host     string // 127.0.0.1
	Port     int
	User     string
	Password string
	// NonDurable: started with PostgresOptions.NonDurable.
	NonDurable bool
}

// Mode names the durability settings it runs with, for people to read.
func (pg *Postgres) Mode() string {
	if pg.NonDurable {
		return "NON-DURABLE: fsync, full_page_writes and synchronous_commit off; not production"
	}
	return "durable: PostgreSQL's defaults, fsync, full_page_writes and synchronous_commit on"
}

// Addr is host:port.
func (pg *Postgres) Addr() string { return addr(pg.Port) }

// StartPostgres initializes a data directory and starts PostgreSQL bound to
// 127.0.0.1 on a free port, and waits until it accepts connections.
func StartPostgres(ctx context.Context, o PostgresOptions) (_ *Postgres, err error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	if o.User == "" {
		o.User, o.Password = "temporal", "temporal"
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	data, err := os.MkdirTemp("", "baton-pg-")
	if err != nil {
		return nil, fmt.Errorf("create the PostgreSQL data directory: %w", err)
	}
	// On the list that Cleanup removes (a signal), until Stop removes it.
	if !trackDir(data) {
		_ = os.RemoveAll(data)
		return nil, ErrCleanedUp
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(data)
			untrackDir(data)
		}
	}()
	if cred != nil {
		if err := os.Chown(data, int(cred.Uid), int(cred.Gid)); err != nil {
			return nil, fmt.Errorf("give %s to the postgres user: %w", data, err)
		}
	}
	initArgs := []string{"-D", data, "-U", o.User, "--auth=trust", "-E", "UTF8", "--locale=C"}
	if o.NonDurable {
		initArgs = append(initArgs, "--no-sync")
	}
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), initArgs...)
	initdb.Dir = os.TempDir() // the caller's directory may be closed to the postgres user
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb %s: %w\n%s", data, err, out)
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	pg := &Postgres{BinDir: bin, DataDir: data, Host: "127.0.0.1", Port: port, User: o.User, Password: o.Password, NonDurable: o.NonDurable}
	args := []string{"-D", data, "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-k", data,
		// Room for every service's connection pool.
		"-c", "max_connections=300", "-c", "shared_buffers=128MB"}
	if o.NonDurable {
		args = append(args, "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off")
	}
	// SIGINT is PostgreSQL's fast shutdown: active connections are closed.
	pg.Process = &Process{Name: "postgres", Path: filepath.Join(bin, "postgres"), Log: logPath(o.Dir, "postgres"), Credential: cred, WorkDir: os.TempDir(),
		Args: args, StopSignal: syscall.SIGINT}
	if err := pg.Start(); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = Poll(wctx, 100*time.Millisecond, func() (bool, error) {
		if !pg.Running() {
			return false, fmt.Errorf("postgres exited: see %s", pg.Log)
		}
		return exec.CommandContext(wctx, filepath.Join(bin, "pg_isready"), "-q", "-h", pg.Host, "-p", strconv.Itoa(port), "-U", o.User).Run() == nil, nil
	})
	if err != nil {
		pg.Kill()
		return nil, fmt.Errorf("postgres on %s not ready: %w", pg.Addr(), err)
	}
	return pg, nil
}

// Setting is the value of a server setting as the server reports it
// (SHOW name), read with psql.
func (pg *Postgres) Setting(ctx context.Context, name string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(pg.BinDir, "psql"), "-X", "-A", "-t",
		"-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pg.User, "-d", "postgres", "-c", "SHOW "+name)
	cmd.Dir = os.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql SHOW %s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// Stop stops the server (fast shutdown, SIGKILL after grace) and removes
// its data directory.
func (pg *Postgres) Stop(grace time.Duration) {
	pg.Process.Stop(grace)
	_ = os.RemoveAll(pg.DataDir)
	untrackDir(pg.DataDir)
}

// postgresCredential is who runs PostgreSQL: nil (the current user) unless
// we are root, then the postgres user Debian's package creates, or nobody.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
	}
	return nil, errors.New("running as root, and neither a postgres nor a nobody user exists to run PostgreSQL as (it refuses root)")
}
