package testsuite

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/driver/pgdriver"
	"github.com/batonhq/baton/driver/redisdriver"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/traffic"
)

// The sites of the harness's accounts of shards: a Redis account's are
// SiteA and SiteB (redis://site-a), a PostgreSQL account's PGSiteA and
// PGSiteB (postgres://pg-a): a site serves one kind.
const (
	SiteA   = "site-a"
	SiteB   = "site-b"
	PGSiteA = "pg-a"
	PGSiteB = "pg-b"
)

// Sites are the two sites of an account of kind (location.KindRedis or
// location.KindPostgres), the primary's first.
func Sites(kind string) (string, string) {
	if kind == location.KindPostgres {
		return PGSiteA, PGSiteB
	}
	return SiteA, SiteB
}

// ShardAccount is an account of shards the cluster serves: each shard a
// primary on the kind's first site and its replica on the second, servers
// trusting the cluster's CA.
type ShardAccount struct {
	Name, Kind, Password string
	Redis                []*Redis   // KindRedis: primary, replica, shard by shard
	PG                   []*PGShard // KindPostgres
}

// StartRedisAccount starts the servers of a Redis account of shards
// shards (password is theirs; the worker reads it from
// --redis-password-file), registers its sites and creates the account in
// the location service.
func (c *Cluster) StartRedisAccount(ctx context.Context, name string, shards int, password string) (*ShardAccount, error) {
	sa := &ShardAccount{Name: name, Kind: location.KindRedis, Password: password}
	return sa, c.createShardAccount(ctx, sa, shards, func(s int) (string, string, error) {
		p, err := StartRedis(ctx, RedisOptions{Name: fmt.Sprintf("%s-a%d", name, s), Dir: c.Opts.Dir, CertsDir: c.CertsDir, Password: password})
		if err != nil {
			return "", "", err
		}
		sa.Redis = append(sa.Redis, p)
		r, err := StartRedis(ctx, RedisOptions{Name: fmt.Sprintf("%s-b%d", name, s), Dir: c.Opts.Dir, CertsDir: c.CertsDir,
			Password: password, ReplicaOf: p.Addr})
		if err != nil {
			return "", "", err
		}
		sa.Redis = append(sa.Redis, r)
		return p.Addr, r.Addr, nil
	})
}

// StartPGAccount starts the shards of a PostgreSQL account (password is
// the baton and app roles'; the worker reads it from --pg-password-file),
// registers its sites and creates the account in the location service.
func (c *Cluster) StartPGAccount(ctx context.Context, name string, shards int, password string) (*ShardAccount, error) {
	sa := &ShardAccount{Name: name, Kind: location.KindPostgres, Password: password}
	return sa, c.createShardAccount(ctx, sa, shards, func(s int) (string, string, error) {
		sh, err := StartPGShard(ctx, PGShardOptions{Name: fmt.Sprintf("%s-%d", name, s), Dir: c.Opts.Dir, CertsDir: c.CertsDir,
			Password: password})
		if sh != nil {
			sa.PG = append(sa.PG, sh)
		}
		if err != nil {
			return "", "", err
		}
		return sh.Primary.Addr, sh.Standby.Addr, nil
	})
}

// createShardAccount starts each shard (start answers its primary's and
// replica's addresses), registers the kind's sites and creates the
// account.
func (c *Cluster) createShardAccount(ctx context.Context, sa *ShardAccount, shards int,
	start func(s int) (primary, replica string, err error)) error {
	siteA, siteB := Sites(sa.Kind)
	req := location.CreateRequest{Account: sa.Name, Partitions: shards, Primary: siteA, Secondary: siteB, Kind: sa.Kind}
	for s := range shards {
		p, r, err := start(s)
		if err != nil {
			return err
		}
		req.PrimaryEndpoints = append(req.PrimaryEndpoints, p)
		req.SecondaryEndpoints = append(req.SecondaryEndpoints, r)
	}
	for _, site := range []string{siteA, siteB} {
		if err := c.Loc.RegisterStamp(ctx, location.Stamp{Name: site, URL: location.SiteScheme(sa.Kind) + "://" + site}); err != nil {
			return err
		}
	}
	_, err := c.Loc.CreateAccount(ctx, req)
	return err
}

// Config is how live traffic reaches the account: through the location
// service, as the application's role (PostgreSQL) over TLS.
func (sa *ShardAccount) Config(c *Cluster) traffic.ShardConfig {
	cfg := traffic.ShardConfig{Account: sa.Name, Kind: sa.Kind, Resolve: traffic.LocationRoute(c.Loc, sa.Name), TLS: c.TLS,
		Password: sa.Password}
	if sa.Kind == location.KindPostgres {
		cfg.User = PGAppRole
	}
	return cfg
}

