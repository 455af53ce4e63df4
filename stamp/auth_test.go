package stamp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/auth/authtest"
)

// authStamp is stamp-b served over TLS with authentication, holding
// "acct" (primary) and "rep" (secondary), both paired with stamp-a.
type authStamp struct {
	f   *authtest.Fixture
	srv *Server
	url string
}

func startAuthStamp(t *testing.T, f *authtest.Fixture, faults bool) *authStamp {
	t.Helper()
	srv, err := Open(Config{Name: "stamp-b", Auth: f.Authenticator(), EnableFaults: faults})
	must(t, err)
	t.Cleanup(func() { srv.Close() })
	s := &authStamp{f: f, srv: srv, url: f.Serve("stamp-b", srv.Handler())}
	admin := NewClient(s.url, &http.Client{Transport: &http.Transport{TLSClientConfig: f.TLS("admin")}})
	for _, spec := range []AccountSpec{
		{Account: "acct", Partitions: 2, Role: RolePrimary, Epoch: 1, Peer: "https://127.0.0.1:1", PeerName: "stamp-a"},
		{Account: "rep", Partitions: 1, Role: RoleSecondary, Epoch: 1, Peer: "https://127.0.0.1:1", PeerName: "stamp-a"},
		{Account: "other", Partitions: 1, Role: RoleSecondary, Epoch: 1, Peer: "https://127.0.0.1:1", PeerName: "stamp-c"},
	} {
		must(t, admin.CreateAccount(t.Context(), spec))
	}
	if got, body := authtest.Do(t, f.Client("data"), "PUT", s.url+"/v1/accounts/acct/keys/k", `{"value":"v"}`); got != 200 {
		t.Fatalf("put k: %d %s", got, body)
	}
	return s
}

// state is what the routes could change: each partition's role, epoch,
// fence and log positions, and the injected faults.
func (s *authStamp) state() string {
	s.srv.mu.RLock()
	var names []string
	for n := range s.srv.accounts {
		names = append(names, n)
	}
	s.srv.mu.RUnlock()
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		a, _ := s.srv.account(n)
		for _, p := range a.parts {
			st := p.status()
			fmt.Fprintf(&b, "%s/%d %s e%d f%v w%d r%d t%d s%d; ", n, st.Partition, st.Role, st.Epoch, st.Fenced,
				st.LastWritten, st.LastReceived, st.ReplayTarget, st.SourceWritten)
		}
	}
	f, _ := json.Marshal(s.srv.faults.snapshot())
	return b.String() + string(f)
}

func shipment(from string, lsn uint64) string {
	b, _ := json.Marshal(ReplicateRequest{Account: "rep", FromStamp: from, Partitions: []PartitionShipment{
		{Partition: 0, Entries: []Entry{{LSN: lsn, Epoch: 1, Op: OpPut, Key: fmt.Sprintf("x%d", lsn), Value: "v"}}}}})
	return string(b)
}

func heartbeat(from string, accounts ...string) string {
	batch := HeartbeatBatch{FromStamp: from}
	for _, a := range accounts {
		batch.Accounts = append(batch.Accounts, AccountReport{Account: a, SentAt: time.Now(), Written: map[int]uint64{0: 7}})
	}
	b, _ := json.Marshal(batch)
	return string(b)
}

// stampRoutes is every route of the stamp and who may call it.
func stampRoutes(faults bool) []authtest.Route {
	peer, other := authtest.Node("stamp-a"), authtest.Node("stamp-c")
	any, data, control, admin := authtest.Anyone, []string{"data"}, []string{"control"}, []string{"admin"}
	replication := []string{"replication", "control", peer, other}
	faultsOff := 0
	if !faults {
		faultsOff = http.StatusNotFound
	}
	spec := `{"account":"acct","partitions":2,"role":"primary","epoch":1,"peer":"https://127.0.0.1:1","peer_name":"stamp-a"}`
	return []authtest.Route{
		{Method: "GET", Path: "/v1/health", Allowed: []string{any}},
		{Method: "GET", Path: "/metrics", Allowed: []string{any}},
		{Method: "POST", Path: "/v1/accounts", Body: spec, Allowed: admin},
		{Method: "GET", Path: "/v1/accounts", Allowed: []string{"admin", "control"}},
		{Method: "PUT", Path: "/v1/accounts/acct/keys/k2", Body: `{"value":"v2"}`, Allowed: data},
		{Method: "DELETE", Path: "/v1/accounts/acct/keys/k2", Allowed: data},
		{Method: "GET", Path: "/v1/accounts/acct/keys/k", Allowed: data},
		{Method: "POST", Path: "/v1/accounts/acct/batch", Body: `{"ops":[{"op":"put","key":"b","value":"v"}]}`, Allowed: data},
		{Method: "POST", Path: "/v1/accounts/acct/read", Body: `{"keys":["k","b"]}`, Allowed: data},
		{Method: "GET", Path: "/v1/accounts/acct/status", Allowed: control},
		{Method: "POST", Path: "/v1/accounts/rep/control/flush-replay", Body: `{"all":true}`, Allowed: control},
		{Method: "POST", Path: "/v1/accounts/rep/partitions/0/flush-replay", Body: `{}`, Allowed: control},
		{Method: "GET", Path: "/v1/accounts/rep/recovered", Allowed: control},
		{Method: "POST", Path: "/v1/accounts/rep/restore", Body: `{"values":[]}`, Allowed: control},
		{Method: "GET", Path: "/v1/accounts/acct/snapshot?partitions=0", Allowed: replication},
		{Method: "POST", Path: "/v1/faults", Body: `{"scope":"data","account":"nobody","error_rate":1}`,
			Allowed: []string{"faults"}, Want: http.StatusCreated, Off: faultsOff},
		{Method: "GET", Path: "/v1/faults", Allowed: []string{"faults"}, Off: faultsOff},
		{Method: "DELETE", Path: "/v1/faults", Allowed: []string{"faults"}, Off: faultsOff},
		{Method: "POST", Path: "/v1/internal/replicate", Body: shipment("stamp-a", 1), Allowed: []string{peer}},
		{Method: "POST", Path: "/v1/internal/heartbeats", Body: heartbeat("stamp-a", "rep"), Allowed: []string{peer}},
	}
}

