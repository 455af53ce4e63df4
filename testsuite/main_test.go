package testsuite

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestMain starts building the Temporal server and temporal-sql-tool (the
// PostgreSQL test's, several minutes on a fresh machine) in the background
// at low priority, so the build overlaps the dev-server tests that run
// before it instead of adding to the suite's time. It does so only when
// that test will run: not with -short, not without PostgreSQL, and only if
// -run selects it. Once built, the binaries are cached (CacheDir) and this
// costs nothing.
//
// It also makes sure nothing is left behind when the test binary is ended
// by Ctrl-C, SIGTERM or a closed terminal (SIGHUP): every process the
// harness started is stopped and every temporary directory removed
// (Cleanup) before it exits.
func TestMain(m *testing.M) {
	flag.Parse()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, Signals...)
	go func() {
		sig := <-sigs
		procs, dirs := Cleanup(5 * time.Second)
		fmt.Fprintf(os.Stderr, "testsuite: %v: stopped %d processes, removed %d directories\n", sig, procs, dirs)
		os.Exit(1)
	}()
	if !testing.Short() && willRun("TestPostgresClusterWorkerKilledMidFlush") {
		if _, err := PostgresBinDir(); err == nil {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
				defer cancel()
				// Errors surface in the test, which builds (or waits) again.
				_, _ = TemporalServerBinaries(ctx, io.Discard)
			}()
		}
	}
	os.Exit(m.Run())
}

// willRun reports whether -test.run selects the top-level test name.
func willRun(name string) bool {
	f := flag.Lookup("test.run")
	if f == nil || f.Value.String() == "" {
		return true
	}
	top, _, _ := strings.Cut(f.Value.String(), "/")
	re, err := regexp.Compile(top)
	return err == nil && re.MatchString(name)
}

// runDir is the directory of one test's cluster: logs, configs and data.
// It is removed when the test passes; when it fails it is kept and the test
// logs one line, "logs kept in DIR". A signal removes it (TestMain).
func runDir(t *testing.T) string {
	t.Helper()
	d, err := NewRunDir("", strings.ReplaceAll(t.Name(), "/", "-"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Finish(testLog{t}, t.Failed()) })
	return d.Path
}

// testLog writes lines to a test's log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
