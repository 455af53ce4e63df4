package testsuite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// The compose file is checked two ways: docker-compose itself validates it
// (TestComposeConfigValid), and TestComposeCommandsMatchTheBinaries runs
// every Baton service's command line against the real binaries.

var composeFile = "../docker-compose.yml"

// composeSpec is the part of a compose file the checks read.
type composeSpec struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string         `yaml:"image"`
	Build       *composeBuild  `yaml:"build"`
	Entrypoint  shellWords     `yaml:"entrypoint"`
	Command     shellWords     `yaml:"command"`
	Environment composeEnv     `yaml:"environment"`
	Ports       []string       `yaml:"ports"`
	Expose      []string       `yaml:"expose"`
	DependsOn   yaml.Node      `yaml:"depends_on"`
	Volumes     []string       `yaml:"volumes"`
	Profiles    []string       `yaml:"profiles"`
	Extra       map[string]any `yaml:",inline"`
}

type composeBuild struct {
	Context    string            `yaml:"context"`
	Dockerfile string            `yaml:"dockerfile"`
	Args       map[string]string `yaml:"args"`
}

// shellWords is a compose command or entrypoint: a list, or a string split
// on spaces.
type shellWords []string

func (w *shellWords) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*w = strings.Fields(n.Value)
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*w = l
	return nil
}

// composeEnv is a service's environment: a map, or a list of K=V.
type composeEnv map[string]string

func (e *composeEnv) UnmarshalYAML(n *yaml.Node) error {
	*e = composeEnv{}
	if n.Kind == yaml.SequenceNode {
		var l []string
		if err := n.Decode(&l); err != nil {
			return err
		}
		for _, kv := range l {
			k, v, _ := strings.Cut(kv, "=")
			(*e)[k] = v
		}
		return nil
	}
	var m map[string]string
	if err := n.Decode(&m); err != nil {
		return err
	}
	for k, v := range m {
		(*e)[k] = v
	}
	return nil
}

func loadCompose(t *testing.T) composeSpec {
	t.Helper()
	b, err := os.ReadFile(composeFile)
	require.NoError(t, err)
	var spec composeSpec
	require.NoError(t, yaml.Unmarshal(b, &spec), "parse %s", composeFile)
	require.NotEmpty(t, spec.Services)
	return spec
}

// batonImage is the image deploy/Dockerfile builds.
const batonImage = "baton:local"

// batonServices are the services that run Baton's own image.
func batonServices(spec composeSpec) []string {
	var names []string
	for name, s := range spec.Services {
		if s.Image == batonImage || (s.Build != nil && s.Build.Dockerfile == "deploy/Dockerfile") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// dockerfileBinaries reads which programs deploy/Dockerfile builds: the
// names `go build -o /out/NAME PKG` and `go build -o /out/ PKG...` give
// them, mapped to their packages.
func dockerfileBinaries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../deploy/Dockerfile")
	require.NoError(t, err)
	bins := map[string]string{}
	re := regexp.MustCompile(`go build[^&\n]*?-o (/out/\S*)((?:\s+\./\S+)+)`)
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		pkgs := strings.Fields(m[2])
		if strings.HasSuffix(m[1], "/") {
			for _, p := range pkgs {
				bins[filepath.Base(p)] = p
			}
		} else {
			bins[filepath.Base(m[1])] = pkgs[0]
		}
	}
	require.NotEmpty(t, bins, "no `go build -o /out/...` lines in deploy/Dockerfile")
	return bins
}

