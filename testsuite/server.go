package testsuite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/internal/register"
	"github.com/batonhq/baton/workflows"
)

// TemporalServerVersion is the Temporal server (go.temporal.io/server) the
// harness runs on PostgreSQL: the server binary (cmd/server) and its SQL
// schema tool (cmd/tools/sql, temporal-sql-tool), built from the Go module
// proxy with `go install`, which checks them against the checksum database.
// v1.32.1 is the newest whose go.mod asks for no newer Go than ours.
// docker-compose.yml runs the same (.env; TestComposeImagesPinnedInEnv).
const TemporalServerVersion = "v1.32.1"

const temporalServerModule = "go.temporal.io/server"

// ServerBinaries are the pinned Temporal server and temporal-sql-tool.
type ServerBinaries struct {
	Server  string
	SQLTool string
}

// TemporalServerBinaries returns the pinned server and SQL tool, building
// them on first use into CacheDir()/temporal-server-<version> (several
// minutes; one process builds, the others wait on the lock).
// $BATON_TEMPORAL_SERVER_BIN and $BATON_TEMPORAL_SQL_TOOL_BIN override them.
func TemporalServerBinaries(ctx context.Context, progress io.Writer) (ServerBinaries, error) {
	if s, t := os.Getenv("BATON_TEMPORAL_SERVER_BIN"), os.Getenv("BATON_TEMPORAL_SQL_TOOL_BIN"); s != "" && t != "" {
		return ServerBinaries{Server: s, SQLTool: t}, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return ServerBinaries{}, err
	}
	dir := filepath.Join(cache, "temporal-server-"+TemporalServerVersion)
	b := ServerBinaries{Server: filepath.Join(dir, "temporal-server"), SQLTool: filepath.Join(dir, "temporal-sql-tool")}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return ServerBinaries{}, fmt.Errorf("create %s: %w", dir, err)
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return ServerBinaries{}, err
	}
	defer unlock()
	_, err1 := os.Stat(b.Server)
	_, err2 := os.Stat(b.SQLTool)
	if err1 == nil && err2 == nil {
		return b, nil
	}
	if progress != nil {
		fmt.Fprintf(progress, "building the Temporal server and temporal-sql-tool (%s@%s) from the Go module proxy, first run only: several minutes...\n", temporalServerModule, TemporalServerVersion)
	}
	// go install names the binaries after their directories: server, sql.
	// A build that was cut short (its process killed) left its directory.
	if stale, _ := filepath.Glob(filepath.Join(dir, "build-*")); len(stale) > 0 {
		for _, d := range stale {
			_ = os.RemoveAll(d)
		}
	}
	tmp, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return ServerBinaries{}, fmt.Errorf("create a build directory: %w", err)
	}
	defer os.RemoveAll(tmp)
	// No symbol table or DWARF: the link takes half the time.
	args := []string{"go", "install", "-ldflags=-s -w",
		temporalServerModule + "/cmd/server@" + TemporalServerVersion,
		temporalServerModule + "/cmd/tools/sql@" + TemporalServerVersion}
	// At low priority: the test suite starts this build early, beside
	// tests that are running (see main_test.go).
	if nice, err := exec.LookPath("nice"); err == nil {
		args = append([]string{nice, "-n", "10"}, args...)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=-buildvcs=false")
	// Dies with us (a test binary that ends before the build does).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		return ServerBinaries{}, fmt.Errorf("go install %s/cmd/server and cmd/tools/sql @%s: %w\n%s", temporalServerModule, TemporalServerVersion, err, out)
	}
	for from, to := range map[string]string{"server": b.Server, "sql": b.SQLTool} {
		if err := os.Rename(filepath.Join(tmp, from), to); err != nil {
			return ServerBinaries{}, fmt.Errorf("install %s: %w", to, err)
		}
	}
	return b, nil
}

// ServerOptions configure a Temporal server on PostgreSQL.
type ServerOptions struct {
	Dir      string // config, dynamic config and log go here
	Postgres *Postgres
	// HistoryShards is persistence.numHistoryShards (default 4: one
	// process on a small machine; fixed for the life of the database).
	HistoryShards int
	// Namespace to register (default "default").
	Namespace string
	Progress  io.Writer
}

// TemporalServer is the real Temporal server (all services in one process:
// frontend, history, matching, worker) on PostgreSQL, bound to 127.0.0.1.
type TemporalServer struct {
	*Process
	HostPort   string // frontend gRPC
	HTTPPort   int    // frontend HTTP API
	MetricsURL string // the server's own Prometheus metrics
	Namespace  string
	ConfigFile string
	Postgres   *Postgres
}

