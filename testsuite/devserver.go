package testsuite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/client"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/workflows"
)

// DevServerOptions configure a Temporal dev server.
type DevServerOptions struct {
	Dir string // state and log go here
	// UI serves the Web UI on UIPort (0 = a free port); off = headless.
	UI     bool
	UIPort int
	// Port is the frontend gRPC port (0 = a free port).
	Port int
	// Progress hears about a first-run build of the server.
	Progress io.Writer
}

// DevServer is a running `temporal server start-dev` with file-backed
// SQLite in WAL mode (about 4x faster than the default journal here).
type DevServer struct {
	*Process
	HostPort string
	UIURL    string // "" when headless
	DBFile   string
}

// StartDevServer builds (first run) and starts a dev server and waits until
// it serves.
func StartDevServer(ctx context.Context, o DevServerOptions) (*DevServer, error) {
	bin, err := TemporalBinary(ctx, o.Progress)
	if err != nil {
		return nil, err
	}
	// The ports are picked free and then bound by the server, as are its
	// internal services' (history, matching): another process may take
	// one in between. A start that died of it is tried again on new ports.
	for attempt := 1; ; attempt++ {
		ds, err := startDevServer(ctx, o, bin)
		switch {
		case err == nil:
			return ds, nil
		case attempt == 3 || ds == nil || ds.Process == nil || !ds.lostAPort():
			return nil, err
		}
	}
}

// lostAPort reports whether the server's log says a port it was to bind
// was taken.
func (d *DevServer) lostAPort() bool {
	b, err := os.ReadFile(d.Log)
	return err == nil && strings.Contains(string(b), "address already in use")
}

// startDevServer is one attempt of StartDevServer.
func startDevServer(ctx context.Context, o DevServerOptions, bin string) (*DevServer, error) {
	var err error
	port := o.Port
	if port == 0 {
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	httpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	metricsPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	ds := &DevServer{HostPort: addr(port), DBFile: filepath.Join(o.Dir, "temporal.db")}
	args := []string{"server", "start-dev",
		"--ip", "127.0.0.1", "--port", strconv.Itoa(port),
		"--http-port", strconv.Itoa(httpPort), "--metrics-port", strconv.Itoa(metricsPort),
		"--db-filename", ds.DBFile,
		"--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
		"--log-level", "warn",
		// Eager activities: a worker that schedules an activity on its own
		// task queue gets it in the workflow task's answer, saving a
		// matching round trip per step of the failover.
		"--dynamic-config-value", "system.enableActivityEagerExecution=true",
	}
	for _, name := range workflows.SearchAttributeNames() {
		args = append(args, "--search-attribute", name+"=Keyword")
	}
	if o.UI {
		uiPort := o.UIPort
		if uiPort == 0 {
			if uiPort, err = FreePort(); err != nil {
				return nil, err
			}
		}
		args = append(args, "--ui-port", strconv.Itoa(uiPort))
		ds.UIURL = "http://" + addr(uiPort)
	} else {
		args = append(args, "--headless")
	}
	ds.Process = &Process{Name: "temporal", Path: bin, Args: args, Log: logPath(o.Dir, "temporal")}
	_ = os.Remove(ds.Log) // a retry's log says only what it saw
	if err := ds.Start(); err != nil {
		return ds, err
	}
	if err := ds.WaitReady(ctx); err != nil {
		ds.Kill()
		return ds, err
	}
	return ds, nil
}

// WaitReady polls until the frontend answers a health check (also after a
// restart of the same process).
func (d *DevServer) WaitReady(ctx context.Context) error {
	if err := waitFrontend(ctx, d.HostPort, d.Process); err != nil {
		return fmt.Errorf("temporal dev server on %s not ready: %w (see %s)", d.HostPort, err, d.Log)
	}
	return nil
}

// waitFrontend polls, for up to two minutes, until the Temporal frontend
// at hostPort answers a health check, or its process p exits.
func waitFrontend(ctx context.Context, hostPort string, p *Process) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return Poll(ctx, 100*time.Millisecond, func() (bool, error) {
		if !p.Running() {
			return false, errors.New("it exited")
		}
		c, err := client.Dial(client.Options{HostPort: hostPort, Logger: logging.NewZapAdapter(zap.NewNop())})
		if err != nil {
			return false, nil
		}
		defer c.Close()
		_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err == nil, nil
	})
}
