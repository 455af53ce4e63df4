package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/pgdriver"
	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/testsuite"
)

func TestPgrejoinRefusesIncompleteCommandLines(t *testing.T) {
	full := []string{"--pgdata", "/d", "--new-primary", "h:5432", "--password-file", "/p", "--ca", "/ca.crt"}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{full[2:], "--pgdata is required"},
		{append(full[:2:2], full[4:]...), "--new-primary is required"},
		{append(full[:4:4], full[6:]...), "--password-file is required"},
		{full[:6], "--ca is required"},
		{append(full, "--insecure"), "--ca and --insecure: give one of them"},
		{append(full, "-o", "yaml"), "-o yaml: give text or json"},
		{append(full, "stray"), "stray"},
	} {
		_, err := parse(tc.args, io.Discard)
		require.ErrorContains(t, err, tc.want, "%q", tc.args)
	}
	c, err := parse(append(full[:6:6], "--insecure", "--table", "a", "--table", "b"), io.Discard)
	require.NoError(t, err)
	require.Equal(t, tableList{"a", "b"}, c.tables)
}

// TestPgrejoinReportsWhatOnlyTheOldPrimaryHas: a shard's standby is cut
// off its primary, which acknowledges 40 more INSERTs and is SIGKILLed;
// the standby is promoted. pgrejoin --report-only on the old primary's
// data directory finds the fork in the new primary's history and counts
// exactly those 40 rows in the transactions that committed after it.
func TestPgrejoinReportsWhatOnlyTheOldPrimaryHas(t *testing.T) {
	testsuite.RequireStore(t, location.KindPostgres)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	password, pwFile, err := testsuite.NewPassword(dir, location.KindPostgres)
	require.NoError(t, err)
	certs := filepath.Join(dir, "certs")
	require.NoError(t, auth.CreateCA(certs, auth.CertLifetime))
	sh, err := testsuite.StartPGShard(ctx, testsuite.PGShardOptions{Name: "rejoin", Dir: dir, CertsDir: certs, Password: password})
	if sh != nil {
		t.Cleanup(sh.Stop)
	}
	require.NoError(t, err)
	ca := auth.NodeFiles(certs, "rejoin").CA
	tlsCfg, err := auth.ClientTLS(auth.Files{CA: ca})
	require.NoError(t, err)
	app, err := testsuite.PGPool(ctx, sh.Primary.Addr, testsuite.PGAppRole, password, tlsCfg)
	require.NoError(t, err)
	defer app.Close()
	insert := func(from, n int) {
		for i := from; i < from+n; i++ {
			_, err := app.Exec(ctx, "INSERT INTO "+testsuite.PGTable+" (k, v) VALUES ($1, 'v')", strconv.Itoa(i))
			require.NoError(t, err)
		}
	}
	insert(0, 50)
	d := pgdriver.New(pgdriver.Options{TLS: tlsCfg, User: testsuite.PGBatonRole, Password: password})
	defer d.Close()
	primary, standby := driver.Side{Endpoints: []string{sh.Primary.Addr}}, driver.Side{Endpoints: []string{sh.Standby.Addr}}
	sent := d.FlushSend(ctx, primary, standby, []int{0})
	require.NoError(t, sent[0].Err)
	require.NoError(t, sh.CutReplication(ctx, password, tlsCfg))
	insert(50, 40) // acknowledged by the primary alone
	sh.Primary.Kill()
	replayed := d.FlushReplay(ctx, standby, map[int]uint64{0: 0}, nil)
	require.NoError(t, replayed[0].Err)
	promoted := d.Promote(ctx, standby, []int{0})
	require.NoError(t, promoted[0].Err)

	var out bytes.Buffer
	err = run(ctx, []string{"--pgdata", sh.Primary.DataDir, "--new-primary", sh.Standby.Addr, "--password-file", pwFile,
		"--ca", ca, "--table", testsuite.PGTable, "--report-only", "-o", "json"}, &out, io.Discard)
	require.NoError(t, err, out.String())
	var dv pgdriver.Diverged
	require.NoError(t, json.Unmarshal(out.Bytes(), &dv), out.String())
	require.Equal(t, 40, dv.InsertedInto(testsuite.PGTable), out.String())
	require.GreaterOrEqual(t, len(dv.Committed), 40)
	require.Equal(t, replayed[0].Position, dv.From, "the fork is where the standby's replay stopped")
	require.Greater(t, dv.To, dv.From)
	t.Log(dv)
	_, err = os.Stat(filepath.Join(sh.Primary.DataDir, "standby.signal"))
	require.ErrorIs(t, err, os.ErrNotExist, "--report-only rewinds nothing")
}