// StartServer creates Temporal's two databases and their schemas with
// temporal-sql-tool, writes a config file, starts the server, waits until
// it serves, and registers the namespace and Baton's search attributes.
func StartServer(ctx context.Context, o ServerOptions) (_ *TemporalServer, err error) {
	if o.Postgres == nil {
		return nil, errors.New("testsuite: ServerOptions.Postgres is required")
	}
	if o.HistoryShards == 0 {
		o.HistoryShards = 4
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	bins, err := TemporalServerBinaries(ctx, o.Progress)
	if err != nil {
		return nil, err
	}
	if err := SetupSchema(ctx, bins.SQLTool, o.Postgres, filepath.Join(o.Dir, "temporal-sql-tool.log")); err != nil {
		return nil, err
	}
	ports := make([]int, 10)
	for i := range ports {
		// Membership ports are stored in a smallint column of the SQL
		// schema (cluster_membership.rpc_port), so they must be below
		// 32768, where the kernel's ephemeral ports are not.
		if i == 1 || i == 4 || i == 6 || i == 8 {
			ports[i], err = freeLowPort()
		} else {
			ports[i], err = FreePort()
		}
		if err != nil {
			return nil, err
		}
	}
	cfg := serverConfig{
		PGAddr: o.Postgres.Addr(), PGUser: o.Postgres.User, PGPassword: o.Postgres.Password,
		Shards:      o.HistoryShards,
		FrontendRPC: ports[0], FrontendMembership: ports[1], FrontendHTTP: ports[2],
		HistoryRPC: ports[3], HistoryMembership: ports[4],
		MatchingRPC: ports[5], MatchingMembership: ports[6],
		WorkerRPC: ports[7], WorkerMembership: ports[8],
		MetricsPort:   ports[9],
		DynamicConfig: filepath.Join(o.Dir, "temporal-dynamicconfig.yaml"),
	}
	s := &TemporalServer{HostPort: addr(cfg.FrontendRPC), HTTPPort: cfg.FrontendHTTP, Namespace: o.Namespace,
		MetricsURL: "http://" + addr(cfg.MetricsPort) + "/metrics",
		ConfigFile: filepath.Join(o.Dir, "temporal-server.yaml"), Postgres: o.Postgres}
	if err := os.WriteFile(cfg.DynamicConfig, []byte(serverDynamicConfig), 0o644); err != nil {
		return nil, fmt.Errorf("write the server's dynamic config: %w", err)
	}
	var b strings.Builder
	if err := serverConfigTemplate.Execute(&b, cfg); err != nil {
		return nil, fmt.Errorf("render the server config: %w", err)
	}
	if err := os.WriteFile(s.ConfigFile, []byte(b.String()), 0o644); err != nil {
		return nil, fmt.Errorf("write the server config: %w", err)
	}
	s.Process = &Process{Name: "temporal-server", Path: bins.Server, Log: logPath(o.Dir, "temporal-server"),
		Args: []string{"--config-file", s.ConfigFile, "--allow-no-auth", "start"}}
	if err := s.Start(); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Kill()
		}
	}()
	if err := s.WaitReady(ctx); err != nil {
		return nil, err
	}
	if err := s.setupNamespace(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// WaitReady polls until the frontend answers a health check.
func (s *TemporalServer) WaitReady(ctx context.Context) error {
	if err := waitFrontend(ctx, s.HostPort, s.Process); err != nil {
		return fmt.Errorf("temporal server on %s not ready: %w; log %s ends:\n%s", s.HostPort, err, s.Log, logTail(s.Log, 10))
	}
	return nil
}

// freeLowPort finds a free loopback port in [20000, 32768).
func freeLowPort() (int, error) {
	for range 200 {
		port := 20000 + rand.IntN(32768-20000)
		l, err := net.Listen("tcp", addr(port))
		if err == nil {
			l.Close()
			return port, nil
		}
	}
	return 0, errors.New("find a free port below 32768: 200 tries, all taken")
}

// setupNamespace registers the namespace and Baton's search attributes
// (what an operator does once per cluster) and waits until the frontend's
// namespace cache knows both.
func (s *TemporalServer) setupNamespace(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	opts := client.Options{HostPort: s.HostPort, Namespace: s.Namespace, Logger: logging.NewZapAdapter(zap.NewNop())}
	nc, err := client.NewNamespaceClient(opts)
	if err != nil {
		return fmt.Errorf("connect to the temporal server: %w", err)
	}
	defer nc.Close()
	err = nc.Register(ctx, &workflowservice.RegisterNamespaceRequest{
		Namespace:                        s.Namespace,
		WorkflowExecutionRetentionPeriod: durationpb.New(24 * time.Hour),
	})
	var exists *serviceerror.NamespaceAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("register namespace %s: %w", s.Namespace, err)
	}
	c, err := client.Dial(opts)
	if err != nil {
		return fmt.Errorf("connect to the temporal server: %w", err)
	}
	defer c.Close()
	err = Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		return register.SearchAttributes(ctx, c, s.Namespace) == nil, nil
	})
	if err != nil {
		return fmt.Errorf("register search attributes %v in namespace %s: %w", workflows.SearchAttributeNames(), s.Namespace, err)
	}
	// A visibility query naming every search attribute is refused until the
	// namespace cache has them; after that, workflows can be started with them.
	q := make([]string, 0, 4)
	for _, n := range workflows.SearchAttributeNames() {
		q = append(q, n+" = 'probe'")
	}
	err = Poll(ctx, 200*time.Millisecond, func() (bool, error) {
		_, err := c.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: s.Namespace, Query: strings.Join(q, " AND ")})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("namespace %s with Baton's search attributes not usable: %w", s.Namespace, err)
	}
	return nil
}