// Stop stops the account's servers.
func (sa *ShardAccount) Stop() {
	for _, s := range sa.Redis {
		s.Stop(10 * time.Second)
	}
	for _, sh := range sa.PG {
		sh.Stop()
	}
}

// WaitReplicasOnline waits until every primary of side has its replica
// online (a full sync done), as an operator checks before a failover.
func WaitReplicasOnline(ctx context.Context, d driver.Store, side driver.Side) error {
	ps := make([]int, len(side.Endpoints))
	for i := range ps {
		ps[i] = i
	}
	last := "not asked yet"
	err := Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		for _, p := range d.Positions(ctx, side, ps) {
			switch {
			case p.Err != nil:
				last = fmt.Sprintf("partition %d: %v", p.Partition, p.Err)
			case !p.Primary:
				last = fmt.Sprintf("partition %d on %s is not a primary", p.Partition, side.Endpoint(p.Partition))
			case p.Acked == 0:
				last = fmt.Sprintf("partition %d on %s: its replica acknowledged nothing yet", p.Partition, side.Endpoint(p.Partition))
			default:
				continue
			}
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("the replicas of %s never came online (%s): %w", side.Account, last, err)
	}
	return nil
}

// Driver is a driver of the account's kind, calling as the tests do.
func (sa *ShardAccount) Driver(c *Cluster) driver.Store {
	if sa.Kind == location.KindPostgres {
		return pgdriver.New(pgdriver.Options{TLS: c.TLS, User: PGBatonRole, Password: sa.Password})
	}
	return redisdriver.New(redisdriver.Options{TLS: c.TLS, Password: sa.Password})
}

// WaitOnline waits until every shard of the account's current primary site
// has its replica online, as an operator checks before a failover.
func (sa *ShardAccount) WaitOnline(ctx context.Context, c *Cluster) error {
	d := sa.Driver(c)
	defer d.Close()
	a, err := c.Loc.Lookup(ctx, sa.Name)
	if err != nil {
		return err
	}
	return WaitReplicasOnline(ctx, d, driver.Side{Account: sa.Name, Endpoints: a.PrimaryEndpoints})
}

// NewPassword makes a random password for the servers of a cluster's
// accounts of kind and writes it, mode 0600, to dir/KIND.password: the
// worker reads it with the kind's flag (WorkerArgs).
func NewPassword(dir, kind string) (password, file string, err error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	password = base64.RawURLEncoding.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	file = filepath.Join(dir, kind+".password")
	if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return password, file, nil
}

// WorkerArgs are the worker flags that let it drive accounts of kind with
// the password in file.
func WorkerArgs(kind, file string) []string {
	return []string{activities.PasswordFlag(driver.Kind(kind)), file}
}

// Rejoin is the operator's reprotect of a PostgreSQL account after a
// failover done by hand (RejoinOnly), then the location service records
// the account protected, as baton reprotect does once it sees the
// replicas. A Redis account rejoined in the failover itself.
func (sa *ShardAccount) Rejoin(ctx context.Context, c *Cluster) error {
	if sa.Kind != location.KindPostgres {
		return nil
	}
	if _, err := sa.RejoinOnly(ctx, c); err != nil {
		return err
	}
	a, err := c.Loc.Lookup(ctx, sa.Name)
	if err != nil {
		return err
	}
	_, err = c.Loc.Protect(ctx, sa.Name, a.Epoch)
	return err
}

// RejoinOnly rewinds each old primary of a PostgreSQL account and
// restarts it as the new primary's standby (the operator's steps on its
// host; the driver cannot over SQL), and waits until they stream. It
// answers each shard's diverged WAL (no inserted row after a planned
// failover).
func (sa *ShardAccount) RejoinOnly(ctx context.Context, c *Cluster) ([]pgdriver.Diverged, error) {
	a, err := c.Loc.Lookup(ctx, sa.Name)
	if err != nil {
		return nil, err
	}
	diverged := make([]pgdriver.Diverged, len(sa.PG))
	for s, sh := range sa.PG {
		old, primary := sh.Primary, sh.Standby
		if sh.Primary.Addr == a.PrimaryEndpoints[s] {
			old, primary = sh.Standby, sh.Primary
		}
		if diverged[s], err = old.RejoinAsStandbyOf(ctx, primary, sa.Password, c.TLS); err != nil {
			return diverged, fmt.Errorf("rejoin shard %d of %s: %w", s, sa.Name, err)
		}
	}
	return diverged, sa.WaitOnline(ctx, c)
}

// RequireStore skips without the store's server (redis-server,
// PostgreSQL's binaries) on a developer machine and fails in CI (CI=true),
// where .ci/run installs them.
func RequireStore(t testing.TB, kind string) {
	t.Helper()
	_, err := RedisBinary()
	if kind == location.KindPostgres {
		_, err = PostgresBinDir()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %v: .ci/run installs it", err)
		}
		t.Skipf("skipped: %v; with CI=true this fails", err)
	}
}
