// Package temporalx wires Baton to Temporal: client options from the usual
// environment (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key, or a
// temporal.toml profile), zap logging through the SDK's logger interface,
// and the one place that registers Baton's workflows and activities.
package temporalx

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
	"go.uber.org/zap"

	"github.com/batonhq/baton/activities"
	"github.com/batonhq/baton/workflows"
)

// ClientOptions loads client options from the environment the way the
// temporal CLI does, with logs going to zl.
func ClientOptions(zl *zap.Logger) (client.Options, error) {
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return client.Options{}, fmt.Errorf("load Temporal client settings (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, ...): %w", err)
	}
	if opts.HostPort == "" {
		opts.HostPort = client.DefaultHostPort
	}
	opts.Logger = NewZapAdapter(zl)
	return opts, nil
}

// Dial connects to Temporal with ClientOptions.
func Dial(zl *zap.Logger) (client.Client, error) {
	opts, err := ClientOptions(zl)
	if err != nil {
		return nil, err
	}
	c, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("connect to Temporal at %s (namespace %q): %w", opts.HostPort, opts.Namespace, err)
	}
	return c, nil
}

// Register registers every Baton workflow and the activities on w.
func Register(w worker.Registry, acts *activities.Activities) {
	w.RegisterWorkflowWithOptions(workflows.AccountFailover, workflow.RegisterOptions{Name: workflows.NameAccountFailover})
	w.RegisterWorkflowWithOptions(workflows.PartitionGroupFailover, workflow.RegisterOptions{Name: workflows.NamePartitionGroupFailover})
	w.RegisterActivity(acts)
}

// ZapAdapter implements the SDK's log.Logger over zap.
type ZapAdapter struct{ zl *zap.Logger }

var (
	_ log.Logger          = (*ZapAdapter)(nil)
	_ log.WithLogger      = (*ZapAdapter)(nil)
	_ log.WithSkipCallers = (*ZapAdapter)(nil)
)

// NewZapAdapter wraps zl; the SDK's own frames are skipped in caller info.
func NewZapAdapter(zl *zap.Logger) *ZapAdapter {
	return &ZapAdapter{zl: zl.WithOptions(zap.AddCallerSkip(1))}
}

func fields(keyvals []any) []zap.Field {
	fs := make([]zap.Field, 0, len(keyvals)/2+1)
	for i := 0; i < len(keyvals); i += 2 {
		k, ok := keyvals[i].(string)
		if !ok {
			k = fmt.Sprint(keyvals[i])
		}
		if i+1 < len(keyvals) {
			fs = append(fs, zap.Any(k, keyvals[i+1]))
		} else {
			fs = append(fs, zap.Any("extra", k))
		}
	}
	return fs
}

func (z *ZapAdapter) Debug(msg string, kv ...any) { z.zl.Debug(msg, fields(kv)...) }
func (z *ZapAdapter) Info(msg string, kv ...any)  { z.zl.Info(msg, fields(kv)...) }
func (z *ZapAdapter) Warn(msg string, kv ...any)  { z.zl.Warn(msg, fields(kv)...) }
func (z *ZapAdapter) Error(msg string, kv ...any) { z.zl.Error(msg, fields(kv)...) }

// With returns a logger with the key-values attached.
func (z *ZapAdapter) With(kv ...any) log.Logger { return &ZapAdapter{zl: z.zl.With(fields(kv)...)} }

// WithCallerSkip returns a logger that skips depth more frames.
func (z *ZapAdapter) WithCallerSkip(depth int) log.Logger {
	return &ZapAdapter{zl: z.zl.WithOptions(zap.AddCallerSkip(depth))}
}

// NewLogger builds Baton's zap logger: JSON for production ("json"),
// human-readable console lines for the demo ("console").
func NewLogger(format, level string) (*zap.Logger, error) {
	var cfg zap.Config
	switch format {
	case "json", "":
		cfg = zap.NewProductionConfig()
	case "console":
		cfg = zap.NewDevelopmentConfig()
	default:
		return nil, fmt.Errorf("unknown log format %q: use json or console", format)
	}
	if level != "" {
		lv, err := zap.ParseAtomicLevel(level)
		if err != nil {
			return nil, fmt.Errorf("log level %q: %w", level, err)
		}
		cfg.Level = lv
	}
	return cfg.Build()
}

// StartFailover starts an AccountFailover under its account-derived ID. A
// second failover of the same account while one runs is refused.
func StartFailover(ctx context.Context, c client.Client, taskQueue string, req workflows.FailoverRequest) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID:                       workflows.FailoverWorkflowID(req.Account),
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		StaticSummary:            fmt.Sprintf("failover %s to %s", req.Account, req.ToStamp),
		StaticDetails:            fmt.Sprintf("reason: %s\n\nrequested by: %s", req.Reason, req.RequestedBy),
	}, workflows.AccountFailover, req)
	if err != nil {
		return nil, fmt.Errorf("start failover of %s (is another failover of it running?): %w", req.Account, err)
	}
	return run, nil
}
