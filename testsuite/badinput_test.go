package testsuite

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/location"
)

// TestBadInputAtEveryEntryPoint: the CLI, the plan file and the stamp API
// (the webhook's own table is in webhook/) refuse bad input with an error
// that says what was wrong, and nothing changes: the account stays where it
// was and no write is accepted.
func TestBadInputAtEveryEntryPoint(t *testing.T) {
	c := startCluster(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const account = "bad-input"
	_, err := c.Provision(ctx, account, 4)
	require.NoError(t, err)
	before, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)

	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o644))
		return p
	}
	cyclic := file("cyclic.yaml", "name: cyc\ncomponents:\n  - name: a\n    depends_on: [b]\n    offline: {wait: 1s}\n    online: {wait: 1s}\n  - name: b\n    depends_on: [a]\n    offline: {wait: 1s}\n    online: {wait: 1s}\n")
	malformedYAML := file("malformed.yaml", "components: [\n")
	malformedJSON := file("malformed.json", `{"name": "x", "components": [`)

	cli := []struct {
		name string
		args []string
		want string
	}{
		{"unknown account", []string{"failover", "--account", "no-such-account", "--to", StampB, "--wait"}, "not known to the location service"},
		{"unknown stamp", []string{"failover", "--account", account, "--to", "stamp-z", "--wait"}, "replicates to stamp-b, not stamp-z"},
		{"same from and to", []string{"failover", "--account", account, "--from", StampA, "--to", StampA}, "two different stamps"},
		{"wrong expected primary", []string{"failover", "--account", account, "--from", StampB, "--to", StampA, "--wait"}, "not the expected stamp-b"},
		{"zero approval timeout", []string{"failover", "--account", account, "--to", StampB, "--approval-timeout", "0s"}, "--approval-timeout 0s"},
		{"negative approval timeout", []string{"failover", "--account", account, "--to", StampB, "--approval-timeout", "-5m"}, "--approval-timeout -5m0s"},
		{"cyclic plan", []string{"plan", "validate", cyclic}, "dependency cycle: a -> b -> a"},
		{"malformed YAML plan", []string{"plan", "validate", malformedYAML}, "malformed YAML"},
		{"malformed JSON plan", []string{"plan", "validate", malformedJSON}, "malformed"},
		{"missing plan file", []string{"plan", "validate", filepath.Join(dir, "nope.yaml")}, "no such file"},
	}
	for _, tt := range cli {
		t.Run("cli/"+tt.name, func(t *testing.T) {
			out, err := baton(ctx, t, c, tt.args...)
			require.Error(t, err, "baton %v accepted bad input:\n%s", tt.args, out)
			require.Contains(t, out, tt.want)
		})
	}

	a := c.StampURLs[StampA]
	huge := bytes.Repeat([]byte("x"), 20<<20)
	api := []struct {
		name, method, path, body string
		raw                      []byte
		status                   int
		code                     string
	}{
		{"unknown account", "PUT", "/v1/accounts/no-such-account/keys/k", `{"value":"v"}`, nil, 404, "not_found"},
		{"unknown partition", "POST", "/v1/accounts/" + account + "/partitions/99/fence", `{}`, nil, 404, "not_found"},
		{"malformed JSON", "POST", "/v1/accounts/" + account + "/control/fence", `{"partitions": [`, nil, 400, "bad_request"},
		{"empty partition set", "POST", "/v1/accounts/" + account + "/control/fence", `{"partitions": []}`, nil, 400, "bad_request"},
		{"huge payload", "POST", "/v1/accounts/" + account + "/batch", "", huge, 413, "payload_too_large"},
		{"negative wait", "POST", "/v1/accounts/" + account + "/control/flush-replay", `{"all": true, "wait_ms": -1}`, nil, 400, "bad_request"},
		{"stale epoch promote", "POST", "/v1/accounts/" + account + "/control/promote", `{"all": true, "epoch": 1}`, nil, 409, ""},
	}
	for _, tt := range api {
		t.Run("stamp/"+tt.name, func(t *testing.T) {
			body := tt.raw
			if body == nil {
				body = []byte(tt.body)
			}
			req, err := http.NewRequestWithContext(ctx, tt.method, a+tt.path, bytes.NewReader(body))
			require.NoError(t, err)
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.HTTP().Do(req)
			require.NoError(t, err)
			defer resp.Body.Close()
			var msg bytes.Buffer
			_, _ = msg.ReadFrom(resp.Body)
			require.Equal(t, tt.status, resp.StatusCode, msg.String())
			if tt.code != "" {
				require.Contains(t, msg.String(), `"code":"`+tt.code+`"`)
			}
			require.True(t, strings.Contains(msg.String(), `"message":"`), "an error must say what was wrong: %s", msg.String())
		})
	}

	// Nothing changed: same location, nothing fenced or promoted, the
	// source still takes writes.
	after, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.Equal(t, location.Account{Account: before.Account, Partitions: before.Partitions, Primary: before.Primary, PrimaryURL: before.PrimaryURL,
		Secondary: before.Secondary, SecondaryURL: before.SecondaryURL, Epoch: before.Epoch, UpdatedAt: after.UpdatedAt}, after)
	st, err := c.StampClient(StampA).Status(ctx, account, nil)
	require.NoError(t, err)
	for _, p := range st.Partitions {
		require.False(t, p.Fenced)
		require.Zero(t, p.LastWritten, "no write was accepted")
	}
	_, err = c.StampClient(StampA).Put(ctx, account, "still-writable", "yes", 1)
	require.NoError(t, err)
}
