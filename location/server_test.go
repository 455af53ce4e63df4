package location

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

func newTestServer(t *testing.T, dir string) (*Server, *httptest.Server) {
	t.Helper()
	srv, err := Open(Config{DataDir: dir})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return srv, hs
}

// call sends a raw request and returns status and decoded error code (if any).
func call(t *testing.T, hs *httptest.Server, method, path, body string) (int, ErrorBody, []byte) {
	t.Helper()
	var rd *bytes.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, hs.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	var eb ErrorBody
	if resp.StatusCode/100 != 2 {
		if err := json.Unmarshal(buf.Bytes(), &eb); err != nil {
			t.Fatalf("%s %s: %d answer is not an ErrorBody: %q", method, path, resp.StatusCode, buf.String())
		}
	}
	return resp.StatusCode, eb, buf.Bytes()
}

func setupStamps(t *testing.T, c *Client) {
	t.Helper()
	ctx := context.Background()
	for _, s := range []Stamp{{"stamp-a", "http://127.0.0.1:7101"}, {"stamp-b", "http://127.0.0.1:7102"}, {"stamp-c", "http://127.0.0.1:7103"}} {
		if err := c.RegisterStamp(ctx, s); err != nil {
			t.Fatalf("register %s: %v", s.Name, err)
		}
	}
}

