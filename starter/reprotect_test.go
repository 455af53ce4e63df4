package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.uber.org/zap"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/auth/authtest"
	"github.com/batonhq/baton/internal/logging"
	"github.com/batonhq/baton/internal/register"
	"github.com/batonhq/baton/location"
	"github.com/batonhq/baton/stamp"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/workflows"
)

// stamps is a location service and two stamps in this process, over
// mutual TLS as in production: the tests' client (tls) has every role,
// and the CLI run in the test presents it too (BATON_CERTS_DIR).
type stamps struct {
	loc    *location.Client
	url    string
	tls    *tls.Config
	client map[string]*stamp.Client
}

// testCert is the client certificate the tests and their CLI present.
const testCert = "tester"

func startStamps(t *testing.T) *stamps {
	t.Helper()
	ctx := context.Background()
	f := authtest.New(t)
	f.AddClient(testCert, auth.Roles...)
	t.Setenv(auth.EnvCertsDir, f.Dir)
	t.Setenv(auth.EnvCertName, testCert)
	s := &stamps{tls: f.TLS(testCert), client: map[string]*stamp.Client{}}
	f.AddNode("location")
	locSrv, err := location.Open(location.Config{Auth: f.Authenticator()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = locSrv.Close() })
	s.url = f.Serve("location", locSrv.Handler())
	s.loc = location.NewTLSClient(s.url, s.tls)
	for _, name := range []string{testsuite.StampA, testsuite.StampB} {
		f.AddNode(name)
		st, err := stamp.Open(stamp.Config{Name: name, LocationURL: s.url, EnableFaults: true,
			Auth: f.Authenticator(), ClientTLS: f.TLS(authtest.Node(name))})
		require.NoError(t, err)
		t.Cleanup(func() { _ = st.Close() })
		u := f.Serve(name, st.Handler())
		require.NoError(t, s.loc.RegisterStamp(ctx, location.Stamp{Name: name, URL: u}))
		s.client[name] = stamp.NewClient(u, stamp.HTTPClient(s.tls))
	}
	return s
}

func (s *stamps) provision(t *testing.T, account string, partitions int) {
	t.Helper()
	_, err := location.Provision(context.Background(), s.loc, s.client[testsuite.StampA], s.client[testsuite.StampB],
		testsuite.StampA, testsuite.StampB, account, partitions)
	require.NoError(t, err)
}

// baton runs the CLI in this process; out is stdout, then stderr.
func batonCLI(args ...string) (string, string, int) {
	var stdout, stderr bytes.Buffer
	code := execute(args, &stdout, &stderr)
	return stdout.String(), stderr.String(), code
}

// TestRecoveredPrintsJSONLines: the writes a demote set aside, as JSON
// lines from the account's secondary (the old primary), or from the stamp
// --stamp names; and baton status says the account waits for a reprotect.
func TestRecoveredPrintsJSONLines(t *testing.T) {
	ctx := context.Background()
	s := startStamps(t)
	const acct = "rec-acct"
	s.provision(t, acct, 2)
	a, b := s.client[testsuite.StampA], s.client[testsuite.StampB]
	// Replication cut: the old primary's writes diverge.
	require.NoError(t, b.AddFault(ctx, stamp.Fault{Scope: "replication", Unreachable: true}))
	want := map[string]stamp.Op{}
	for i := range 3 {
		k := fmt.Sprintf("k%d", i)
		_, err := a.Put(ctx, acct, k, "v-"+k, 0)
		require.NoError(t, err)
		want[k] = stamp.OpPut
	}
	_, err := a.Delete(ctx, acct, "k0", 0)
	require.NoError(t, err)
	// An unplanned failover's promote, then the reprotect's demote.
	_, err = b.Promote(ctx, acct, stamp.ControlRequest{All: true, Epoch: 2})
	require.NoError(t, err)
	require.NoError(t, b.ClearFaults(ctx))
	_, err = s.loc.Move(ctx, acct, location.MoveRequest{From: testsuite.StampA, To: testsuite.StampB,
		ExpectedEpoch: 1, Epoch: 2})
	require.NoError(t, err)
	st, err := b.Status(ctx, acct, nil)
	require.NoError(t, err)
	targets := map[int]uint64{}
	for _, p := range st.Partitions {
		targets[p.Partition] = p.LastReplayed
	}
	_, err = a.Demote(ctx, acct, stamp.ControlRequest{All: true, Epoch: 2, Targets: targets})
	require.NoError(t, err)

	out, errOut, code := batonCLI("recovered", acct, "--location", s.url)
	require.Zero(t, code, errOut)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	require.Len(t, lines, 4, out)
	ops := map[stamp.Op]int{}
	for _, l := range lines {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		for _, f := range []string{"key", "value", "lsn", "partition", "epoch", "op", "recovered_at"} {
			require.Contains(t, m, f, l)
		}
		require.Equal(t, 1.0, m["epoch"], l)
		require.Contains(t, want, m["key"], l)
		ops[stamp.Op(m["op"].(string))]++
	}
	require.Equal(t, map[stamp.Op]int{stamp.OpPut: 3, stamp.OpDelete: 1}, ops)
	require.Equal(t, "4 recovered writes of rec-acct on stamp-a (the secondary)\n", errOut)

	out, errOut, code = batonCLI("recovered", "--account", acct, "--stamp", testsuite.StampB, "--location", s.url)
	require.Zero(t, code, errOut)
	require.Empty(t, out)
	require.Equal(t, "0 recovered writes of rec-acct on stamp-b (the primary)\n", errOut)
	_, errOut, code = batonCLI("recovered", acct, "--stamp", "stamp-z", "--location", s.url)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, `no stamp "stamp-z" is registered`)
	_, errOut, code = batonCLI("recovered", "no-such-acct", "--location", s.url)
	require.Equal(t, 1, code)
	require.Contains(t, errOut, "account no-such-acct is not known to the location service")

	out, errOut, code = batonCLI("status", acct, "--location", s.url)
	require.Zero(t, code, errOut)
	require.Contains(t, out, "ready to fail over: NO\n    NO  protected: reprotect pending: rec-acct failed over "+
		"to stamp-b at epoch 2 and stamp-a does not replicate it yet: baton reprotect rec-acct\n")
}

