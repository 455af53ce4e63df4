package pgdriver

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

// After an unplanned failover the old primary holds WAL its standby never
// received: from the point where the new primary's timeline forked off
// (the end of what the standby replayed) to the end of the old primary's
// WAL. Every transaction that committed in it was acknowledged to its
// client and is lost: pg_rewind throws it away. Rewind reads it first
// (pg_waldump, on the stopped old primary's data directory) and reports
// it, then rewinds the old primary into a standby of the new one.

// RewindOptions rejoin an old primary, on its host, as a standby of the
// new primary.
type RewindOptions struct {
	// BinDir holds PostgreSQL's programs (pg_rewind, pg_waldump,
	// pg_controldata); DataDir is the old primary's data directory. The
	// old primary must be stopped (or dead).
	BinDir, DataDir string
	// Source is the new primary (host:port); User and Password Baton's
	// role there (it checkpoints, reads the timeline history, and
	// pg_rewind reads its files and writes it into the standby's
	// primary_conninfo: a superuser, or a role with REPLICATION,
	// pg_checkpoint and EXECUTE on pg_ls_dir, pg_stat_file, pg_read_file
	// and pg_read_binary_file).
	Source, User, Password string
	// TLS is the client side of the SQL connection (nil: plaintext);
	// SSLRootCert is the CA file pg_rewind's libpq verifies the new
	// primary with ("": sslmode=require, or disable when TLS is nil).
	TLS         *tls.Config
	SSLRootCert string
	// Tables are resolved on the new primary, in database DBName (default
	// postgres), so the report names them (the rows the lost transactions
	// inserted into each).
	Tables []string
	DBName string
	// PassFile is the password file the rewound standby's primary_conninfo
	// names; pg_rewind -R would write the password itself there, which this
	// takes out ("": none, libpq's default, ~/.pgpass of the server's user).
	PassFile string
	// ReportOnly reports the diverged WAL and leaves the old primary as it
	// is (no rewind).
	ReportOnly bool
	// Command makes the command that runs one of the programs (default:
	// BinDir/name, inheriting the environment); a caller running as
	// another user than the data's owner sets its credentials.
	Command func(ctx context.Context, name string, args ...string) *exec.Cmd
}

// Diverged is the WAL only the old primary has: [From, To) on its
// timeline, and the transactions that committed in it.
type Diverged struct {
	Timeline  uint32
	From, To  uint64
	Committed []Txn
	// Aborted counts the transactions that aborted in it.
	Aborted int
	// Tables names the relations of RewindOptions.Tables by their file
	// (tablespace/database/relfilenode, as pg_waldump writes them).
	Tables map[string]string
}

// Txn is one transaction that committed in the diverged WAL.
type Txn struct {
	Xid       uint64
	CommitLSN uint64
	// Committed is the commit's time as pg_waldump writes it.
	Committed string
	// Inserted counts the rows it inserted (heap INSERT records) into each
	// relation (by file).
	Inserted map[string]int
}

// Bytes is the diverged WAL's length.
func (d Diverged) Bytes() uint64 { return d.To - min(d.To, d.From) }

// InsertedInto counts the rows the committed transactions inserted into
// table (one of RewindOptions.Tables).
func (d Diverged) InsertedInto(table string) int {
	n := 0
	for file, name := range d.Tables {
		if name != table {
			continue
		}
		for _, t := range d.Committed {
			n += t.Inserted[file]
		}
	}
	return n
}

// String is the report's one line.
func (d Diverged) String() string {
	var rows []string
	for _, name := range slices.Sorted(maps.Values(d.Tables)) {
		rows = append(rows, fmt.Sprintf("%d rows inserted into %s", d.InsertedInto(name), name))
	}
	s := fmt.Sprintf("diverged WAL %s..%s on timeline %d (%d bytes): %d transactions committed, %d aborted",
		LSN(d.From), LSN(d.To), d.Timeline, d.Bytes(), len(d.Committed), d.Aborted)
	if len(rows) > 0 {
		s += "; " + strings.Join(rows, ", ")
	}
	return s
}