func TestRoutesTable(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := NewClient(hs.URL, hs.Client())
	setupStamps(t, c)
	ctx := context.Background()
	if _, err := c.CreateAccount(ctx, CreateRequest{Account: "acct", Partitions: 4, Primary: "stamp-a", Secondary: "stamp-b"}); err != nil {
		t.Fatalf("create: %v", err)
	}

	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
		msgHas                   string
	}{
		{"register stamp", "PUT", "/v1/stamps/stamp-d", `{"name":"stamp-d","url":"http://h:1"}`, 200, "", ""},
		{"register stamp name from path", "PUT", "/v1/stamps/stamp-e", `{"url":"https://h:1"}`, 200, "", ""},
		{"register stamp again (upsert)", "PUT", "/v1/stamps/stamp-d", `{"name":"stamp-d","url":"http://h:2"}`, 200, "", ""},
		{"stamp name mismatch", "PUT", "/v1/stamps/stamp-d", `{"name":"x","url":"http://h:1"}`, 400, "bad_request", "path names"},
		{"stamp bad url", "PUT", "/v1/stamps/stamp-d", `{"url":"h:1"}`, 400, "bad_request", "absolute"},
		{"stamp bad name", "PUT", "/v1/stamps/bad%20name", `{"url":"http://h:1"}`, 400, "bad_request", "stamp name"},
		{"stamp malformed json", "PUT", "/v1/stamps/stamp-d", `{"url":`, 400, "bad_request", "malformed"},
		{"stamp unknown field", "PUT", "/v1/stamps/stamp-d", `{"url":"http://h:1","ur":"x"}`, 400, "bad_request", "unknown field"},
		{"list stamps", "GET", "/v1/stamps", "", 200, "", ""},

		{"create new", "POST", "/v1/accounts", `{"account":"acct2","partitions":2,"primary":"stamp-a","secondary":"stamp-b"}`, 201, "", ""},
		{"create identical repeat", "POST", "/v1/accounts", `{"account":"acct","partitions":4,"primary":"stamp-a","secondary":"stamp-b","epoch":1}`, 200, "", ""},
		{"create different", "POST", "/v1/accounts", `{"account":"acct","partitions":8,"primary":"stamp-a","secondary":"stamp-b"}`, 409, "conflict", "already exists"},
		{"create same stamps", "POST", "/v1/accounts", `{"account":"x","partitions":1,"primary":"stamp-a","secondary":"stamp-a"}`, 400, "bad_request", "different"},
		{"create unknown stamp", "POST", "/v1/accounts", `{"account":"x","partitions":1,"primary":"stamp-a","secondary":"nope"}`, 400, "bad_request", "not registered"},
		{"create zero partitions", "POST", "/v1/accounts", `{"account":"x","partitions":0,"primary":"stamp-a","secondary":"stamp-b"}`, 400, "bad_request", "partitions"},
		{"create too many partitions", "POST", "/v1/accounts", `{"account":"x","partitions":65537,"primary":"stamp-a","secondary":"stamp-b"}`, 400, "bad_request", "partitions"},
		{"create max partitions", "POST", "/v1/accounts", `{"account":"big","partitions":65536,"primary":"stamp-a","secondary":"stamp-b"}`, 201, "", ""},
		{"create bad name upper", "POST", "/v1/accounts", `{"account":"Acct","partitions":1,"primary":"stamp-a","secondary":"stamp-b"}`, 400, "bad_request", "account name"},
		{"create bad name long", "POST", "/v1/accounts", `{"account":"` + strings.Repeat("a", 64) + `","partitions":1,"primary":"stamp-a","secondary":"stamp-b"}`, 400, "bad_request", "account name"},
		{"create empty name", "POST", "/v1/accounts", `{"partitions":1,"primary":"stamp-a","secondary":"stamp-b"}`, 400, "bad_request", "account name"},
		{"create missing stamps", "POST", "/v1/accounts", `{"account":"x","partitions":1}`, 400, "bad_request", "required"},
		{"create trailing data", "POST", "/v1/accounts", `{"account":"x","partitions":1,"primary":"stamp-a","secondary":"stamp-b"} {}`, 400, "bad_request", "trailing"},

		{"get", "GET", "/v1/accounts/acct", "", 200, "", ""},
		{"get unknown", "GET", "/v1/accounts/nope", "", 404, "not_found", "not registered"},
		{"get bad name", "GET", "/v1/accounts/NOPE", "", 400, "bad_request", "account name"},
		{"list accounts", "GET", "/v1/accounts", "", 200, "", ""},

		{"move unknown account", "POST", "/v1/accounts/nope/move", `{"from":"stamp-a","to":"stamp-b","expected_epoch":1,"epoch":2}`, 404, "not_found", ""},
		{"move epoch not above", "POST", "/v1/accounts/acct/move", `{"from":"stamp-a","to":"stamp-b","expected_epoch":2,"epoch":2}`, 400, "bad_request", "above"},
		{"move same stamp", "POST", "/v1/accounts/acct/move", `{"from":"stamp-a","to":"stamp-a","expected_epoch":1,"epoch":2}`, 400, "bad_request", "same"},
		{"move missing to", "POST", "/v1/accounts/acct/move", `{"from":"stamp-a","expected_epoch":1,"epoch":2}`, 400, "bad_request", "required"},
		{"move wrong from", "POST", "/v1/accounts/acct/move", `{"from":"stamp-b","to":"stamp-c","expected_epoch":1,"epoch":2}`, 409, "conflict", "account acct is on stamp-a at epoch 1, not stamp-b at epoch 1: re-resolve and retry"},
		{"move wrong epoch", "POST", "/v1/accounts/acct/move", `{"from":"stamp-a","to":"stamp-b","expected_epoch":3,"epoch":4}`, 409, "conflict", "not stamp-a at epoch 3"},
		{"move to unregistered", "POST", "/v1/accounts/acct/move", `{"from":"stamp-a","to":"zzz","expected_epoch":1,"epoch":2}`, 400, "bad_request", "not registered"},
		{"unknown route", "GET", "/v2/nothing", "", 404, "not_found", "no route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, eb, _ := call(t, hs, tc.method, tc.path, tc.body)
			if status != tc.status {
				t.Fatalf("status %d (%s: %s), want %d", status, eb.Code, eb.Message, tc.status)
			}
			if eb.Code != tc.code {
				t.Fatalf("code %q, want %q", eb.Code, tc.code)
			}
			if !strings.Contains(eb.Message, tc.msgHas) {
				t.Fatalf("message %q does not contain %q", eb.Message, tc.msgHas)
			}
		})
	}
}