// TestComposeCommandsMatchTheBinaries: every Baton service of
// docker-compose.yml runs a program the Dockerfile builds, with a
// subcommand and flags that program accepts (its command line is run with
// --help appended: the real flag parser checks every flag and value
// without starting anything), environment variables the program reads,
// listen addresses reachable from other containers, and URLs and published
// ports that point at ports something listens on.
func TestComposeCommandsMatchTheBinaries(t *testing.T) {
	spec := loadCompose(t)
	names := batonServices(spec)
	for _, want := range []string{"location", "stamp-a", "stamp-b", "provision-demo", "baton-worker", "baton-cli"} {
		require.Contains(t, names, want, "docker-compose.yml lacks the Baton service %s", want)
	}
	bins := dockerfileBinaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	paths := binaryPaths(ctx, t, bins)

	listens := listenPorts(spec)
	for _, name := range names {
		s := spec.Services[name]
		t.Run(name, func(t *testing.T) {
			argv := append(append([]string{}, s.Entrypoint...), s.Command...)
			require.NotEmpty(t, argv, "no entrypoint or command: the image's default is only `worker --help`")
			prog := argv[0]
			path, ok := paths[prog]
			require.True(t, ok, "runs %q, which deploy/Dockerfile does not build (it builds %v)", prog, keys(bins))
			args := argv[1:]
			sub, flags := splitCommand(args)

			// The real parser: the whole command line plus --help must
			// exit 0 (an unknown flag, a bad value or a stray argument
			// fails before --help is reached).
			out, err := runHelp(ctx, path, append(slices.Clone(args), "--help"))
			require.NoError(t, err, "`%s %s --help` refused the command line:\n%s", prog, strings.Join(args, " "), out)

			// And a clear message per flag: it is in the (sub)command's help.
			help, err := runHelp(ctx, path, append(slices.Clone(sub), "--help"))
			require.NoError(t, err, "%s %s --help:\n%s", prog, strings.Join(sub, " "), help)
			known := helpFlags(help)
			require.NotEmpty(t, known, "no flags found in `%s %s --help`:\n%s", prog, strings.Join(sub, " "), help)
			for _, f := range flags {
				require.Contains(t, known, f.name, "%s: `%s %s` has no flag --%s; it has %v", name, prog, strings.Join(sub, " "), f.name, known)
				if f.name == "listen" || f.name == "metrics-listen" {
					host, _, err := net.SplitHostPort(f.value)
					require.NoError(t, err, "--%s %q", f.name, f.value)
					require.NotContains(t, []string{"127.0.0.1", "localhost", "::1"}, host,
						"%s: --%s %s listens on the container's loopback: no other container can reach it", name, f.name, f.value)
				}
				checkReference(t, spec, listens, name, "--"+f.name, f.value)
			}

			// Environment: every variable is one the program documents
			// (its help names the variables it reads).
			rootHelp, err := runHelp(ctx, path, []string{"--help"})
			require.NoError(t, err)
			for k, v := range s.Environment {
				require.True(t, strings.Contains(help, k) || strings.Contains(rootHelp, k),
					"%s sets %s, which `%s` does not read (its --help does not name it)", name, k, prog)
				checkReference(t, spec, listens, name, k, v)
			}

			// Published ports: the container side is a port it listens on.
			for _, p := range append(slices.Clone(s.Ports), s.Expose...) {
				container := p[strings.LastIndex(p, ":")+1:]
				container, _, _ = strings.Cut(container, "/")
				require.Contains(t, listens[name], container, "%s publishes %s, but listens on %v", name, p, listens[name])
			}
		})
	}
}

type usedFlag struct{ name, value string }

// splitCommand splits a command line into its subcommand path (the leading
// words) and its flags with their values (the word after a flag without
// "=" is its value unless it is itself a flag).
func splitCommand(args []string) (sub []string, flags []usedFlag) {
	i := 0
	for ; i < len(args) && !strings.HasPrefix(args[i], "-"); i++ {
		sub = append(sub, args[i])
	}
	for ; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") {
			value = args[i+1]
			i++
		}
		flags = append(flags, usedFlag{name, value})
	}
	return sub, flags
}

