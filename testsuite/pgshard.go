package testsuite

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/batonhq/baton/driver/pgdriver"
	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/traffic"
)

// PGShardOptions start one PostgreSQL shard: a primary and its streaming
// standby, each its own server on 127.0.0.1.
type PGShardOptions struct {
	// Name names the servers' logs and node certificate (created in
	// CertsDir, whose CA clients verify the servers against).
	Name, Dir, CertsDir string
	// Password is the baton role's (a superuser: Baton's driver and the
	// standby's replication) and the app role's (the application's, which
	// a fence shuts out); it travels in environment variables and files,
	// never on a command line.
	Password string
}

// PGServer is one PostgreSQL server of a shard.
type PGServer struct {
	*Process
	BinDir, DataDir string
	Port            int
	Addr            string
	cred            *syscall.Credential
}

// PGShard is a primary and its standby. The servers accept TLS only from
// the network (scram-sha-256 passwords; hostssl in pg_hba.conf), keep
// data checksums (for pg_rewind) and PostgreSQL's durable defaults.
type PGShard struct {
	Primary, Standby *PGServer
}

// The roles of a shard: Baton's (superuser) and the application's.
const (
	PGBatonRole = "baton"
	PGAppRole   = "app"
)

// PGTable is the table the application writes (k text primary key, v).
const PGTable = traffic.PGTable

// StartPGShard initializes a primary, creates the app role and table,
// clones a standby from it with pg_basebackup and starts both.
func StartPGShard(ctx context.Context, o PGShardOptions) (_ *PGShard, err error) {
	bin, err := PostgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	if err := auth.CreateNode(o.CertsDir, o.Name, nil, auth.CertLifetime); err != nil {
		return nil, err
	}
	sh := &PGShard{}
	defer func() {
		if err != nil {
			sh.Stop()
		}
	}()
	if sh.Primary, err = newPGServer(bin, cred); err != nil {
		return sh, err
	}
	if err := sh.Primary.initdb(ctx, o); err != nil {
		return sh, err
	}
	if err := sh.Primary.start(ctx, o, "primary"); err != nil {
		return sh, err
	}
	if err := createApp(ctx, sh.Primary, o); err != nil {
		return sh, err
	}
	if sh.Standby, err = newPGServer(bin, cred); err != nil {
		return sh, err
	}
	if err := sh.Standby.baseBackup(ctx, sh.Primary, o); err != nil {
		return sh, err
	}
	if err := sh.Standby.start(ctx, o, "standby"); err != nil {
		return sh, err
	}
	return sh, nil
}

// Stop stops both servers and removes their data.
func (sh *PGShard) Stop() {
	for _, s := range []*PGServer{sh.Primary, sh.Standby} {
		if s != nil {
			s.stop()
		}
	}
}

func newPGServer(bin string, cred *syscall.Credential) (*PGServer, error) {
	data, err := os.MkdirTemp(pgBase(cred), "baton-pgshard-")
	if err != nil {
		return nil, err
	}
	if !trackDir(data) {
		_ = os.RemoveAll(data)
		return nil, ErrCleanedUp
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	s := &PGServer{BinDir: bin, DataDir: data, Port: port, Addr: addr(port), cred: cred}
	if err := os.Mkdir(s.sockDir(), 0o700); err != nil {
		return nil, err
	}
	if !trackDir(s.sockDir()) {
		return nil, ErrCleanedUp
	}
	return s, errors.Join(s.chown(data), s.chown(s.sockDir()))
}

// passFile holds the password a rewound standby connects to its primary
// with (outside its data directory, like sockDir).
func (s *PGServer) passFile() string { return s.DataDir + ".pgpass" }

// sockDir holds the server's Unix socket: not in its data directory,
// which pg_rewind copies.
func (s *PGServer) sockDir() string { return s.DataDir + ".sock" }

func (s *PGServer) chown(path string) error {
	if s.cred == nil {
		return nil
	}
	return os.Chown(path, int(s.cred.Uid), int(s.cred.Gid))
}

// run runs a PostgreSQL program as the server's user, with env.
func (s *PGServer) run(ctx context.Context, env []string, name string, args ...string) error {
	cmd := s.command(ctx, name, args...)
	cmd.Env = append(cmd.Env, env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, out)
	}
	return nil
}

