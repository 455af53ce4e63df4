package testsuite

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
)

// Stamp names in every harness cluster.
const (
	StampA = "stamp-a"
	StampB = "stamp-b"
)

// Options shape a Cluster.
type Options struct {
	// Dir holds every process's data and log.
	Dir string
	// UI serves the Temporal Web UI (on UIPort, 0 = a free port).
	UI     bool
	UIPort int
	// Stamp replication settings (see stampd serve --help).
	ReplicationBatch int
	ReplicationDelay time.Duration
	ReplayRate       float64
	// Durable stamps keep their data on disk (so kill -9 and restart work);
	// otherwise they run in memory mode.
	Durable bool
	// WorkerArgs are extra worker flags.
	WorkerArgs []string
	// Backend is the Temporal server: BackendDevServer (the default) or
	// BackendPostgres, the real server on PostgreSQL (see server.go).
	Backend Backend
	// PostgresNonDurable runs BackendPostgres's PostgreSQL without fsync
	// (PostgresOptions.NonDurable): never what production runs. The
	// default is PostgreSQL's durable defaults.
	PostgresNonDurable bool
	// Workers is how many worker processes poll the task queue (default 1).
	Workers int
	// WorkerMetrics has every worker serve Prometheus metrics on a free
	// port (Cluster.WorkerMetricsURLs).
	WorkerMetrics bool
	// Progress hears what the harness is doing (nil = silent).
	Progress io.Writer
	// Insecure runs the services in plaintext without authentication
	// (stampd --insecure), to prove that path still works; by default
	// everything speaks mutual TLS with certificates made in Dir/certs.
	Insecure bool
}

// Cluster is a real Temporal dev server, a location service, two stamps
// (stamp-a and stamp-b) and a Baton worker, each its own process.
type Cluster struct {
	Opts     Options
	Bin      Binaries
	Temporal *DevServer
	Location *Process
	Stamps   map[string]*Process
	Worker   *Process // the first of Workers

	// Workers are the worker processes, WorkerMetricsURLs their /metrics
	// (with Options.WorkerMetrics). Server and Postgres are set with
	// BackendPostgres; Temporal then is the same server process.
	Workers           []*Process
	WorkerMetricsURLs []string
	Server            *TemporalServer
	Postgres          *Postgres

	LocationURL string
	StampURLs   map[string]string
	Client      client.Client
	Loc         *location.Client
	// CertsDir holds the cluster's CA and certificates (makeCerts); TLS is
	// how the tests call (every role). Both empty with Options.Insecure.
	CertsDir string
	TLS      *tls.Config
}

// Start builds what is needed and starts everything, in dependency order.
func Start(ctx context.Context, o Options) (c *Cluster, err error) {
	if o.Dir == "" {
		return nil, errors.New("testsuite: Options.Dir is required")
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", o.Dir, err)
	}
	c = &Cluster{Opts: o, Stamps: map[string]*Process{}, StampURLs: map[string]string{}}
	defer func() {
		if err != nil {
			c.Close()
			c = nil
		}
	}()
	c.say("building stampd, worker and baton")
	if c.Bin, err = Build(ctx); err != nil {
		return c, err
	}
	if err := c.startTemporal(ctx); err != nil {
		return c, err
	}
	if c.Client, err = client.Dial(client.Options{HostPort: c.Temporal.HostPort, Logger: logging.NewZapAdapter(zap.NewNop())}); err != nil {
		return c, fmt.Errorf("connect to the %s: %w", o.Backend, err)
	}

	c.say("starting the location service and two stamps")
	if !o.Insecure {
		if err := c.makeCerts(); err != nil {
			return c, err
		}
	}
	port, err := FreePort()
	if err != nil {
		return c, err
	}
	c.LocationURL = c.scheme() + addr(port)
	c.Loc = location.NewTLSClient(c.LocationURL, c.TLS)
	c.Location = &Process{Name: "location", Path: c.Bin.Stampd, Log: logPath(o.Dir, "location"),
		Args: append([]string{"location", "--listen", addr(port), "--data", c.dataDir("location")}, c.serverArgs()...)}
	if err := c.startHTTP(ctx, c.Location, c.LocationURL+"/v1/stamps"); err != nil {
		return c, err
	}
	for _, name := range []string{StampA, StampB} {
		if err := c.startStamp(ctx, name); err != nil {
			return c, err
		}
	}

	if err := c.startWorkers(); err != nil {
		return c, err
	}
	return c, nil
}

