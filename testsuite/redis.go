package testsuite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/batonhq/baton/internal/auth"
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