// helpFlags finds flag names in help output: Go's flag package ("  -name
// value") and cobra ("  -x, --name string").
func helpFlags(help string) []string {
	re := regexp.MustCompile(`(?m)^\s+(?:-\w, )?--?([A-Za-z0-9][\w-]*)`)
	var names []string
	for _, m := range re.FindAllStringSubmatch(help, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	return names
}

func runHelp(ctx context.Context, path string, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	// What the container's environment would not have: nothing of ours.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// binaryPaths builds the Dockerfile's programs: stampd, worker and baton
// through Build, any other with go build.
func binaryPaths(ctx context.Context, t *testing.T, bins map[string]string) map[string]string {
	t.Helper()
	b, err := Build(ctx)
	require.NoError(t, err)
	paths := map[string]string{"stampd": b.Stampd, "worker": b.Worker, "baton": b.Baton}
	dir := t.TempDir()
	for name, pkg := range bins {
		if _, ok := paths[name]; ok {
			continue
		}
		out := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
		cmd.Dir = ".."
		o, err := cmd.CombinedOutput()
		require.NoError(t, err, "go build %s:\n%s", pkg, o)
		paths[name] = out
	}
	for name := range paths {
		if _, ok := bins[name]; !ok {
			delete(paths, name) // built for the harness, not in the image
		}
	}
	return paths
}

// listenPorts: per service, the ports it listens on inside its container.
// Baton services: their --listen and --metrics-listen flags (the default
// listen ports do not count: compose must say). Others: the container side
// of their published and exposed ports, and the well-known port of the
// official images used.
func listenPorts(spec composeSpec) map[string][]string {
	wellKnown := map[string]string{"postgres": "5432", "temporalio/server": "7233", "temporalio/ui": "8080"}
	out := map[string][]string{}
	for name, s := range spec.Services {
		for _, p := range append(slices.Clone(s.Ports), s.Expose...) {
			c := p[strings.LastIndex(p, ":")+1:]
			c, _, _ = strings.Cut(c, "/")
			out[name] = append(out[name], c)
		}
		img, _, _ := strings.Cut(s.Image, ":")
		if port, ok := wellKnown[img]; ok {
			out[name] = append(out[name], port)
		}
		if s.Image == batonImage {
			out[name] = nil // only what the command says
			_, flags := splitCommand(append(append([]string{}, s.Entrypoint...), s.Command...))
			for _, f := range flags {
				if f.name == "listen" || f.name == "metrics-listen" {
					if _, port, err := net.SplitHostPort(f.value); err == nil {
						out[name] = append(out[name], port)
					}
				}
			}
		}
	}
	return out
}

// checkReference: a value that names another service (http://svc:port or
// svc:port) names one that exists and listens on that port.
func checkReference(t *testing.T, spec composeSpec, listens map[string][]string, service, what, value string) {
	t.Helper()
	host, port, err := hostPort(value)
	if err != nil || host == "" || port == "" {
		return
	}
	if host == "localhost" || host == "127.0.0.1" || host == "0.0.0.0" {
		return // the operator's browser (TEMPORAL_UI) or a bind address
	}
	_, ok := spec.Services[host]
	require.True(t, ok, "%s: %s %s names host %s, which is no service of docker-compose.yml", service, what, value, host)
	require.Contains(t, listens[host], port, "%s: %s %s: service %s listens on %v", service, what, value, host, listens[host])
}

func hostPort(v string) (string, string, error) {
	if strings.Contains(v, "://") {
		u, err := url.Parse(v)
		if err != nil {
			return "", "", err
		}
		return u.Hostname(), u.Port(), nil
	}
	if !regexp.MustCompile(`^[a-z][a-z0-9-]*:\d+$`).MatchString(v) {
		return "", "", errors.New("not host:port")
	}
	return net.SplitHostPort(v)
}

func keys(m map[string]string) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

// TestComposeBindMountsExist: every file or directory docker-compose.yml
// mounts from the checkout exists, and the Temporal server's dynamic config
// file is in the directory mounted where the image reads it.
func TestComposeBindMountsExist(t *testing.T) {
	spec := loadCompose(t)
	for name, s := range spec.Services {
		mounts := map[string]string{} // container path -> host path
		for _, v := range s.Volumes {
			host, rest, ok := strings.Cut(v, ":")
			if !ok || !strings.HasPrefix(host, ".") {
				continue // a named volume
			}
			_, err := os.Stat(filepath.Join("..", host))
			require.NoError(t, err, "%s mounts %s, which is not in the checkout", name, host)
			container, _, _ := strings.Cut(rest, ":")
			mounts[container] = host
		}
		if p := s.Environment["DYNAMIC_CONFIG_FILE_PATH"]; p != "" {
			// The temporalio/server image resolves it under /etc/temporal.
			full := filepath.Join("/etc/temporal", p)
			host, ok := mounts[filepath.Dir(full)]
			require.True(t, ok, "%s: DYNAMIC_CONFIG_FILE_PATH %s: nothing is mounted on %s", name, p, filepath.Dir(full))
			_, err := os.Stat(filepath.Join("..", host, filepath.Base(full)))
			require.NoError(t, err, "%s: DYNAMIC_CONFIG_FILE_PATH %s is not in %s", name, p, host)
		}
	}
}

// TestComposeImagesPinnedInEnv: every image tag is a variable of .env, so
// versions live in one place, and the Temporal server's is the one the
// tests run.
func TestComposeImagesPinnedInEnv(t *testing.T) {
	spec := loadCompose(t)
	env, err := os.ReadFile("../.env")
	require.NoError(t, err)
	vars := map[string]string{}
	for _, line := range strings.Split(string(env), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			vars[k] = v
		}
	}
	ref := regexp.MustCompile(`^\$\{(\w+)\}$`)
	for name, s := range spec.Services {
		if s.Image == batonImage {
			continue
		}
		_, tag, ok := strings.Cut(s.Image, ":")
		require.True(t, ok, "%s: image %q has no tag", name, s.Image)
		m := ref.FindStringSubmatch(tag)
		require.NotNil(t, m, "%s: image %q: pin its version in .env as ${VAR}", name, s.Image)
		require.NotEmpty(t, vars[m[1]], "%s: %s is not set in .env", name, m[1])
	}
	// Compose runs the Temporal server the tests run.
	want := strings.TrimPrefix(TemporalServerVersion, "v")
	for _, v := range []string{"TEMPORAL_VERSION", "TEMPORAL_ADMINTOOLS_VERSION"} {
		require.Equal(t, want, vars[v], ".env's %s is not the server the tests run (testsuite.TemporalServerVersion %s)", v, TemporalServerVersion)
	}
}

// TestComposeConfigValid runs `docker-compose config` (Debian's
// docker-compose; no engine needed) on docker-compose.yml with .env, with
// and without the cli profile. Skipped when docker-compose is missing,
// except in CI (CI=true), where .ci/run installs it.
func TestComposeConfigValid(t *testing.T) {
	bin, err := exec.LookPath("docker-compose")
	if err != nil {
		msg := "docker-compose not installed (apt-get install docker-compose)"
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s: .ci/run installs it", msg)
		}
		t.Skipf("skipped: %s; with CI=true this fails", msg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, profile := range []string{"", "cli"} {
		args := []string{"--project-directory", "..", "-f", composeFile}
		if profile != "" {
			args = append(args, "--profile", profile)
		}
		cmd := exec.CommandContext(ctx, bin, append(args, "config")...)
		// Only .env may set the versions: none of ours leaks in.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		require.NoError(t, cmd.Run(), "docker-compose config (profile %q):\n%s", profile, stderr.String())
		require.NotContains(t, stderr.String(), "WARNING", "docker-compose config warns (unset variable?):\n%s", stderr.String())
		// The interpolated result has every version resolved.
		require.NotContains(t, stdout.String(), "${", fmt.Sprintf("unresolved variable in docker-compose config output (profile %q)", profile))
	}
}
