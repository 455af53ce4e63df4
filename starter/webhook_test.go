package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/testsuite"
	"github.com/batonhq/baton/webhook"
)

const minimalWebhookConfig = "rules:\n  - name: r\n    matchers: ['alertname=\"StampDown\"']\n    account_label: account\n    target: stamp-b\n"

func TestWebhookCmdRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "webhook.yaml")
	require.NoError(t, os.WriteFile(cfg, []byte(minimalWebhookConfig), 0o644))
	bad := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(bad, []byte("rules:\n  - name: r\n"), 0o644))
	t.Setenv(envWebhookToken, "")
	t.Setenv(envWebhookHMAC, "")
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no config", []string{"webhook"}, "--config is required"},
		{"no secret", []string{"webhook", "--config", cfg}, "no secret"},
		{
			"missing token file",
			[]string{"webhook", "--config", cfg, "--token-file", filepath.Join(dir, "nope")},
			"--token-file: read secret",
		},
		{"bad config", []string{"webhook", "--config", bad}, "bad.yaml: rule \"r\": no matchers"},
		{"no token flag", []string{"webhook", "--config", cfg, "--token", "x"}, "unknown flag: --token"},
		{
			"zero timeout",
			[]string{"webhook", "--config", cfg, "--timeout", "0s"},
			"--max-body and --timeout must be positive",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args)
			require.Error(t, err)
			require.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

// TestServeWebhookShutsDownGracefully: the receiver serves (Temporal need
// not be up: the client is lazy) and returns cleanly when told to stop.
func TestServeWebhookShutsDownGracefully(t *testing.T) {
	cfg, err := webhook.ParseConfig([]byte(minimalWebhookConfig))
	require.NoError(t, err)
	port, err := testsuite.FreePort()
	require.NoError(t, err)
	t.Setenv("TEMPORAL_ADDRESS", "127.0.0.1:1")
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		g := &globals{location: "http://127.0.0.1:1", security: auth.ClientSecurity{Insecure: true}, stderr: io.Discard}
		done <- serveWebhook(ctx, g, zap.NewNop(), &webhookFlags{listen: listen, checkAccounts: true},
			webhook.Options{Config: cfg, Auth: webhook.Auth{Token: []byte("t")}, Timeout: time.Second})
	}()
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	require.NoError(t, testsuite.WaitHTTP(wctx, "http://"+listen+webhook.PathHealth, nil))
	resp, err := http.Get("http://" + listen + webhook.PathReady)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "not ready while Temporal is away")
	cancel()
	require.NoError(t, <-done)
}