// Rewind reports the old primary's diverged WAL, then rewinds it against
// the new primary (pg_rewind -R: it restarts as the new primary's
// standby; the caller starts it). A checkpoint on the new primary first:
// until one, its control file still names the old timeline and pg_rewind
// would find nothing to do.
func Rewind(ctx context.Context, o RewindOptions) (Diverged, error) {
	if err := sameMajor(ctx, o); err != nil {
		return Diverged{}, err
	}
	cfg, err := PoolConfig(o.Source, o.User, o.Password, o.TLS)
	if err != nil {
		return Diverged{}, err
	}
	if o.DBName != "" {
		cfg.ConnConfig.Database = o.DBName
	}
	db, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return Diverged{}, fmt.Errorf("connect to the new primary %s: %w", o.Source, err)
	}
	defer db.Close()
	if _, err := db.Exec(ctx, "CHECKPOINT"); err != nil {
		return Diverged{}, fmt.Errorf("checkpoint on the new primary %s: %w", o.Source, err)
	}
	d, err := divergedWAL(ctx, o, db)
	if err != nil || o.ReportOnly {
		return d, err
	}
	if _, err := run(ctx, o, "pg_rewind", "-D", o.DataDir, "-R", "--source-server="+o.conninfo()); err != nil {
		return d, err
	}
	return d, o.dropPassword()
}

// sameMajor refuses programs of another major version than the data
// directory's: pg_waldump would find no valid record in its WAL, which
// reads as nothing diverged.
func sameMajor(ctx context.Context, o RewindOptions) error {
	v, err := os.ReadFile(filepath.Join(o.DataDir, "PG_VERSION"))
	if err != nil {
		return fmt.Errorf("%s is not a PostgreSQL data directory: %w", o.DataDir, err)
	}
	out, err := run(ctx, o, "pg_waldump", "--version")
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`\(PostgreSQL\) (\d+)`).FindSubmatch(out)
	if m == nil || string(m[1]) != strings.TrimSpace(string(v)) {
		return fmt.Errorf("%s is PostgreSQL %s's, and %s/pg_waldump is %q: give the programs of its version (--bindir)",
			o.DataDir, strings.TrimSpace(string(v)), o.BinDir, strings.TrimSpace(string(out)))
	}
	return nil
}

// primaryPassword is the password pg_rewind -R wrote into the standby's
// primary_conninfo (postgresql.auto.conf doubles each quote inside it).
var primaryPassword = regexp.MustCompile(`password=(?:''(?:\\''|[^'])*''|[^\s']+)\s?`)

// dropPassword takes the password out of the primary_conninfo pg_rewind
// -R wrote, naming PassFile instead (if given).
func (o RewindOptions) dropPassword() error {
	path := filepath.Join(o.DataDir, "postgresql.auto.conf")
	conf, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("rewound, but its primary_conninfo is not checked: %w", err)
	}
	passfile := ""
	if o.PassFile != "" {
		passfile = "passfile=" + strings.ReplaceAll(libpqQuote(o.PassFile), "'", "''") + " "
	}
	lines := bytes.SplitAfter(conf, []byte("\n"))
	for i, l := range lines {
		if bytes.HasPrefix(bytes.TrimSpace(l), []byte("primary_conninfo")) {
			lines[i] = primaryPassword.ReplaceAll(l, []byte(passfile))
		}
	}
	out := bytes.Join(lines, nil)
	if bytes.Equal(out, conf) {
		return nil
	}
	if err := os.WriteFile(path, out, 0o600); err != nil {
		return fmt.Errorf("rewound, but its primary_conninfo still holds the password: %w", err)
	}
	return nil
}

// libpqQuote quotes a connection string's value.
func libpqQuote(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(v) + "'"
}

