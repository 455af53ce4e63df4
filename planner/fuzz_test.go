package planner

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParsePlan: a plan file (YAML or JSON, with ${VAR} references) never
// panics the parser, the validator or the compiler; a valid plan survives
// Marshal and Parse unchanged. Seeds: the example plans and the
// malformed cases of parse_test.go.
func FuzzParsePlan(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "plans", "*.yaml"))
	require.NoError(f, err)
	require.NotEmpty(f, files)
	for _, p := range files {
		b, err := os.ReadFile(p)
		require.NoError(f, err)
		f.Add(b)
	}
	f.Add([]byte(shopYAML))
	for _, s := range []string{``, `{}`, `name: x`, "name: x\nsteps: [", `{"name":"x","steps":[{"id":""}]}`,
		"name: ${NAME}\n", "steps:\n  - id: a\n    after: [a]\n"} {
		f.Add([]byte(s))
	}
	lookup := func(string) (string, bool) { return "v", true }
	f.Fuzz(func(t *testing.T, data []byte) {
		expanded, err := Expand(data, lookup)
		if err != nil {
			return
		}
		p, err := Parse(expanded)
		if err != nil {
			return
		}
		_ = Lint(p)
		if Validate(p) != nil {
			return
		}
		_, _ = Compile(p)
		b, err := Marshal(p)
		require.NoError(t, err)
		q, err := Parse(b)
		require.NoError(t, err, "%s", b)
		require.Equal(t, p, q)
	})
}
