package planner

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const shopYAML = `
name: shop
description: a small web shop
source: site-a
target: site-b
concurrency: {source: 2, target: 3}
components:
  - name: web
    depends_on: [api]
    offline:
      command: [sh, -c, "echo stop web"]
      timeout: 30s
      retries: 2
      expected: 2s
    online:
      http: {url: "http://127.0.0.1:8080/healthz", expect_status: 204}
      expected: 1500ms
    restore: {wait: 1s}
  - name: api
    offline: {wait: 3s}
    online:
      account: {account: acct-1, to: stamp-b, from: stamp-a}
`

const shopJSON = `{
	"name": "shop",
	"description": "a small web shop",
	"source": "site-a",
	"target": "site-b",
	"concurrency": {"source": 2, "target": 3},
	"components": [
		{"name": "web", "depends_on": ["api"],
		 "offline": {"command": ["sh", "-c", "echo stop web"], "timeout": "30s", "retries": 2, "expected": "2s"},
		 "online": {"http": {"url": "http://127.0.0.1:8080/healthz", "expect_status": 204}, "expected": "1500ms"},
		 "restore": {"wait": "1s"}},
		{"name": "api",
		 "offline": {"wait": "3s"},
		 "online": {"account": {"account": "acct-1", "to": "stamp-b", "from": "stamp-a"}}}
	]
}`

func TestParseYAMLAndJSONAgree(t *testing.T) {
	y, err := Parse([]byte(shopYAML))
	require.NoError(t, err)
	j, err := Parse([]byte(shopJSON))
	require.NoError(t, err)
	require.Equal(t, y, j)
	require.NoError(t, Validate(y))

	require.Equal(t, "shop", y.Name)
	require.Equal(t, Concurrency{Source: 2, Target: 3}, y.Concurrency)
	web := y.Components[0]
	require.Equal(t, KindCommand, web.Offline.Kind())
	require.Equal(t, 30*time.Second, web.Offline.TimeoutOrDefault())
	require.Equal(t, 2, web.Offline.Retries)
	require.Equal(t, 2*time.Second, web.Offline.ExpectedOrDefault())
	require.Equal(t, KindHTTP, web.Online.Kind())
	require.Equal(t, "GET", web.Online.HTTP.MethodOrDefault())
	require.Equal(t, 204, web.Online.HTTP.ExpectStatusOrDefault())
	require.Equal(t, DefaultHTTPTimeout, web.Online.TimeoutOrDefault())
	api := y.Components[1]
	require.Equal(t, KindWait, api.Offline.Kind())
	require.Equal(t, 3*time.Second, api.Offline.ExpectedOrDefault(), "a wait is expected to take its duration")
	require.Equal(t, KindAccount, api.Online.Kind())
	require.Equal(t, AccountAction{Account: "acct-1", To: "stamp-b", From: "stamp-a"}, *api.Online.Account)
	require.Equal(t, DefaultAccountTimeout, api.Online.TimeoutOrDefault())
	require.Nil(t, api.Restore)
}

func TestMarshalRoundTrips(t *testing.T) {
	p, err := Parse([]byte(shopYAML))
	require.NoError(t, err)
	b, err := Marshal(p)
	require.NoError(t, err)
	q, err := Parse(b)
	require.NoError(t, err, "%s", b)
	require.Equal(t, p, q)
}

func TestParseRefusesMalformedInput(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"empty", "  \n", "the plan is empty"},
		{"bad indentation", "name: x\n components:\n- a", "malformed YAML: yaml: line 2"},
		{"unclosed flow", "name: x\ncomponents: [", "malformed YAML"},
		{"misspelt key", "name: x\ncomponents:\n  - name: a\n    dependson: [b]\n", "field dependson not found"},
		{"duration without unit", "name: x\ncomponents:\n  - name: a\n    offline: {wait: 5}\n",
			`line 4: "5": a duration is a string with a unit`},
		{"duration nonsense", "name: x\ncomponents:\n  - name: a\n    offline: {wait: soon}\n",
			`"soon": a duration is a string with a unit`},
		{"two documents", "name: x\n---\nname: y\n", "more than one document"},
		{"list instead of plan", "- a\n- b\n", "malformed YAML"},
		{"json syntax", "{\n  \"name\": \"x\",\n  \"components\": [,]\n}", "malformed JSON at line 3, column 18"},
		{"json unknown field", `{"name": "x", "nmae": "y"}`, `unknown field "nmae"`},
		{"json duration number", `{"name": "x", "components": [{"name": "a", "offline": {"wait": 5}}]}`,
			"a duration is a string with a unit"},
		{"json trailing text", `{"name": "x"} {}`, "text after the plan object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"URL": "http://h:1", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	in := `a: ${URL}/x b: ${NOPE:-dflt} c: ${EMPTY:-e} d: $HOME e: $${URL} f: ${URL:-unused}`
	out, err := Expand([]byte(in), lookup)
	require.NoError(t, err)
	require.Equal(t, `a: http://h:1/x b: dflt c: e d: $HOME e: ${URL} f: http://h:1`, string(out))

	_, err = Expand([]byte(`${B} ${A} ${B} ${EMPTY}`), lookup)
	require.ErrorContains(t, err, "variables A, B, EMPTY are not set")
	_, err = Expand([]byte(`${A}`), nil)
	require.ErrorContains(t, err, "variables A are not set")
}

func TestParseFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p.yaml")
	text := "name: ${NAME}\ncomponents:\n  - {name: a, offline: {wait: 1s}, online: {wait: 1s}}\n"
	require.NoError(t, os.WriteFile(path, []byte(text), 0o644))
	p, err := ParseFile(path, func(string) (string, bool) { return "from-env", true })
	require.NoError(t, err)
	require.Equal(t, "from-env", p.Name)
	_, err = ParseFile(path, nil)
	require.ErrorContains(t, err, "variables NAME are not set")
	_, err = ParseFile(filepath.Join(dir, "missing.yaml"), nil)
	require.ErrorContains(t, err, "read plan")
}
