// Package temporalclient connects Baton's programs to Temporal with the
// settings the temporal CLI reads: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE,
// TLS, an API key, or a temporal.toml profile
// (go.temporal.io/sdk/contrib/envconfig).
package temporalclient

import (
	"fmt"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/logging"
)

// OptionsFromEnv loads client options from the environment the way the
// temporal CLI does, with the SDK's logs going to zl.
func OptionsFromEnv(zl *zap.Logger) (client.Options, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return client.Options{}, fmt.Errorf(
			"load Temporal client settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, ...): %w", err)
	}
	if opts.HostPort == "" {
		opts.HostPort = client.DefaultHostPort
	}
	opts.Logger = logging.NewZapAdapter(zl)
	return opts, nil
}

// Dial connects to Temporal with OptionsFromEnv.
func Dial(zl *zap.Logger) (client.Client, error) {
	opts, err := OptionsFromEnv(zl)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %q): %w", opts.HostPort, opts.Namespace, err)
	}
	return c, nil
}