func TestLookupFillsURLsAndList(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := NewClient(hs.URL, hs.Client())
	setupStamps(t, c)
	ctx := context.Background()
	a, err := c.CreateAccount(ctx, CreateRequest{Account: "acct", Partitions: 4, Primary: "stamp-a", Secondary: "stamp-b"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Epoch != 1 || a.PrimaryURL != "http://127.0.0.1:7101" || a.SecondaryURL != "http://127.0.0.1:7102" {
		t.Fatalf("create answered %+v", a)
	}
	// Re-registering a stamp at a new URL is visible in lookups at once.
	if err := c.RegisterStamp(ctx, Stamp{Name: "stamp-a", URL: "http://10.0.0.1:7101"}); err != nil {
		t.Fatal(err)
	}
	got, err := c.Lookup(ctx, "acct")
	if err != nil {
		t.Fatal(err)
	}
	if got.PrimaryURL != "http://10.0.0.1:7101" || got.Partitions != 4 || got.Primary != "stamp-a" {
		t.Fatalf("lookup %+v", got)
	}
	if _, err := c.CreateAccount(ctx, CreateRequest{Account: "acct-0", Partitions: 1, Primary: "stamp-b", Secondary: "stamp-a", Epoch: 7}); err != nil {
		t.Fatal(err)
	}
	list, err := c.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Account != "acct" || list[1].Account != "acct-0" || list[1].Epoch != 7 {
		t.Fatalf("list %+v", list)
	}
	stamps, err := c.Stamps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stamps) != 3 || stamps[0].Name != "stamp-a" {
		t.Fatalf("stamps %+v", stamps)
	}
}

func TestMoveCASAndIdempotency(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := NewClient(hs.URL, hs.Client())
	setupStamps(t, c)
	ctx := context.Background()
	if _, err := c.CreateAccount(ctx, CreateRequest{Account: "acct", Partitions: 2, Primary: "stamp-a", Secondary: "stamp-b"}); err != nil {
		t.Fatal(err)
	}
	mv := MoveRequest{From: "stamp-a", To: "stamp-b", ExpectedEpoch: 1, Epoch: 2}
	a, err := c.Move(ctx, "acct", mv)
	if err != nil {
		t.Fatalf("move: %v", err)
	}
	if a.Primary != "stamp-b" || a.Secondary != "stamp-a" || a.Epoch != 2 || a.PrimaryURL != "http://127.0.0.1:7102" {
		t.Fatalf("after move %+v", a)
	}
	// Repeat: same answer.
	again, err := c.Move(ctx, "acct", mv)
	if err != nil {
		t.Fatalf("repeat move: %v", err)
	}
	if again.Primary != a.Primary || again.Epoch != a.Epoch || !again.UpdatedAt.Equal(a.UpdatedAt) {
		t.Fatalf("repeat answered %+v, first %+v", again, a)
	}
	// The stale CAS, e.g. a second orchestrator racing, is a 409 that says
	// where the account is.
	_, err = c.Move(ctx, "acct", MoveRequest{From: "stamp-a", To: "stamp-c", ExpectedEpoch: 1, Epoch: 2})
	if !IsConflict(err) || !strings.Contains(err.Error(), "account acct is on stamp-b at epoch 2, not stamp-a at epoch 1: re-resolve and retry") {
		t.Fatalf("stale move: %v", err)
	}
	// Moving back with the current epoch works (failback).
	back, err := c.Move(ctx, "acct", MoveRequest{From: "stamp-b", To: "stamp-a", ExpectedEpoch: 2, Epoch: 3})
	if err != nil {
		t.Fatal(err)
	}
	if back.Primary != "stamp-a" || back.Secondary != "stamp-b" || back.Epoch != 3 {
		t.Fatalf("failback %+v", back)
	}
	// The first move is no longer a repeat of the last applied one.
	if _, err := c.Move(ctx, "acct", mv); !IsConflict(err) {
		t.Fatalf("old move after failback: %v", err)
	}
}

func TestConcurrentMovesOneWins(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := NewClient(hs.URL, hs.Client())
	setupStamps(t, c)
	ctx := context.Background()
	if _, err := c.CreateAccount(ctx, CreateRequest{Account: "acct", Partitions: 2, Primary: "stamp-a", Secondary: "stamp-b"}); err != nil {
		t.Fatal(err)
	}
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each racer asks a different target epoch so that no two requests
			// are identical repeats of one another.
			_, errs[i] = c.Move(ctx, "acct", MoveRequest{From: "stamp-a", To: "stamp-b", ExpectedEpoch: 1, Epoch: uint64(2 + i)})
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !IsConflict(err):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d moves won the CAS, want exactly 1", wins)
	}
}

