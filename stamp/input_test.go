package stamp

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestBadInput sends malformed or refused calls and checks each answer's
// status and code, and that none of them changed anything.
func TestBadInput(t *testing.T) {
	p := newPair(t, 4, Config{}, Config{})
	putN(t, p.ca, p.acct, 40)
	eventually(t, 10*time.Second, "catch-up", func() bool { return p.caughtUp(t) })
	// Fence the primary so the secondary's received state is final.
	_, err := p.ca.Fence(context.Background(), p.acct, ControlRequest{All: true})
	must(t, err)

	A, B := p.a.URL(), p.b.URL()
	acct := "/v1/accounts/" + p.acct
	hugeValue := strings.Repeat("x", MaxValueBytes+1)
	var manyKeys []string
	for range MaxReadKeys + 1 {
		manyKeys = append(manyKeys, "k")
	}
	cases := []struct {
		name, method, url, ctype string
		body                     []byte
		hdr                      map[string]string
		status                   int
		code                     string
	}{
		{"unknown account put", "PUT", A + "/v1/accounts/nope/keys/k", "application/json", []byte(`{"value":"v"}`), nil, 404, CodeNotFound},
		{"unknown account status", "GET", A + "/v1/accounts/nope/status", "", nil, nil, 404, CodeNotFound},
		{"unknown partition control", "POST", A + acct + "/control/fence", "application/json", []byte(`{"partitions":[1,99]}`), nil, 404, CodeNotFound},
		{"unknown partition route", "POST", A + acct + "/partitions/4/fence", "", nil, nil, 404, CodeNotFound},
		{"non-numeric partition", "POST", A + acct + "/partitions/x/fence", "", nil, nil, 400, CodeBadRequest},
		{"negative partition", "POST", A + acct + "/control/unfence", "application/json", []byte(`{"partitions":[-1]}`), nil, 404, CodeNotFound},
		{"unknown status partition", "GET", A + acct + "/status?partitions=0,7", "", nil, nil, 404, CodeNotFound},
		{"malformed status partitions", "GET", A + acct + "/status?partitions=a", "", nil, nil, 400, CodeBadRequest},
		{"control char key", "PUT", A + acct + "/keys/a%01b", "text/plain", []byte("v"), nil, 400, CodeBadRequest},
		{"too long key", "PUT", A + acct + "/keys/" + strings.Repeat("k", MaxKeyBytes+1), "text/plain", []byte("v"), nil, 400, CodeBadRequest},
		{"malformed put JSON", "PUT", A + acct + "/keys/k", "application/json", []byte(`{"value":`), nil, 400, CodeBadRequest},
		{"put JSON without value", "PUT", A + acct + "/keys/k", "application/json", []byte(`{"v":"x"}`), nil, 400, CodeBadRequest},
		{"bad epoch header", "PUT", A + acct + "/keys/k", "text/plain", []byte("v"), map[string]string{HeaderEpoch: "one"}, 400, CodeBadRequest},
		{"huge value", "PUT", A + acct + "/keys/k", "text/plain", []byte(hugeValue), nil, 413, CodeTooLarge},
		{"huge payload", "POST", A + acct + "/batch", "application/json", []byte(`{"ops":[{"op":"put","key":"k","value":"` + strings.Repeat("x", limitBatch) + `"}]}`), nil, 413, CodeTooLarge},
		{"batch value too large", "POST", A + acct + "/batch", "application/json", jsonBody(t, BatchRequest{Ops: []BatchOp{{Op: OpPut, Key: "a", Value: "1"}, {Op: OpPut, Key: "b", Value: hugeValue}}}), nil, 413, CodeTooLarge},
		{"empty batch", "POST", A + acct + "/batch", "application/json", []byte(`{"ops":[]}`), nil, 400, CodeBadRequest},
		{"batch bad op", "POST", A + acct + "/batch", "application/json", []byte(`{"ops":[{"op":"put","key":"a"},{"op":"upsert","key":"b"}]}`), nil, 400, CodeBadRequest},
		{"batch bad key", "POST", A + acct + "/batch", "application/json", []byte(`{"ops":[{"op":"put","key":"a"},{"op":"put","key":""}]}`), nil, 400, CodeBadRequest},
		{"write to fenced primary", "POST", A + acct + "/batch", "application/json", []byte(`{"ops":[{"op":"put","key":"a"}]}`), nil, 503, CodeFenced},
		{"too many read keys", "POST", A + acct + "/read", "application/json", jsonBody(t, ReadRequest{Keys: manyKeys}), nil, 400, CodeBadRequest},
		{"missing key", "GET", A + acct + "/keys/never-written", "", nil, nil, 404, CodeNotFound},
		{"empty partition set", "POST", A + acct + "/control/fence", "application/json", []byte(`{}`), nil, 400, CodeBadRequest},
		{"partitions and all", "POST", A + acct + "/control/fence", "application/json", []byte(`{"all":true,"partitions":[1]}`), nil, 400, CodeBadRequest},
		{"unknown op", "POST", A + acct + "/control/explode", "application/json", []byte(`{"all":true}`), nil, 400, CodeBadRequest},
		{"unknown control field", "POST", A + acct + "/control/fence", "application/json", []byte(`{"all":true,"epoc":3}`), nil, 400, CodeBadRequest},
		{"fence stale epoch", "POST", A + acct + "/control/fence", "application/json", []byte(`{"all":true,"epoch":7}`), nil, 409, CodeStaleEpoch},
		{"fence secondary", "POST", B + acct + "/control/fence", "application/json", []byte(`{"all":true}`), nil, 409, CodeConflict},
		{"unfence stale epoch", "POST", A + acct + "/control/unfence", "application/json", []byte(`{"all":true,"epoch":2}`), nil, 409, CodeStaleEpoch},
		{"promote without epoch", "POST", B + acct + "/control/promote", "application/json", []byte(`{"all":true}`), nil, 400, CodeBadRequest},
		{"stale-epoch promote", "POST", B + acct + "/control/promote", "application/json", []byte(`{"all":true,"epoch":1}`), nil, 409, CodeStaleEpoch},
		{"promote primary", "POST", A + acct + "/control/promote", "application/json", []byte(`{"all":true,"epoch":2}`), nil, 409, CodeConflict},
		{"flush-replay beyond received", "POST", B + acct + "/partitions/1/flush-replay", "application/json", []byte(`{"targets":{"1":100000}}`), nil, 409, CodeBeyondReceived},
		{"flush-replay target outside set", "POST", B + acct + "/control/flush-replay", "application/json", []byte(`{"partitions":[0],"targets":{"1":1}}`), nil, 400, CodeBadRequest},
		{"flush-replay on primary", "POST", A + acct + "/control/flush-replay", "application/json", []byte(`{"all":true}`), nil, 409, CodeConflict},
		{"flush-send on secondary", "POST", B + acct + "/control/flush-send", "application/json", []byte(`{"all":true}`), nil, 409, CodeConflict},
		{"bad account name", "POST", A + "/v1/accounts", "application/json", jsonBody(t, AccountSpec{Account: "Bad_Name", Partitions: 1, Role: RoleSecondary, Epoch: 1}), nil, 400, CodeBadRequest},
		{"zero partitions", "POST", A + "/v1/accounts", "application/json", jsonBody(t, AccountSpec{Account: "x", Partitions: 0, Role: RoleSecondary, Epoch: 1}), nil, 400, CodeBadRequest},
		{"too many partitions", "POST", A + "/v1/accounts", "application/json", jsonBody(t, AccountSpec{Account: "x", Partitions: MaxPartitions + 1, Role: RoleSecondary, Epoch: 1}), nil, 400, CodeBadRequest},
		{"bad role", "POST", A + "/v1/accounts", "application/json", jsonBody(t, AccountSpec{Account: "x", Partitions: 1, Role: "leader", Epoch: 1}), nil, 400, CodeBadRequest},
		{"zero epoch", "POST", A + "/v1/accounts", "application/json", jsonBody(t, AccountSpec{Account: "x", Partitions: 1, Role: RoleSecondary}), nil, 400, CodeBadRequest},
		{"primary without peer", "POST", A + "/v1/accounts", "application/json", jsonBody(t, AccountSpec{Account: "x", Partitions: 1, Role: RolePrimary, Epoch: 1}), nil, 400, CodeBadRequest},
		{"bad peer", "POST", A + "/v1/accounts", "application/json", jsonBody(t, AccountSpec{Account: "x", Partitions: 1, Role: RolePrimary, Epoch: 1, Peer: "stamp-b"}), nil, 400, CodeBadRequest},
		{"conflicting create", "POST", A + "/v1/accounts", "application/json", jsonBody(t, AccountSpec{Account: p.acct, Partitions: 5, Role: RolePrimary, Epoch: 1, Peer: B}), nil, 409, CodeConflict},
		{"bad fault", "POST", A + "/v1/faults", "application/json", []byte(`{"scope":"everything","error_rate":1}`), nil, 400, CodeBadRequest},
		{"fault rate above 1", "POST", A + "/v1/faults", "application/json", []byte(`{"scope":"data","error_rate":2}`), nil, 400, CodeBadRequest},
		{"shipment to primary", "POST", A + "/v1/internal/replicate", "application/json", jsonBody(t, ReplicateRequest{Account: p.acct, Partitions: []PartitionShipment{{Partition: 0, Entries: []Entry{{LSN: 1000, Epoch: 1, Op: OpPut, Key: "k"}}}}}), nil, 409, CodeConflict},
		{"shipment with gap", "POST", B + "/v1/internal/replicate", "application/json", jsonBody(t, ReplicateRequest{Account: p.acct, Partitions: []PartitionShipment{{Partition: 0, Entries: []Entry{{LSN: 1000, Epoch: 1, Op: OpPut, Key: "k"}}}}}), nil, 409, CodeConflict},
		{"no route", "GET", A + "/v2/nothing", "", nil, nil, 404, CodeNotFound},
	}

	snapshot := func() []any {
		var out []any
		for _, c := range []*Client{p.ca, p.cb} {
			st := status(t, c, p.acct)
			for i := range st.Partitions {
				st.Partitions[i].LastAckedAt = time.Time{}  // a late ack may still land
				st.Partitions[i].SourceSeenAt = time.Time{} // heartbeats keep it fresh
			}
			accts, err := http.Get(c.Base() + "/v1/accounts")
			must(t, err)
			var list []AccountSpec
			must(t, json.NewDecoder(accts.Body).Decode(&list))
			accts.Body.Close()
			rr, err := c.Read(context.Background(), p.acct, []string{"k", "a", "b", "key-00001"})
			must(t, err)
			out = append(out, st, list, rr)
		}
		faults, err := http.Get(A + "/v1/faults")
		must(t, err)
		var fl []Fault
		must(t, json.NewDecoder(faults.Body).Decode(&fl))
		faults.Body.Close()
		return append(out, fl)
	}
	before := snapshot()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := raw(t, tc.method, tc.url, tc.ctype, tc.body, tc.hdr)
			var eb ErrorBody
			if err := json.Unmarshal(body, &eb); err != nil {
				t.Fatalf("answer %d is not an ErrorBody: %.200s", code, body)
			}
			if code != tc.status || eb.Code != tc.code {
				t.Fatalf("got %d %s (%s), want %d %s", code, eb.Code, eb.Message, tc.status, tc.code)
			}
			if eb.Message == "" {
				t.Fatal("error without a message")
			}
		})
	}
	if after := snapshot(); !reflect.DeepEqual(before, after) {
		t.Fatalf("refused calls changed state:\nbefore %+v\nafter  %+v", before, after)
	}
}