// TestStampRoutesAuthorize: every route × every kind of caller gets exactly
// 2xx, 401 or 403 (404 for the fault routes of a stamp started without
// faults), and a refused call changes nothing.
func TestStampRoutesAuthorize(t *testing.T) {
	f := authtest.New(t)
	for _, n := range []string{"stamp-a", "stamp-b", "stamp-c"} {
		f.AddNode(n)
	}
	for _, faults := range []bool{true, false} {
		t.Run(fmt.Sprintf("faults=%v", faults), func(t *testing.T) {
			s := startAuthStamp(t, f, faults)
			f.Check(t, s.url, stampRoutes(faults), authtest.Callers("stamp-a", "stamp-c"), s.state)
			_, metrics := authtest.Do(t, f.Client("admin"), "GET", s.url+"/metrics", "")
			for _, want := range []string{
				`baton_stamp_auth_refusals_total{reason="unauthenticated",route="POST /v1/accounts/{account}/control/{op}"}`,
				`baton_stamp_auth_refusals_total{reason="forbidden",route="POST /v1/internal/replicate"}`,
			} {
				if !strings.Contains(metrics, want) {
					t.Errorf("/metrics lacks %s:\n%s", want, metrics)
				}
			}
		})
	}
}

// TestShipmentFromAnotherStampAppliesNothing: a shipment or a heartbeat
// from a stamp that is not the account's registered peer is refused and
// applies nothing; a heartbeat batch keeps the entries of the caller's own
// accounts.
func TestShipmentFromAnotherStampAppliesNothing(t *testing.T) {
	f := authtest.New(t)
	for _, n := range []string{"stamp-a", "stamp-b", "stamp-c"} {
		f.AddNode(n)
	}
	s := startAuthStamp(t, f, false)
	intruder := f.Client(authtest.Node("stamp-c"))
	before := s.state()
	if got, body := authtest.Do(t, intruder, "POST", s.url+"/v1/internal/replicate", shipment("stamp-a", 1)); got != 403 ||
		!strings.Contains(body, "not the peer") {
		t.Fatalf("a shipment from stamp-c for rep (peer stamp-a): %d %s", got, body)
	}
	if got, body := authtest.Do(t, intruder, "POST", s.url+"/v1/internal/heartbeats", heartbeat("stamp-c", "rep")); got != 403 {
		t.Fatalf("a heartbeat from stamp-c for rep: %d %s", got, body)
	}
	if after := s.state(); after != before {
		t.Fatalf("refused replication changed the stamp:\nbefore %s\nafter  %s", before, after)
	}
	rep, _ := s.srv.account("rep")
	if st := rep.parts[0].status(); st.LastReceived != 0 || st.SourceWritten != 0 {
		t.Fatalf("rep received %+v from a stamp that is not its peer", st)
	}
	got, body := authtest.Do(t, intruder, "POST", s.url+"/v1/internal/heartbeats", heartbeat("stamp-c", "rep", "other"))
	var ack HeartbeatAck
	if err := json.Unmarshal([]byte(body), &ack); got != 200 || err != nil || len(ack.Accepted) != 1 || ack.Accepted[0] != "other" {
		t.Fatalf("a heartbeat from stamp-c for rep and other (its own): %d %s", got, body)
	}
	other, _ := s.srv.account("other")
	if rep.parts[0].status().SourceWritten != 0 || other.parts[0].status().SourceWritten != 7 {
		t.Fatalf("heartbeat applied to rep %+v / other %+v", rep.parts[0].status(), other.parts[0].status())
	}
}