// TestStatusSaysWhetherReady: a replicating account is ready, with every
// check and its figures; --output json carries the verdict and the budget;
// with its secondary gone, it is not, and says why.
func TestStatusSaysWhetherReady(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s := startStamps(t)
	s.provision(t, "st-acct", 2)
	for i := range 10 {
		_, err := s.client[testsuite.StampA].Put(ctx, "st-acct", fmt.Sprintf("k%d", i), "v", 0)
		require.NoError(t, err)
	}
	var out, errOut string
	require.NoError(t, testsuite.Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		var code int
		out, errOut, code = batonCLI("status", "st-acct", "--location", s.url)
		// Ready as soon as replication flows; the writes are all replayed
		// a moment later.
		return code == 0 && strings.Contains(out, "ready to fail over: yes") && strings.Contains(out, "lag 0 ops"), nil
	}), "%s%s", out, errOut)
	for _, want := range []string{
		"account st-acct: primary stamp-a (", "on stamp-a: 10 writes",
		"    ok  protected: stamp-a replicates to stamp-b\n",
		"    ok  secondary healthy: stamp-b answers healthy and holds every partition as the replica\n",
		"    ok  replication flowing: every partition on stamp-a ships to stamp-b\n",
		"    ok  lag within budget: lag 0 ops (0 unacknowledged, 0 not replayed on stamp-b), budget 1000\n",
		"    ok  estimated RPO within budget: estimated RPO 0s (0 ops not acknowledged), budget 10s\n",
	} {
		require.Contains(t, out, want)
	}
	out, errOut, code := batonCLI("status", "st-acct", "--location", s.url, "--max-rpo", "2s", "-o", "json")
	require.Zero(t, code, errOut)
	var js struct {
		Readiness struct {
			Ready  bool
			Budget struct {
				MaxRPO time.Duration `json:"max_rpo"`
			}
		}
		Written uint64
	}
	require.NoError(t, json.Unmarshal([]byte(out), &js), out)
	require.True(t, js.Readiness.Ready, out)
	require.Equal(t, 2*time.Second, js.Readiness.Budget.MaxRPO)
	require.Equal(t, uint64(10), js.Written)

	// The secondary stops answering: not ready, and why.
	require.NoError(t, s.client[testsuite.StampB].AddFault(ctx, stamp.Fault{Scope: "all", Unreachable: true}))
	out, errOut, code = batonCLI("status", "st-acct", "--location", s.url, "--timeout", "5s")
	require.Zero(t, code, errOut)
	require.Contains(t, out, "ready to fail over: NO\n")
	require.Contains(t, out, "    NO  secondary healthy: secondary stamp-b")
}