func TestIdenticalCreateIsIdempotent(t *testing.T) {
	l := startLocal(t, Config{Name: "s"})
	c := NewClient(l.URL(), nil)
	spec := AccountSpec{Account: "same", Partitions: 3, Role: RolePrimary, Epoch: 1, Peer: "http://peer:1/"}
	must(t, c.CreateAccount(context.Background(), spec))
	must(t, c.CreateAccount(context.Background(), spec))
	h, err := c.Health(context.Background())
	must(t, err)
	if h.Accounts != 1 || !h.OK || h.Durable || h.Stamp != "s" {
		t.Fatalf("health = %+v", h)
	}
}

func TestRawAndJSONPut(t *testing.T) {
	l := startLocal(t, Config{Name: "s"})
	c := NewClient(l.URL(), nil)
	ctx := context.Background()
	must(t, c.CreateAccount(ctx, AccountSpec{Account: "r", Partitions: 2, Role: RolePrimary, Epoch: 1, Peer: "http://127.0.0.1:1"}))
	code, _, body := raw(t, "PUT", l.URL()+"/v1/accounts/r/keys/raw%2Fkey", "text/plain", []byte(`{"value":"not json here"}`), nil)
	if code != 200 {
		t.Fatalf("raw put: %d %s", code, body)
	}
	v, err := c.Get(ctx, "r", "raw/key")
	must(t, err)
	if v.Value != `{"value":"not json here"}` || v.LSN != 1 {
		t.Fatalf("raw value = %+v", v)
	}
	code, _, body = raw(t, "PUT", l.URL()+"/v1/accounts/r/keys/j", "application/json; charset=utf-8", []byte(`{"value":"json"}`), nil)
	if code != 200 {
		t.Fatalf("json put: %d %s", code, body)
	}
	v, err = c.Get(ctx, "r", "j")
	must(t, err)
	if v.Value != "json" {
		t.Fatalf("json value = %+v", v)
	}
	w, err := c.Delete(ctx, "r", "j", 0)
	must(t, err)
	_, err = c.Get(ctx, "r", "j")
	wantAPIError(t, err, 404, CodeNotFound)
	if w.Key != "j" || w.Stamp != "s" {
		t.Fatalf("delete = %+v", w)
	}
}