// SetupSchema creates the temporal and temporal_visibility databases and
// their schemas with temporal-sql-tool, exactly as an operator does
// (docker-compose's admin-tools service runs the same steps), using the
// schema embedded in the tool. Its output goes to logFile.
func SetupSchema(ctx context.Context, sqlTool string, pg *Postgres, logFile string) error {
	log, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", logFile, err)
	}
	defer log.Close()
	for _, db := range []struct{ name, schema string }{
		{"temporal", "postgresql/v12/temporal"},
		{"temporal_visibility", "postgresql/v12/visibility"},
	} {
		for _, step := range [][]string{
			{"create"},
			{"setup-schema", "-v", "0.0"},
			{"update-schema", "--schema-name", db.schema},
		} {
			args := append([]string{"--plugin", "postgres12", "--ep", pg.Host, "-p", strconv.Itoa(pg.Port),
				"-u", pg.User, "--pw", pg.Password, "--db", db.name}, step...)
			cmd := exec.CommandContext(ctx, sqlTool, args...)
			cmd.Stdout, cmd.Stderr = log, log
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("temporal-sql-tool --db %s %s: %w (log %s)\n%s", db.name, strings.Join(step, " "), err, logFile, logTail(logFile, 20))
			}
		}
	}
	return nil
}

type serverConfig struct {
	PGAddr, PGUser, PGPassword string
	Shards                     int

	FrontendRPC, FrontendMembership, FrontendHTTP int
	HistoryRPC, HistoryMembership                 int
	MatchingRPC, MatchingMembership               int
	WorkerRPC, WorkerMembership                   int
	MetricsPort                                   int
	DynamicConfig                                 string
}

// serverConfigTemplate follows the server's config/development-postgres12.yaml,
// with every port free and bound to 127.0.0.1, no archival, and the
// server's own Prometheus metrics on MetricsPort.
var serverConfigTemplate = template.Must(template.New("config").Parse(`# Written by Baton's test harness (testsuite/server.go).
log:
  stdout: true
  level: warn
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: {{.Shards}}
  datastores:
    postgres-default:
      sql:
        pluginName: postgres12
        databaseName: temporal
        connectAddr: "{{.PGAddr}}"
        connectProtocol: tcp
        user: "{{.PGUser}}"
        password: "{{.PGPassword}}"
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h
    postgres-visibility:
      sql:
        pluginName: postgres12
        databaseName: temporal_visibility
        connectAddr: "{{.PGAddr}}"
        connectProtocol: tcp
        user: "{{.PGUser}}"
        password: "{{.PGPassword}}"
        maxConns: 10
        maxIdleConns: 10
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "127.0.0.1:{{.MetricsPort}}"
services:
  frontend:
    rpc:
      grpcPort: {{.FrontendRPC}}
      membershipPort: {{.FrontendMembership}}
      httpPort: {{.FrontendHTTP}}
      bindOnIP: 127.0.0.1
  history:
    rpc:
      grpcPort: {{.HistoryRPC}}
      membershipPort: {{.HistoryMembership}}
      bindOnIP: 127.0.0.1
  matching:
    rpc:
      grpcPort: {{.MatchingRPC}}
      membershipPort: {{.MatchingMembership}}
      bindOnIP: 127.0.0.1
  worker:
    rpc:
      grpcPort: {{.WorkerRPC}}
      membershipPort: {{.WorkerMembership}}
      bindOnIP: 127.0.0.1
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:{{.FrontendRPC}}"
      httpAddress: "127.0.0.1:{{.FrontendHTTP}}"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: "{{.DynamicConfig}}"
  pollInterval: 10s
`))

// serverDynamicConfig is deploy/temporal/dynamicconfig/development-sql.yaml's
// settings (eager activities), plus a short namespace cache refresh so that
// a namespace and search attributes registered by the harness are usable
// within a second rather than ten.
const serverDynamicConfig = `# Written by Baton's test harness (testsuite/server.go).
system.enableActivityEagerExecution:
  - value: true
limit.maxIDLength:
  - value: 255
    constraints: {}
system.namespaceCacheRefreshInterval:
  - value: 1s
`

// logTail is the last n lines of a log file, for error messages.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
