package testsuite

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/launch"
	"github.com/batonhq/baton/workflows"
)

// failOverOnce provisions account and fails it over from stamp-a to
// stamp-b through the worker, checking that it lands.
func failOverOnce(ctx context.Context, t *testing.T, c *Cluster, account string) {
	t.Helper()
	_, err := c.Provision(ctx, account, 4)
	require.NoError(t, err)
	_, err = c.StampClient(StampA).Put(ctx, account, "k", "v", 1)
	require.NoError(t, err)
	run, err := launch.Failover(ctx, c.Client, workflows.TaskQueue, workflows.FailoverRequest{
		Account: account, FromStamp: StampA, ToStamp: StampB, Reason: "security e2e", RequestedBy: t.Name(),
	})
	require.NoError(t, err)
	require.NoError(t, run.Get(ctx, nil))
	acct, err := c.Loc.Lookup(ctx, account)
	require.NoError(t, err)
	require.Equal(t, StampB, acct.Primary)
	v, err := c.StampClient(StampB).Get(ctx, account, "k")
	require.NoError(t, err)
	require.Equal(t, "v", v.Value)
}

// TestSecureClusterRefusesStrangers: the harness's default cluster speaks
// mutual TLS; a caller without a certificate gets 401 from the stamps and
// the location service, a certificate that is no peer stamp cannot ship
// into a secondary, and the worker, with its own certificate, fails an
// account over.
func TestSecureClusterRefusesStrangers(t *testing.T) {
	c := startCluster(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.True(t, strings.HasPrefix(c.StampURLs[StampA], "https://"), c.StampURLs[StampA])
	failOverOnce(ctx, t, c, "secure-acct")

	tlsCfg, err := auth.ClientConfig(c.CertsDir, "") // trusts the CA, presents nothing
	require.NoError(t, err)
	stranger := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}, Timeout: 10 * time.Second}
	for _, url := range []string{c.StampURLs[StampA] + "/v1/accounts", c.LocationURL + "/v1/accounts"} {
		resp, err := stranger.Get(url)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, url)
	}
	body := `{"account":"secure-acct","from_stamp":"stamp-b","partitions":[]}`
	resp, err := c.HTTP().Post(c.StampURLs[StampA]+"/v1/internal/replicate", "application/json", strings.NewReader(body))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusForbidden, resp.StatusCode, "a shipment from the tests' certificate")
}

// TestInsecurePlaintextStillWorks: with --insecure everywhere (and no
// certificates) the services speak plaintext to anyone, and a failover
// runs as before.
func TestInsecurePlaintextStillWorks(t *testing.T) {
	c := startCluster(t, Options{Insecure: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	require.True(t, strings.HasPrefix(c.StampURLs[StampA], "http://"), c.StampURLs[StampA])
	require.Empty(t, c.CertsDir)
	failOverOnce(ctx, t, c, "plain-acct")
	resp, err := http.Get(c.StampURLs[StampB] + "/v1/accounts")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}
