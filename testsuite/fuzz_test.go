package testsuite

import (
	"bufio"
	"context"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// fuzzTargets finds every FuzzXxx in the repository's tests, by package
// directory.
func fuzzTargets(t *testing.T) map[string][]string {
	t.Helper()
	re := regexp.MustCompile(`^func (Fuzz\w+)\(f \*testing\.F\)`)
	out := map[string][]string{}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "artifacts" || d.Name() == "node_modules") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				dir := "./" + filepath.ToSlash(filepath.Dir(strings.TrimPrefix(path, "../")))
				out[dir] = append(out[dir], m[1])
			}
		}
		return sc.Err()
	})
	require.NoError(t, err)
	return out
}

// TestFuzzTargetsRunBriefly: every fuzz target (found in the sources, so a
// new one is run too) fuzzes for a few seconds beyond its seeds without a
// failure. The decoders of everything that comes from the network or a
// file must have one.
func TestFuzzTargetsRunBriefly(t *testing.T) {
	if testing.Short() {
		t.Skip("fuzzes each target for seconds (skipped with -short)")
	}
	targets := fuzzTargets(t)
	for dir, want := range map[string][]string{
		"./stamp":    {"FuzzReplicateShipment", "FuzzStampRequestBodies"},
		"./location": {"FuzzLocationBodies"},
		"./planner":  {"FuzzParsePlan"},
		"./webhook":  {"FuzzParseNotification", "FuzzParseTrigger", "FuzzParseConfig"},
	} {
		require.Subset(t, targets[dir], want, "fuzz targets in %s", dir)
	}
	for dir, names := range targets {
		for _, name := range names {
			t.Run(strings.TrimPrefix(dir, "./")+"/"+name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				// -fuzzminimizetime: a new input is minimized for a second,
				// not the default minute that would take the whole budget.
				cmd := exec.CommandContext(ctx, "go", "test", "-run=^$", "-fuzz=^"+name+"$", "-fuzztime=3s",
					"-fuzzminimizetime=1s", "-parallel=1", dir)
				cmd.Dir = ".."
				out, err := cmd.CombinedOutput()
				require.NoError(t, err, "go test -fuzz=%s %s:\n%s", name, dir, out)
			})
		}
	}
}