// divergedWAL finds the fork in the new primary's timeline history and
// reads the old primary's WAL from there.
func divergedWAL(ctx context.Context, o RewindOptions, db *pgxpool.Pool) (Diverged, error) {
	var d Diverged
	out, err := run(ctx, o, "pg_controldata", "-D", o.DataDir)
	if err != nil {
		return d, err
	}
	m := regexp.MustCompile(`(?m)^Latest checkpoint's TimeLineID:\s+(\d+)`).FindSubmatch(out)
	if m == nil {
		return d, fmt.Errorf("pg_controldata %s: no timeline in its answer", o.DataDir)
	}
	tli, _ := strconv.ParseUint(string(m[1]), 10, 32)
	d.Timeline = uint32(tli)
	if d.From, err = forkPoint(ctx, db, d.Timeline); err != nil {
		return d, fmt.Errorf("the new primary %s: %w", o.Source, err)
	}
	if d.Tables, err = tableFiles(ctx, db, o.Tables); err != nil {
		return d, fmt.Errorf("the new primary %s: %w", o.Source, err)
	}
	// pg_waldump reads to the end of the valid WAL and then says why it
	// stopped, with a non-zero status: the end is expected, not a failure.
	cmd := o.command(ctx, "pg_waldump", "-p", filepath.Join(o.DataDir, "pg_wal"), "-t", strconv.Itoa(int(d.Timeline)),
		"-s", LSN(d.From))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	switch {
	case err != nil && strings.Contains(stderr.String(), "could not find a valid record after"):
		d.To = d.From // its WAL ends where the new timeline forked: nothing diverged
		return d, nil
	case err != nil && stdout.Len() == 0:
		return d, fmt.Errorf("pg_waldump from %s: %w: %s", LSN(d.From), err, strings.TrimSpace(stderr.String()))
	}
	return d, d.read(&stdout, stderr.String())
}

// forkPoint is where timeline tli ended in the new primary's history: the
// first position of the old timeline the new one does not have.
func forkPoint(ctx context.Context, db *pgxpool.Pool, tli uint32) (uint64, error) {
	var history string
	err := db.QueryRow(ctx, `SELECT pg_read_file('pg_wal/' ||
		substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) || '.history')`).Scan(&history)
	if err != nil {
		return 0, fmt.Errorf("read its timeline history: %w", err)
	}
	for _, line := range strings.Split(history, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == strconv.Itoa(int(tli)) {
			return ParseLSN(f[1])
		}
	}
	return 0, fmt.Errorf("its timeline history does not fork from timeline %d (the old primary's): is it a copy of "+
		"another cluster?\n%s", tli, history)
}

// tableFiles resolves tables to their files as pg_waldump names them.
func tableFiles(ctx context.Context, db *pgxpool.Pool, tables []string) (map[string]string, error) {
	files := map[string]string{}
	for _, t := range tables {
		var file string
		err := db.QueryRow(ctx, `SELECT coalesce(nullif(c.reltablespace, 0), d.dattablespace) || '/' || d.oid || '/' ||
			pg_relation_filenode(c.oid)
			FROM pg_class c, pg_database d WHERE c.oid = $1::regclass AND d.datname = current_database()`, t).Scan(&file)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t, err)
		}
		files[file] = t
	}
	return files, nil
}

// walRecord is one line of pg_waldump.
var walRecord = regexp.MustCompile(`^rmgr: (\w+)\s+len \(rec/tot\):\s*\d+/\s*(\d+), tx:\s*(\d+), lsn: ([0-9A-F]+/[0-9A-F]+), ` +
	`prev [0-9A-F]+/[0-9A-F]+, desc: (\S+)\s*(.*)$`)

var (
	blockRel = regexp.MustCompile(`blkref #0: rel (\d+/\d+/\d+)`)
	walAt    = regexp.MustCompile(`at ([0-9A-F]+/[0-9A-F]+)`)
)

