// Package locationtest serves the location service on a loopback port for
// tests (as planner/plantest builds plans for them). It is no part of the
// location service's API: production runs it as its own process.
package locationtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/location"
)

// Local is a location service serving on a loopback port.
type Local struct {
	srv  *location.Server
	hs   *http.Server
	url  string
	done chan struct{}
}

// StartLocal opens a location service and serves it on 127.0.0.1 on a free
// port. It has the shape of stamptest.StartLocal; the two differ in what
// they open and in how they close (a stamp's long polls are cut, this
// service drains), which is why they are not one helper.
func StartLocal(cfg location.Config) (*Local, error) {
	srv, err := location.Open(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		_ = srv.Close()
		return nil, fmt.Errorf("listen for local location service: %w", err)
	}
	l := &Local{
		srv:  srv,
		hs:   &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second},
		url:  "http://" + ln.Addr().String(),
		done: make(chan struct{}),
	}
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	go func() {
		defer close(l.done)
		if err := l.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("local location service stopped", zap.Error(err))
		}
	}()
	return l, nil
}

// URL is the service's base URL.
func (l *Local) URL() string { return l.url }

// Close stops serving and closes the store (in memory mode, deleting it).
func (l *Local) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := l.hs.Shutdown(ctx)
	<-l.done
	if cerr := l.srv.Close(); err == nil {
		err = cerr
	}
	return err
}
