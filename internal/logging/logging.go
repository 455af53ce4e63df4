// Package logging builds Baton's zap logger and adapts it to the Temporal
// SDK's logger interface, so that the SDK's own lines (client, worker)
// land in the same log.
package logging

import (
	"fmt"

	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

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

// fields turns the SDK's alternating keys and values into zap fields; a
// key without a value is kept under "extra".
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
