// Package stamptest serves reference stamps on loopback ports for tests
// (as planner/plantest builds plans for them). It is no part of the stamp's
// API: production stamps run as stampd processes.
package stamptest

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/batonhq/baton/stamp"
)

// Local is a stamp served on a loopback port.
type Local struct {
	server *stamp.Server
	srv    *http.Server
	url    string
}

// StartLocal opens a stamp and serves it on 127.0.0.1:0.
func StartLocal(cfg stamp.Config) (*Local, error) {
	s, err := stamp.Open(cfg)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("start local stamp %s: listen: %w", cfg.Name, err)
	}
	l := &Local{
		server: s,
		srv:    &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second},
		url:    "http://" + ln.Addr().String(),
	}
	go l.srv.Serve(ln)
	return l, nil
}

// URL is the base URL the stamp serves on.
func (l *Local) URL() string { return l.url }

// Close stops serving and closes the stamp.
func (l *Local) Close() error {
	herr := l.srv.Close()
	if err := l.server.Close(); err != nil {
		return err
	}
	if herr != nil {
		return fmt.Errorf("close local stamp listener: %w", herr)
	}
	return nil
}
