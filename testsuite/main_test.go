package testsuite

import (
	"context"
	"flag"
	"io"
	"os"
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
func TestMain(m *testing.M) {
	flag.Parse()
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
