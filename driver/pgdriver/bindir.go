package pgdriver

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// FindBinDir finds the directory of PostgreSQL's programs that holds every
// one of programs: $BATON_PG_BIN, else the newest /usr/lib/postgresql/*/bin
// (Debian's layout), else the directory the first program resolves to on
// the PATH.
func FindBinDir(programs ...string) (string, error) {
	has := func(dir string) bool {
		for _, b := range programs {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return false
			}
		}
		return true
	}
	if d := os.Getenv("BATON_PG_BIN"); d != "" {
		if !has(d) {
			return "", fmt.Errorf("BATON_PG_BIN=%s does not hold %v", d, programs)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return major(dirs[i]) > major(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath(programs[0]); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(r)) {
			return filepath.Dir(r), nil
		}
	}
	return "", fmt.Errorf("PostgreSQL's %v not found: install Debian's postgresql, or set BATON_PG_BIN to their directory", programs)
}

// major is the major version in /usr/lib/postgresql/<major>/bin.
func major(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// BinDirFor finds the programs of the data directory's major version
// (its PG_VERSION): Debian's /usr/lib/postgresql/<version>/bin, else
// FindBinDir's answer (Rewind checks its version).
func BinDirFor(dataDir string, programs ...string) (string, error) {
	if v, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION")); err == nil {
		d := filepath.Join("/usr/lib/postgresql", strings.TrimSpace(string(v)), "bin")
		if _, err := os.Stat(filepath.Join(d, programs[0])); err == nil && os.Getenv("BATON_PG_BIN") == "" {
			return d, nil
		}
	}
	return FindBinDir(programs...)
}
