package testsuite

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batonhq/baton/driver"
	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/location"
)

// ErrNoRedis: Debian's redis-server is not installed.
var ErrNoRedis = errors.New("redis-server not found: apt-get install redis-server, or set BATON_REDIS_BIN")

// RedisBinary finds redis-server: $BATON_REDIS_BIN, else the PATH.
func RedisBinary() (string, error) {
	if p := os.Getenv("BATON_REDIS_BIN"); p != "" {
		return p, nil
	}
	p, err := exec.LookPath("redis-server")
	if err != nil {
		return "", ErrNoRedis
	}
	return p, nil
}

// RedisOptions start one Redis server.
type RedisOptions struct {
	// Name names its directory, log and node certificate (created in
	// CertsDir, whose CA it trusts for clients and its replication).
	Name, Dir, CertsDir string
	// Password is requirepass and masterauth (in a mode-0600 config file,
	// never on the command line).
	Password string
	// ReplicaOf is the primary's host:port ("" = a primary).
	ReplicaOf string
}

// Redis is a redis-server the harness runs: TLS only (client certificates
// required, replication over TLS), a password, AOF on (fsync every
// second, Redis's default), diskless full syncs without delay.
type Redis struct {
	*Process
	Addr string
}

// StartRedis starts a server as o says and waits until it answers.
func StartRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	bin, err := RedisBinary()
	if err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	if err := auth.CreateNode(o.CertsDir, o.Name, nil, auth.CertLifetime); err != nil {
		return nil, fmt.Errorf("redis %s: %w", o.Name, err)
	}
	dir := filepath.Join(o.Dir, o.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte(redisConfig(o, dir, port)), 0o600); err != nil {
		return nil, fmt.Errorf("redis %s config: %w", o.Name, err)
	}
	r := &Redis{Addr: addr(port), Process: &Process{Name: "redis-" + o.Name, Path: bin, Args: []string{conf},
		Log: logPath(o.Dir, "redis-"+o.Name)}}
	if err := r.Start(); err != nil {
		return nil, err
	}
	tlsCfg, err := auth.ClientTLS(auth.NodeFiles(o.CertsDir, o.Name))
	if err != nil {
		r.Kill()
		return nil, err
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr, TLSConfig: tlsCfg, Password: o.Password, MaxRetries: -1})
	defer c.Close()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := Poll(wctx, 20*time.Millisecond, func() (bool, error) {
		if !r.Running() {
			return false, fmt.Errorf("redis %s exited: see %s", o.Name, r.Log)
		}
		return c.Ping(wctx).Err() == nil, nil
	}); err != nil {
		r.Kill()
		return nil, fmt.Errorf("redis %s not ready: %w", o.Name, err)
	}
	return r, nil
}

// redisConfig is the server's config file.
func redisConfig(o RedisOptions, dir string, port int) string {
	node := auth.NodeFiles(o.CertsDir, o.Name)
	lines := []string{
		"bind 127.0.0.1",
		"port 0",
		"tls-port " + strconv.Itoa(port),
		"tls-cert-file " + node.Cert,
		"tls-key-file " + node.Key,
		"tls-ca-cert-file " + node.CA,
		"tls-auth-clients yes",
		"tls-replication yes",
		"requirepass " + o.Password,
		"masterauth " + o.Password,
		"dir " + dir,
		"appendonly yes",
		"appendfsync everysec",
		`save ""`,
		"repl-diskless-sync yes",
		"repl-diskless-sync-delay 0",
		"daemonize no",
		`logfile ""`,
	}
	if o.ReplicaOf != "" {
		host, port, _ := strings.Cut(o.ReplicaOf, ":")
		lines = append(lines, "replicaof "+host+" "+port)
	}
	return strings.Join(lines, "\n") + "\n"
}

// RedisTLS is the client TLS of node certificate name in certsDir.
func RedisTLS(certsDir, name string) (*tls.Config, error) {
	return auth.ClientTLS(auth.NodeFiles(certsDir, name))
}

// The sites of the harness's Redis accounts (registered redis://SITE).
const (
	SiteA = "site-a"
	SiteB = "site-b"
)

// RedisAccount is a Redis account the cluster serves: each shard a primary
// on SiteA and its replica on SiteB, redis-server processes trusting the
// cluster's CA.
type RedisAccount struct {
	Name     string
	Password string
	Servers  []*Redis
}

// StartRedisAccount starts the servers of a Redis account of shards
// shards (password is theirs; the worker reads it from
// --redis-password-file), registers the two sites and creates the account
// in the location service.
func (c *Cluster) StartRedisAccount(ctx context.Context, name string, shards int, password string) (*RedisAccount, error) {
	ra := &RedisAccount{Name: name, Password: password}
	req := location.CreateRequest{Account: name, Partitions: shards, Primary: SiteA, Secondary: SiteB, Kind: location.KindRedis}
	for s := range shards {
		p, err := StartRedis(ctx, RedisOptions{Name: fmt.Sprintf("%s-a%d", name, s), Dir: c.Opts.Dir, CertsDir: c.CertsDir, Password: password})
		if err != nil {
			return ra, err
		}
		ra.Servers = append(ra.Servers, p)
		r, err := StartRedis(ctx, RedisOptions{Name: fmt.Sprintf("%s-b%d", name, s), Dir: c.Opts.Dir, CertsDir: c.CertsDir,
			Password: password, ReplicaOf: p.Addr})
		if err != nil {
			return ra, err
		}
		ra.Servers = append(ra.Servers, r)
		req.PrimaryEndpoints = append(req.PrimaryEndpoints, p.Addr)
		req.SecondaryEndpoints = append(req.SecondaryEndpoints, r.Addr)
	}
	for _, site := range []string{SiteA, SiteB} {
		if err := c.Loc.RegisterStamp(ctx, location.Stamp{Name: site, URL: "redis://" + site}); err != nil {
			return ra, err
		}
	}
	if _, err := c.Loc.CreateAccount(ctx, req); err != nil {
		return ra, err
	}
	return ra, nil
}

// Stop stops the account's servers.
func (ra *RedisAccount) Stop() {
	for _, s := range ra.Servers {
		s.Stop(10 * time.Second)
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

// NewRedisPassword makes a random password for a cluster's Redis servers
// and writes it, mode 0600, to dir/redis.password: the worker reads it
// with --redis-password-file (RedisWorkerArgs).
func NewRedisPassword(dir string) (password, file string, err error) {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	password = base64.RawURLEncoding.EncodeToString(b)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	file = filepath.Join(dir, "redis.password")
	if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
		return "", "", err
	}
	return password, file, nil
}

// RedisWorkerArgs are the worker flags that let it drive Redis accounts
// with the password in file.
func RedisWorkerArgs(file string) []string { return []string{"--redis-password-file", file} }