// initdb makes the primary's data directory: the baton superuser, data
// checksums, TLS with the node certificate, pg_hba.conf that takes
// passwords over TLS only.
func (s *PGServer) initdb(ctx context.Context, o PGShardOptions) error {
	pw := filepath.Join(s.DataDir, "..", filepath.Base(s.DataDir)+".pw")
	if err := s.writeFile(pw, o.Password+"\n"); err != nil {
		return err
	}
	defer os.Remove(pw)
	if err := s.run(ctx, nil, "initdb", "-D", s.DataDir, "-U", PGBatonRole, "--pwfile="+pw, "--auth-local=trust",
		"--auth-host=scram-sha-256", "--data-checksums", "-E", "UTF8", "--locale=C"); err != nil {
		return err
	}
	node := auth.NodeFiles(o.CertsDir, o.Name)
	for src, dst := range map[string]string{node.Cert: "server.crt", node.Key: "server.key", node.CA: "ca.crt"} {
		b, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := s.writeFile(filepath.Join(s.DataDir, dst), string(b)); err != nil {
			return err
		}
	}
	hba := "local all all trust\nlocal replication all trust\n" +
		"hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl replication all 127.0.0.1/32 scram-sha-256\n"
	conf := "listen_addresses = '127.0.0.1'\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n" +
		"ssl_ca_file = 'ca.crt'\nwal_level = replica\nmax_wal_senders = 10\nwal_keep_size = '256MB'\nhot_standby = on\n" +
		"max_connections = 100\nshared_buffers = '32MB'\n"
	if err := s.writeFile(filepath.Join(s.DataDir, "pg_hba.conf"), hba); err != nil {
		return err
	}
	f, err := os.OpenFile(filepath.Join(s.DataDir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	return errors.Join(err, f.Close())
}

// writeFile writes a file only the server's user reads.
func (s *PGServer) writeFile(path, content string) error {
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return err
	}
	return s.chown(path)
}

// start starts the server and waits until it answers.
func (s *PGServer) start(ctx context.Context, o PGShardOptions, role string) error {
	name := fmt.Sprintf("pg-%s-%s", o.Name, role)
	s.Process = &Process{Name: name, Path: filepath.Join(s.BinDir, "postgres"), Log: logPath(o.Dir, name),
		Credential: s.cred, WorkDir: pgBase(s.cred), StopSignal: syscall.SIGINT, Env: []string{"HOME=" + pgBase(s.cred)},
		Args: []string{"-D", s.DataDir, "-p", strconv.Itoa(s.Port), "-k", s.sockDir()}}
	return s.restart(ctx)
}

// restart starts the server's process (again) and waits until it answers.
func (s *PGServer) restart(ctx context.Context) error {
	if err := s.Process.Start(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err := Poll(wctx, 50*time.Millisecond, func() (bool, error) {
		if !s.Running() {
			return false, fmt.Errorf("%s exited: see %s", s.Name, s.Log)
		}
		return exec.CommandContext(wctx, filepath.Join(s.BinDir, "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
			strconv.Itoa(s.Port)).Run() == nil, nil
	})
	if err != nil {
		return fmt.Errorf("%s not ready: %w", s.Name, err)
	}
	return nil
}

func (s *PGServer) stop() {
	if s.Process != nil {
		s.Process.Stop(30 * time.Second)
	}
	_ = os.RemoveAll(s.DataDir)
	_ = os.RemoveAll(s.sockDir())
	_ = os.Remove(s.passFile())
	untrackDir(s.passFile())
	untrackDir(s.DataDir)
	untrackDir(s.sockDir())
}

// baseBackup clones the standby's data directory from primary over TLS
// (pg_basebackup -R: standby.signal and primary_conninfo).
func (s *PGServer) baseBackup(ctx context.Context, primary *PGServer, o PGShardOptions) error {
	return s.run(ctx, []string{"PGPASSWORD=" + o.Password, "PGSSLMODE=require"}, "pg_basebackup", "-h", "127.0.0.1",
		"-p", strconv.Itoa(primary.Port), "-U", PGBatonRole, "-D", s.DataDir, "-R", "-X", "stream", "-c", "fast")
}

// RejoinAsStandbyOf is what an operator does on the old primary's host
// after a failover: stop it (if a crash did not), report the WAL it has
// that the new primary does not and rewind it (pgdriver.Rewind: pg_waldump,
// then pg_rewind -R), and start it as the new primary's standby. The
// report counts the rows the lost transactions inserted into PGTable.
func (s *PGServer) RejoinAsStandbyOf(ctx context.Context, primary *PGServer, password string, tlsCfg *tls.Config) (pgdriver.Diverged, error) {
	s.Process.Stop(30 * time.Second)
	if !trackDir(s.passFile()) { // removed by a signal's cleanup too
		return pgdriver.Diverged{}, ErrCleanedUp
	}
	if err := s.writeFile(s.passFile(), "*:*:*:"+PGBatonRole+":"+password+"\n"); err != nil {
		return pgdriver.Diverged{}, err
	}
	d, err := pgdriver.Rewind(ctx, pgdriver.RewindOptions{
		BinDir: s.BinDir, DataDir: s.DataDir, Source: primary.Addr, User: PGBatonRole, Password: password, TLS: tlsCfg,
		Tables: []string{PGTable}, PassFile: s.passFile(), Command: s.command,
	})
	if err != nil {
		return d, err
	}
	return d, s.restart(ctx)
}

// command is one of PostgreSQL's programs run as the server's user.
func (s *PGServer) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(s.BinDir, name), args...)
	cmd.Dir = pgBase(s.cred)
	// HOME: libpq must not look in the caller's ~/.postgresql, which the
	// server's user may not read.
	cmd.Env = append(os.Environ(), "HOME="+pgBase(s.cred))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	return cmd
}

// CutReplication cuts the standby off its primary: the primary's
// pg_hba.conf rejects replication connections from now on (reloaded) and
// its WAL senders are terminated. The primary goes on acknowledging
// commits that only it has.
func (sh *PGShard) CutReplication(ctx context.Context, password string, tlsCfg *tls.Config) error {
	hba := filepath.Join(sh.Primary.DataDir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		return err
	}
	if err := sh.Primary.writeFile(hba, "hostssl replication all all reject\n"+string(old)); err != nil {
		return err
	}
	db, err := PGPool(ctx, sh.Primary.Addr, PGBatonRole, password, tlsCfg)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload %s: %w", sh.Primary.Addr, err)
	}
	return Poll(ctx, 10*time.Millisecond, func() (bool, error) {
		var senders int
		err := db.QueryRow(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_replication").Scan(&senders)
		return senders == 0, err
	})
}

// createApp creates the application's role and table on the primary.
func createApp(ctx context.Context, primary *PGServer, o PGShardOptions) error {
	tlsCfg, err := auth.ClientTLS(auth.Files{CA: auth.NodeFiles(o.CertsDir, o.Name).CA})
	if err != nil {
		return err
	}
	db, err := PGPool(ctx, primary.Addr, PGBatonRole, o.Password, tlsCfg)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.Exec(ctx, "CREATE ROLE "+PGAppRole+" LOGIN PASSWORD "+quoteLiteral(o.Password))
	if err == nil {
		_, err = db.Exec(ctx, "CREATE TABLE "+PGTable+" (k text PRIMARY KEY, v text NOT NULL); "+
			"GRANT SELECT, INSERT ON "+PGTable+" TO "+PGAppRole)
	}
	if err != nil {
		return fmt.Errorf("create the app role and table on %s: %w", primary.Addr, err)
	}
	return nil
}

// PGPool is a pool of connections as user to the server at addr over TLS.
func PGPool(ctx context.Context, addr, user, password string, tlsCfg *tls.Config) (*pgxpool.Pool, error) {
	cfg, err := pgdriver.PoolConfig(addr, user, password, tlsCfg)
	if err != nil {
		return nil, err
	}
	return pgxpool.NewWithConfig(ctx, cfg)
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// pgBase is where a shard's directories go and its programs run: the temp
// directory, unless the user PostgreSQL runs as (under a root harness)
// cannot reach it (a private TMPDIR): then /tmp. Stop removes them either
// way, and a signal's cleanup too.
func pgBase(cred *syscall.Credential) string {
	base := os.TempDir()
	if cred == nil || othersMayTraverse(base) {
		return base
	}
	return "/tmp"
}

// othersMayTraverse reports whether every directory up to dir lets others
// through (o+x).
func othersMayTraverse(dir string) bool {
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}