// read reads pg_waldump's records: heap inserts by transaction, and
// commits and aborts; To is where pg_waldump found the WAL end (why it
// stopped), and at least the end of the last record.
func (d *Diverged) read(out *bytes.Buffer, why string) error {
	inserts := map[uint64]map[string]int{}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	d.To = d.From
	for sc.Scan() {
		m := walRecord.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		tot, _ := strconv.ParseUint(m[2], 10, 64)
		xid, _ := strconv.ParseUint(m[3], 10, 64)
		at, err := ParseLSN(m[4])
		if err != nil {
			return err
		}
		d.To = max(d.To, at+tot)
		switch rmgr, id := m[1], m[5]; {
		case rmgr == "Heap" && strings.HasPrefix(id, "INSERT"):
			if rel := blockRel.FindStringSubmatch(m[6]); rel != nil {
				if inserts[xid] == nil {
					inserts[xid] = map[string]int{}
				}
				inserts[xid][rel[1]]++
			}
		case rmgr == "Transaction" && strings.HasPrefix(id, "COMMIT"):
			d.Committed = append(d.Committed, Txn{Xid: xid, CommitLSN: at, Committed: commitTime(m[6]),
				Inserted: withSubxacts(inserts, xid, m[6])})
		case rmgr == "Transaction" && strings.HasPrefix(id, "ABORT"):
			d.Aborted++
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read pg_waldump: %w", err)
	}
	// The last position pg_waldump names is where it found no valid
	// record ("invalid record length at X/Y").
	if m := walAt.FindAllStringSubmatch(why, -1); m != nil {
		if end, err := ParseLSN(m[len(m)-1][1]); err == nil && end >= d.To {
			d.To = end
		}
	}
	return nil
}

// subxacts is the list of a commit's subtransactions (savepoints), whose
// records carry their own IDs.
var subxacts = regexp.MustCompile(`subxacts:((?: \d+)+)`)

// withSubxacts is what transaction xid and its committed subtransactions
// (named in its commit's description) inserted.
func withSubxacts(inserts map[uint64]map[string]int, xid uint64, desc string) map[string]int {
	m := subxacts.FindStringSubmatch(desc)
	if m == nil {
		return inserts[xid]
	}
	out := map[string]int{}
	for _, x := range append([]string{strconv.FormatUint(xid, 10)}, strings.Fields(m[1])...) {
		id, _ := strconv.ParseUint(x, 10, 64)
		for rel, n := range inserts[id] {
			out[rel] += n
		}
	}
	return out
}

// commitTime is the time at the head of a commit's description.
func commitTime(desc string) string {
	if i := strings.IndexByte(desc, ';'); i >= 0 {
		desc = desc[:i]
	}
	return strings.TrimSpace(desc)
}

// conninfo is libpq's connection string to the new primary (the password
// travels in PGPASSWORD, see run).
func (o RewindOptions) conninfo() string {
	host, port, _ := net.SplitHostPort(o.Source)
	mode := "disable"
	switch {
	case o.SSLRootCert != "":
		mode = "verify-full sslrootcert=" + libpqQuote(o.SSLRootCert)
	case o.TLS != nil:
		mode = "require"
	}
	return fmt.Sprintf("host=%s port=%s user=%s dbname=postgres sslmode=%s", libpqQuote(host), libpqQuote(port),
		libpqQuote(o.User), mode)
}

// command is one of PostgreSQL's programs (o.Command, by default
// BinDir/name) with the password in its environment (never on its command
// line) and the C locale (their answers are read, in English).
func (o RewindOptions) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	var cmd *exec.Cmd
	if o.Command != nil {
		cmd = o.Command(ctx, name, args...)
	} else {
		cmd = exec.CommandContext(ctx, filepath.Join(o.BinDir, name), args...)
	}
	if cmd.Env == nil {
		cmd.Env = cmd.Environ()
	}
	cmd.Env = append(cmd.Env, "PGPASSWORD="+o.Password, "LC_ALL=C")
	return cmd
}

// run runs one of PostgreSQL's programs (command) and answers its output.
func run(ctx context.Context, o RewindOptions, name string, args ...string) ([]byte, error) {
	cmd := o.command(ctx, name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}