func (c *Cluster) say(format string, args ...any) {
	if c.Opts.Progress != nil {
		fmt.Fprintf(c.Opts.Progress, "baton: "+format+"\n", args...)
	}
}

// dataDir is a process's data directory ("" = memory mode for stamps that
// are not durable).
func (c *Cluster) dataDir(name string) string {
	return filepath.Join(c.Opts.Dir, "data", name)
}

func (c *Cluster) startHTTP(ctx context.Context, p *Process, readyURL string) error {
	if err := p.Start(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := WaitHTTPWith(wctx, c.HTTP(), readyURL, p); err != nil {
		return fmt.Errorf("%s not ready: %w", p.Name, err)
	}
	return nil
}

func (c *Cluster) startStamp(ctx context.Context, name string) error {
	port, err := FreePort()
	if err != nil {
		return err
	}
	url := c.scheme() + addr(port)
	data := ""
	if c.Opts.Durable {
		data = c.dataDir(name)
		if err := os.MkdirAll(data, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", data, err)
		}
	}
	// Fault injection on: the tests strike the stamps.
	args := []string{"serve", "--name", name, "--enable-faults", "--listen", addr(port), "--data", data,
		"--location", c.LocationURL}
	args = append(args, c.serverArgs()...)
	if c.Opts.ReplicationBatch > 0 {
		args = append(args, "--replication-batch", strconv.Itoa(c.Opts.ReplicationBatch))
	}
	if c.Opts.ReplicationDelay > 0 {
		args = append(args, "--replication-delay", c.Opts.ReplicationDelay.String())
	}
	if c.Opts.ReplayRate > 0 {
		args = append(args, "--replay-rate", strconv.FormatFloat(c.Opts.ReplayRate, 'f', -1, 64))
	}
	p := &Process{Name: name, Path: c.Bin.Stampd, Args: args, Log: logPath(c.Opts.Dir, name)}
	if err := c.startHTTP(ctx, p, url+"/v1/health"); err != nil {
		return err
	}
	c.Stamps[name], c.StampURLs[name] = p, url
	// The stamp registers itself in the location service; wait for it.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return Poll(wctx, 50*time.Millisecond, func() (bool, error) {
		ss, err := c.Loc.Stamps(wctx)
		if err != nil {
			return false, nil
		}
		for _, s := range ss {
			if s.Name == name && s.URL == url {
				return true, nil
			}
		}
		return false, nil
	})
}

// StampClient is a client for the named stamp.
func (c *Cluster) StampClient(name string) *stamp.Client {
	return stamp.NewClient(c.StampURLs[name], c.HTTP())
}

// Provision creates an account with its primary on stamp-a, replicating to
// stamp-b.
func (c *Cluster) Provision(ctx context.Context, account string, partitions int) (location.Account, error) {
	return location.Provision(ctx, c.Loc, c.StampClient(StampA), c.StampClient(StampB), StampA, StampB, account, partitions)
}

// StampDataFile is the database file of durable stamp name.
func (c *Cluster) StampDataFile(name string) string {
	return filepath.Join(c.dataDir(name), stamp.DataFile)
}

// WipeStamp stops stamp name, deletes its data directory (the stamp's data
// is gone, as on a rebuilt host) and starts it again, empty, at the same
// address.
func (c *Cluster) WipeStamp(ctx context.Context, name string) error {
	c.Stamps[name].Stop(10 * time.Second)
	dir := c.dataDir(name)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("wipe %s: %w", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("wipe %s: %w", name, err)
	}
	return c.RestartStamp(ctx, name)
}

// RestartStamp restarts a stamp that was killed or stopped, on the same port
// and data, and waits until it serves.
func (c *Cluster) RestartStamp(ctx context.Context, name string) error {
	p := c.Stamps[name]
	if err := p.Restart(); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return WaitHTTPWith(wctx, c.HTTP(), c.StampURLs[name]+"/v1/health", p)
}

// Close stops everything, worker first.
func (c *Cluster) Close() {
	if c.Client != nil {
		c.Client.Close()
	}
	for _, p := range append(append([]*Process{}, c.Workers...), c.Stamps[StampA], c.Stamps[StampB], c.Location) {
		if p != nil {
			p.Stop(10 * time.Second)
		}
	}
	if c.Temporal != nil {
		c.Temporal.Stop(10 * time.Second)
	}
	if c.Postgres != nil {
		c.Postgres.Stop(10 * time.Second)
	}
}