func TestRestartPersistence(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	func() {
		srv, err := Open(Config{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		hs := httptest.NewServer(srv.Handler())
		defer func() {
			hs.Close()
			if err := srv.Close(); err != nil {
				t.Fatal(err)
			}
		}()
		c := NewClient(hs.URL, hs.Client())
		setupStamps(t, c)
		if _, err := c.CreateAccount(ctx, CreateRequest{Account: "acct", Partitions: 3, Primary: "stamp-a", Secondary: "stamp-b"}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Move(ctx, "acct", MoveRequest{From: "stamp-a", To: "stamp-b", ExpectedEpoch: 1, Epoch: 2}); err != nil {
			t.Fatal(err)
		}
	}()

	_, hs := newTestServer(t, dir)
	c := NewClient(hs.URL, hs.Client())
	a, err := c.Lookup(ctx, "acct")
	if err != nil {
		t.Fatalf("lookup after restart: %v", err)
	}
	if a.Primary != "stamp-b" || a.Epoch != 2 || a.Partitions != 3 || a.PrimaryURL != "http://127.0.0.1:7102" {
		t.Fatalf("after restart %+v", a)
	}
	// Idempotency survives the restart too.
	if _, err := c.Move(ctx, "acct", MoveRequest{From: "stamp-a", To: "stamp-b", ExpectedEpoch: 1, Epoch: 2}); err != nil {
		t.Fatalf("repeat move after restart: %v", err)
	}
	if _, err := c.CreateAccount(ctx, CreateRequest{Account: "acct", Partitions: 3, Primary: "stamp-a", Secondary: "stamp-b"}); err != nil {
		t.Fatalf("repeat create after restart: %v", err)
	}
}

// TestMemoryModeCleansUpOnClose: a served memory-mode service leaves no
// file behind once closed.
func TestMemoryModeCleansUpOnClose(t *testing.T) {
	srv, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	dir := srv.st.tempDir
	c := NewClient(hs.URL, nil)
	if err := c.RegisterStamp(context.Background(), Stamp{Name: "s", URL: "http://x:1"}); err != nil {
		t.Fatal(err)
	}
	hs.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("memory-mode dir %s still there after Close (stat: %v)", dir, err)
	}
}

// TestMoveLeavesTheAccountUnprotectedUntilProtect: a move marks the
// account unprotected (its old primary does not replicate it yet); protect
// at the current epoch clears it, idempotently, and refuses a stale epoch.
func TestMoveLeavesTheAccountUnprotectedUntilProtect(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := NewClient(hs.URL, hs.Client())
	setupStamps(t, c)
	ctx := context.Background()
	a, err := c.CreateAccount(ctx, CreateRequest{Account: "acct", Partitions: 2, Primary: "stamp-a", Secondary: "stamp-b"})
	if err != nil || a.Unprotected {
		t.Fatalf("a new account is protected: %+v, %v", a, err)
	}
	a, err = c.Move(ctx, "acct", MoveRequest{From: "stamp-a", To: "stamp-b", ExpectedEpoch: 1, Epoch: 2})
	if err != nil || !a.Unprotected {
		t.Fatalf("after a move the account is unprotected: %+v, %v", a, err)
	}
	if _, err := c.Protect(ctx, "acct", 1); !IsConflict(err) {
		t.Fatalf("protect at a stale epoch: %v", err)
	}
	for range 2 {
		if a, err = c.Protect(ctx, "acct", 2); err != nil || a.Unprotected {
			t.Fatalf("protect at the current epoch: %+v, %v", a, err)
		}
	}
	if a, err = c.Lookup(ctx, "acct"); err != nil || a.Unprotected {
		t.Fatalf("lookup after protect: %+v, %v", a, err)
	}
}

// TestStampAccountsPagesLabelsAndMaintenance: the accounts of a stamp come
// page by page in name order; labels stick; a maintenance switch needs who
// and why, and holds a stamp's automatic triggers (or every stamp's).
func TestStampAccountsPagesLabelsAndMaintenance(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := NewClient(hs.URL, hs.Client())
	setupStamps(t, c)
	ctx := context.Background()
	for i := range 7 {
		primary, secondary := "stamp-a", "stamp-b"
		if i%3 == 2 {
			primary, secondary = secondary, primary
		}
		if _, err := c.CreateAccount(ctx, CreateRequest{Account: fmt.Sprintf("acct-%d", i), Partitions: 1,
			Primary: primary, Secondary: secondary}); err != nil {
			t.Fatal(err)
		}
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		page, err := c.StampAccounts(ctx, "stamp-a", after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range page.Accounts {
			if a.Primary != "stamp-a" {
				t.Fatalf("page holds %s, whose primary is %s", a.Account, a.Primary)
			}
			got = append(got, a.Account)
		}
		if page.Next == "" {
			break
		}
		after = page.Next
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if want := []string{"acct-0", "acct-1", "acct-3", "acct-4", "acct-6"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("accounts of stamp-a: %v, want %v", got, want)
	}
	a, err := c.SetLabels(ctx, "acct-1", map[string]string{LabelTier: "0"})
	if err != nil || a.Labels[LabelTier] != "0" {
		t.Fatalf("labels: %+v, %v", a, err)
	}
	if a, _ := c.Lookup(ctx, "acct-1"); a.Labels[LabelTier] != "0" {
		t.Fatalf("labels after a lookup: %+v", a)
	}

	if _, err := c.SetSwitch(ctx, SwitchRequest{Stamp: "stamp-a", On: true}); err == nil {
		t.Fatal("a switch without who and why must be refused")
	}
	m, err := c.SetSwitch(ctx, SwitchRequest{Stamp: "stamp-a", On: true, By: "oncall", Reason: "patching"})
	if err != nil {
		t.Fatal(err)
	}
	if s, held := m.Holds("stamp-a"); !held || s.By != "oncall" || s.Reason != "patching" || s.At.IsZero() {
		t.Fatalf("stamp-a held: %v %+v", held, s)
	}
	if _, held := m.Holds("stamp-b"); held {
		t.Fatal("stamp-b is not held")
	}
	m, err = c.SetSwitch(ctx, SwitchRequest{On: true, By: "oncall", Reason: "region drill"})
	if err != nil {
		t.Fatal(err)
	}
	if s, held := m.Holds("stamp-b"); !held || s.Reason != "region drill" {
		t.Fatalf("the global switch holds every stamp: %v %+v", held, s)
	}
	if m, err = c.SetSwitch(ctx, SwitchRequest{On: false, By: "oncall"}); err != nil {
		t.Fatal(err)
	}
	if m, err = c.Maintenance(ctx); err != nil {
		t.Fatal(err)
	}
	if _, held := m.Holds("stamp-b"); held {
		t.Fatal("switched off, the global switch holds nothing")
	}
}

// TestRedisAccountEndpointsFollowAMove: an account of kind redis records
// each shard's server on both sites (registered with redis:// URLs); a
// move swaps which are the primary's; requests that mix kinds, miscount
// shards or repeat with other endpoints are refused.
func TestRedisAccountEndpointsFollowAMove(t *testing.T) {
	_, hs := newTestServer(t, "")
	c := NewClient(hs.URL, hs.Client())
	setupStamps(t, c)
	ctx := context.Background()
	for _, s := range []Stamp{{"site-a", "redis://site-a"}, {"site-b", "redis://site-b"}} {
		if err := c.RegisterStamp(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	req := CreateRequest{Account: "cache", Partitions: 2, Primary: "site-a", Secondary: "site-b", Kind: KindRedis,
		PrimaryEndpoints: []string{"127.0.0.1:6001", "127.0.0.1:6002"}, SecondaryEndpoints: []string{"127.0.0.1:6101", "127.0.0.1:6102"}}
	a, err := c.CreateAccount(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != KindRedis || a.PrimaryURL != "redis://site-a" || a.PrimaryEndpoints[1] != "127.0.0.1:6002" ||
		a.SecondaryEndpoints[0] != "127.0.0.1:6101" {
		t.Fatalf("created %+v", a)
	}
	if _, err := c.CreateAccount(ctx, req); err != nil {
		t.Fatalf("a repeat is answered the same: %v", err)
	}
	moved, err := c.Move(ctx, "cache", MoveRequest{From: "site-a", To: "site-b", ExpectedEpoch: 1, Epoch: 2})
	if err != nil {
		t.Fatal(err)
	}
	if moved.PrimaryEndpoints[0] != "127.0.0.1:6101" || moved.SecondaryEndpoints[0] != "127.0.0.1:6001" {
		t.Fatalf("endpoints did not follow the move: %+v", moved)
	}

	other := req
	other.PrimaryEndpoints = []string{"127.0.0.1:7001", "127.0.0.1:7002"}
	for _, tc := range []struct {
		req  CreateRequest
		want string
	}{
		{other, "already exists"},
		{CreateRequest{Account: "c2", Partitions: 3, Primary: "site-a", Secondary: "site-b", Kind: KindRedis,
			PrimaryEndpoints: req.PrimaryEndpoints, SecondaryEndpoints: req.SecondaryEndpoints}, "primary_endpoints: 2 given for 3 partitions"},
		{CreateRequest{Account: "c3", Partitions: 2, Primary: "stamp-a", Secondary: "stamp-b", Kind: KindRedis,
			PrimaryEndpoints: req.PrimaryEndpoints, SecondaryEndpoints: req.SecondaryEndpoints}, "needs sites registered with redis:// URLs"},
		{CreateRequest{Account: "c4", Partitions: 2, Primary: "site-a", Secondary: "site-b"}, "needs sites registered with http(s):// URLs"},
		{CreateRequest{Account: "c5", Partitions: 2, Primary: "stamp-a", Secondary: "stamp-b", PrimaryEndpoints: req.PrimaryEndpoints},
			"endpoints are for accounts of kind redis"},
		{CreateRequest{Account: "c6", Partitions: 2, Primary: "site-a", Secondary: "site-b", Kind: "mysql"}, `kind "mysql"`},
	} {
		if _, err := c.CreateAccount(ctx, tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create %+v: %v, want %q", tc.req, err, tc.want)
		}
	}
}
