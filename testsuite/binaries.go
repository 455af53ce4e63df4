// Package testsuite is Baton's end-to-end harness: it builds and starts a
// real Temporal dev server, a location service and two stampd processes, a
// Baton worker process and live traffic, for the end-to-end tests, the demo
// (cmd/demo) and the benchmarks (cmd/bench).
package testsuite

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// TemporalCLIVersion is the temporal CLI whose dev server the harness runs.
// It is built from the Go module proxy (no binary download); v1.5.1 is the
// newest that builds with `go install` (later ones carry a replace
// directive).
const TemporalCLIVersion = "v1.5.1"

const temporalCLIModule = "github.com/temporalio/cli/cmd/temporal"

// CacheDir is where built tools are kept between runs: $BATON_CACHE, or
// baton/ under the user cache directory.
func CacheDir() (string, error) {
	if d := os.Getenv("BATON_CACHE"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find a cache directory (set BATON_CACHE): %w", err)
	}
	return filepath.Join(d, "baton"), nil
}

// TemporalBinary returns the path of the pinned temporal CLI, building it
// with `go install` on first use (a few minutes). $BATON_TEMPORAL_BIN
// overrides it. progress, if non-nil, hears about the build.
func TemporalBinary(ctx context.Context, progress io.Writer) (string, error) {
	if p := os.Getenv("BATON_TEMPORAL_BIN"); p != "" {
		return p, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(cache, "temporal-"+TemporalCLIVersion)
	bin := filepath.Join(dir, "temporal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	// Test packages run in parallel: one builds, the others wait.
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if progress != nil {
		fmt.Fprintf(progress, "building the Temporal dev server (%s@%s) from the Go module proxy, first run only: a few minutes...\n", temporalCLIModule, TemporalCLIVersion)
	}
	// No symbol table or DWARF: the link takes half the time.
	cmd := exec.CommandContext(ctx, "go", "install", "-ldflags=-s -w", temporalCLIModule+"@"+TemporalCLIVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s@%s: %w\n%s", temporalCLIModule, TemporalCLIVersion, err, out)
	}
	return bin, nil
}

func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// Binaries are Baton's own programs, built from this checkout.
type Binaries struct {
	Stampd string
	Worker string
	Baton  string
}

var (
	buildOnce sync.Once
	built     Binaries
	buildErr  error
)

// Build compiles stampd, the worker and the baton CLI of this checkout once
// per process, into a directory of the cache keyed by the checkout's path
// (the Go build cache makes a rebuild of unchanged code cheap). Processes
// building the same checkout take turns.
func Build(ctx context.Context) (Binaries, error) {
	buildOnce.Do(func() { built, buildErr = build(ctx) })
	return built, buildErr
}

func build(ctx context.Context) (Binaries, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return Binaries{}, err
	}
	cache, err := CacheDir()
	if err != nil {
		return Binaries{}, err
	}
	dir := filepath.Join(cache, fmt.Sprintf("bin-%08x", crc32.ChecksumIEEE([]byte(root))))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, fmt.Errorf("create %s: %w", dir, err)
	}
	unlock, err := lockFile(filepath.Join(dir, ".lock"))
	if err != nil {
		return Binaries{}, err
	}
	defer unlock()
	b := Binaries{
		Stampd: filepath.Join(dir, "stampd"),
		Worker: filepath.Join(dir, "worker"),
		Baton:  filepath.Join(dir, "baton"),
	}
	for _, t := range []struct{ pkg, out string }{{"./cmd/stampd", b.Stampd}, {"./worker", b.Worker}, {"./starter", b.Baton}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", t.out, t.pkg)
		cmd.Dir = root
		if o, err := cmd.CombinedOutput(); err != nil {
			return Binaries{}, fmt.Errorf("go build %s: %w\n%s", t.pkg, err, o)
		}
	}
	return b, nil
}

// moduleRoot finds this module's directory.
func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/batonhq/baton").Output()
	if err != nil {
		return "", fmt.Errorf("find the baton module (run from inside the checkout): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}