// TestReprotectAndFailBack: baton failover, then status says a reprotect is
// pending, baton reprotect --wait prints the report, status says ready,
// baton result --reprotect (or the reprotect's workflow ID) prints it
// again; a second reprotect finds nothing to do. The Temporal dev server
// and an in-process worker.
func TestReprotectAndFailBack(t *testing.T) {
	if testing.Short() {
		t.Skip("needs the Temporal dev server (skipped with -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	ds, err := testsuite.StartDevServer(ctx, testsuite.DevServerOptions{Dir: dir})
	require.NoError(t, err)
	t.Cleanup(func() { ds.Stop(10 * time.Second) })
	t.Setenv("TEMPORAL_ADDRESS", ds.HostPort)
	t.Setenv("TEMPORAL_NAMESPACE", "default")
	c, err := client.Dial(client.Options{HostPort: ds.HostPort, Logger: logging.NewZapAdapter(zap.NewNop())})
	require.NoError(t, err)
	defer c.Close()
	s := startStamps(t)
	const queue = "baton-starter-test"
	w := worker.New(c, queue, worker.Options{})
	acts := activities.New(s.url, s.tls)
	acts.Temporal = c
	register.WorkflowsAndActivities(w, acts)
	require.NoError(t, w.Start())
	defer w.Stop()
	const acct = "rp-acct"
	s.provision(t, acct, 4)
	common := []string{"--location", s.url, "--task-queue", queue}

	out, errOut, code := batonCLI(append([]string{"failover", acct, "--to", testsuite.StampB, "--wait"}, common...)...)
	require.Zero(t, code, out+errOut)
	out, errOut, code = batonCLI(append([]string{"status", acct}, common...)...)
	require.Zero(t, code, errOut)
	require.Contains(t, out, "NO  protected: reprotect pending")

	out, errOut, code = batonCLI(append([]string{"reprotect", acct, "--wait", "--reason", "stamp-a is back",
		"--requested-by", "tester"}, common...)...)
	require.Zero(t, code, out+errOut)
	for _, want := range []string{
		"reprotect started: workflow reprotect-rp-acct run ",
		"reprotect of rp-acct: primary stamp-b, secondary stamp-a (the old primary), epoch 2 (4 partitions): completed\n",
		`  reason: "stamp-a is back", requested by "tester" (trigger manual)` + "\n",
		"  recovered writes: none (stamp-a held nothing past what stamp-b replayed)\n",
		"    the last failover was planned: nothing was lost, nothing diverged\n",
		"  lag at the end: none (stamp-a had replayed all stamp-b wrote)\n",
		"  total time: ",
	} {
		require.Contains(t, out, want)
	}
	require.NotContains(t, out, "seeded")

	var ready string
	require.NoError(t, testsuite.Poll(ctx, 50*time.Millisecond, func() (bool, error) {
		ready, _, _ = batonCLI(append([]string{"status", acct}, common...)...)
		return strings.Contains(ready, "ready to fail over: yes"), nil
	}), ready)

	out, errOut, code = batonCLI(append([]string{"result", acct, "--reprotect", "-o", "json"}, common...)...)
	require.Zero(t, code, errOut)
	var res workflows.ReprotectResult
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.Equal(t, "tester", res.RequestedBy)
	out, errOut, code = batonCLI(append([]string{"result", workflows.ReprotectWorkflowID(acct)}, common...)...)
	require.Zero(t, code, errOut)
	require.True(t, strings.HasPrefix(out, "reprotect of rp-acct: primary stamp-b"), out)

	// Failback is a planned failover; then the account waits for a
	// reprotect again, which a second reprotect does.
	out, errOut, code = batonCLI(append([]string{"failover", acct, "--to", testsuite.StampA, "--wait"}, common...)...)
	require.Zero(t, code, out+errOut)
	out, errOut, code = batonCLI(append([]string{"reprotect", acct, "--wait", "-o", "json"}, common...)...)
	require.Zero(t, code, out+errOut)
	require.NoError(t, json.Unmarshal([]byte(out), &res), out)
	require.Equal(t, workflows.OutcomeCompleted, res.Outcome)
	require.Equal(t, testsuite.StampA, res.Primary)

	out, errOut, code = batonCLI(append([]string{"reprotect", acct, "--wait"}, common...)...)
	require.Zero(t, code, out+errOut)
	require.Contains(t, out, "already protected: stamp-a replicates to stamp-b; nothing to do")
}

func TestReprotectCommandsRefuseBadInput(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"reprotect"}, "no account: name it, baton reprotect ACCOUNT"},
		{[]string{"reprotect", "a", "b"}, "where one account was expected"},
		{[]string{"reprotect", "a", "--account", "b"}, "the account is given twice"},
		{[]string{"reprotect", "a", "--catch-up-timeout", "-1m"}, "--catch-up-timeout -1m0s: must be positive"},
		{[]string{"reprotect", "a", "--lag-budget", "many"}, `invalid argument "many"`},
		{[]string{"recovered"}, "no account: name it, baton recovered ACCOUNT"},
		{[]string{"recovered", "a", "b"}, "where one account was expected"},
		{[]string{"status", "a", "--max-rpo", "soon"}, `invalid argument "soon"`},
		{[]string{"result", "a", "--reprotect=maybe"}, `invalid argument "maybe"`},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			require.ErrorContains(t, run(tt.args), tt.wantErr)
		})
	}
}

// TestReprotectFailureSaysWhatNext: a refused or failed reprotect's line
// names the account's commands.
func TestReprotectFailureSaysWhatNext(t *testing.T) {
	res := workflows.ReprotectResult{Account: "acct-1"}
	refused := temporal.NewNonRetryableApplicationError("reprotect of acct-1 refused (nothing was touched): x",
		workflows.ErrTypeReprotectRefused, nil, res)
	require.Equal(t, "fix what the precheck found (`baton status acct-1` shows where the account is), "+
		"then `baton reprotect acct-1` again", describeError(refused).Next)
	failed := temporal.NewNonRetryableApplicationError("stamp-a did not catch up",
		workflows.ErrTypeReprotectFailed, nil, res)
	require.Contains(t, describeError(failed).Next, "every step of a reprotect is idempotent: fix the cause, "+
		"then `baton reprotect acct-1` again")
}
