// Package temporalx wires Baton to Temporal: client options from the usual
// environment (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TLS, API key, or a
// temporal.toml profile), zap logging through the SDK's logger interface,
// and the one place that registers Baton's workflows and activities.
package temporalx

import (
	"context"
	"errors"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/log"
	"go.temporal.io/sdk/temporal"
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
	w.RegisterWorkflowWithOptions(workflows.AppFailover, workflow.RegisterOptions{Name: workflows.NameAppFailover})
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

// FailoverStartOptions are the start options of an account's failover:
// its account-derived ID (so only one runs at a time), the search
// attributes, and the Web UI's static summary and details.
func FailoverStartOptions(taskQueue string, req workflows.FailoverRequest) client.StartWorkflowOptions {
	req = req.WithDefaults()
	mode, trigger := req.Mode, req.Trigger
	return client.StartWorkflowOptions{
		ID:                       workflows.FailoverWorkflowID(req.Account),
		TaskQueue:                taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		// Without this the SDK hands back the running failover's handle as if
		// it had started a new one.
		WorkflowExecutionErrorWhenAlreadyStarted: true,
		StaticSummary:                            fmt.Sprintf("%s failover of %s to %s (%s)", mode, req.Account, req.ToStamp, trigger),
		StaticDetails: fmt.Sprintf("**account** %s  \n**to** %s  \n**mode** %s  \n**trigger** %s  \n**reason** %s  \n**requested by** %s",
			req.Account, req.ToStamp, mode, trigger, req.Reason, req.RequestedBy),
		TypedSearchAttributes: temporal.NewSearchAttributes(
			workflows.SearchAccount.ValueSet(req.Account), workflows.SearchMode.ValueSet(string(mode)),
			workflows.SearchTrigger.ValueSet(string(trigger)), workflows.SearchPhase.ValueSet(string(workflows.PhasePrecheck))),
	}
}

// StartFailover starts an AccountFailover under its account-derived ID. A
// second failover of the same account while one runs is refused, naming
// the running one.
func StartFailover(ctx context.Context, c client.Client, taskQueue string, req workflows.FailoverRequest) (client.WorkflowRun, error) {
	run, err := c.ExecuteWorkflow(ctx, FailoverStartOptions(taskQueue, req), workflows.AccountFailover, req)
	var running *serviceerror.WorkflowExecutionAlreadyStarted
	if errors.As(err, &running) {
		return nil, fmt.Errorf("%w: a failover of %s is already running: workflow %s run %s; watch it (baton watch %s) or abort it (baton abort %s)",
			ErrAlreadyRunning, req.Account, workflows.FailoverWorkflowID(req.Account), running.RunId, req.Account, req.Account)
	}
	if err != nil {
		return nil, fmt.Errorf("start failover of %s: %w", req.Account, err)
	}
	return run, nil
}

// ErrAlreadyRunning: the account already has a failover in flight.
var ErrAlreadyRunning = errors.New("failover already running")

// EnsureSearchAttributes registers Baton's search attributes in the
// namespace if they are missing (the dev server registers them at launch;
// a production cluster needs them once).
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	list, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for _, name := range workflows.SearchAttributeNames() {
		if _, ok := list.GetCustomAttributes()[name]; !ok {
			missing[name] = enumspb.INDEXED_VALUE_TYPE_KEYWORD
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing}); err != nil {
		// Several workers starting at once race to add them: the loser's
		// error is fine if they are all there now.
		if again, lerr := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace}); lerr == nil {
			all := true
			for name := range missing {
				_, ok := again.GetCustomAttributes()[name]
				all = all && ok
			}
			if all {
				return nil
			}
		}
		return fmt.Errorf("register search attributes %v in namespace %s (or ask an admin: temporal operator search-attribute create --name BatonAccount --type Keyword ...): %w",
			workflows.SearchAttributeNames(), namespace, err)
	}
	return nil
}
