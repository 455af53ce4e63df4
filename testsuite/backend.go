package testsuite

import (
	"context"
	"fmt"
	"strconv"
)

// Backend is the Temporal server a Cluster runs on.
type Backend int

const (
	// BackendDevServer is `temporal server start-dev` (SQLite in a file):
	// quick to start, the default.
	BackendDevServer Backend = iota
	// BackendPostgres is the real Temporal server (go.temporal.io/server,
	// all services in one process) on a PostgreSQL server of its own, with
	// the schema made by temporal-sql-tool. Needs PostgreSQL's server
	// binaries (ErrNoPostgres).
	BackendPostgres
)

func (b Backend) String() string {
	if b == BackendPostgres {
		return "temporal server on postgresql"
	}
	return "temporal dev server"
}

// startTemporal starts the Options' backend (c.Temporal).
func (c *Cluster) startTemporal(ctx context.Context) (err error) {
	o := c.Opts
	switch o.Backend {
	case BackendDevServer:
		c.say("starting the Temporal dev server")
		if c.Temporal, err = StartDevServer(ctx, DevServerOptions{Dir: o.Dir, UI: o.UI, UIPort: o.UIPort, Progress: o.Progress}); err != nil {
			return err
		}
	case BackendPostgres:
		if o.UI {
			return fmt.Errorf("testsuite: the Web UI (Options.UI) is only served with the dev server backend")
		}
		c.say("starting PostgreSQL")
		if c.Postgres, err = StartPostgres(ctx, PostgresOptions{Dir: o.Dir, NonDurable: o.PostgresNonDurable}); err != nil {
			return err
		}
		c.say("PostgreSQL on %s, %s", c.Postgres.Addr(), c.Postgres.Mode())
		c.say("creating Temporal's schema with temporal-sql-tool and starting the Temporal server on PostgreSQL %s", c.Postgres.Addr())
		if c.Server, err = StartServer(ctx, ServerOptions{Dir: o.Dir, Postgres: c.Postgres, Progress: o.Progress}); err != nil {
			return err
		}
		// Callers that stop, kill or restart "the Temporal server" keep
		// working: it is the same process.
		c.Temporal = &DevServer{Process: c.Server.Process, HostPort: c.Server.HostPort}
	default:
		return fmt.Errorf("testsuite: unknown backend %d", o.Backend)
	}
	return nil
}

// startWorkers starts Options.Workers worker processes (at least one) on
// the task queue.
func (c *Cluster) startWorkers() error {
	n := max(c.Opts.Workers, 1)
	if n == 1 {
		c.say("starting the worker")
	} else {
		c.say("starting %d workers", n)
	}
	for i := range n {
		name := "worker"
		if i > 0 {
			name = "worker-" + strconv.Itoa(i+1)
		}
		args := append([]string{"--location", c.LocationURL, "--log-format", "json"}, c.clientArgs(CertWorker)...)
		if c.Opts.WorkerMetrics {
			port, err := FreePort()
			if err != nil {
				return err
			}
			args = append(args, "--metrics-listen", addr(port))
			c.WorkerMetricsURLs = append(c.WorkerMetricsURLs, "http://"+addr(port)+"/metrics")
		}
		p := &Process{Name: name, Path: c.Bin.Worker, Log: logPath(c.Opts.Dir, name),
			Args: append(args, c.Opts.WorkerArgs...),
			Env:  []string{"TEMPORAL_ADDRESS=" + c.Temporal.HostPort, "TEMPORAL_NAMESPACE=default"}}
		if err := p.Start(); err != nil {
			return err
		}
		c.Workers = append(c.Workers, p)
	}
	c.Worker = c.Workers[0]
	return nil
}
