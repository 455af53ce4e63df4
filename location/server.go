package location

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"time"

	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/jsonhttp"
	"github.com/batonhq/baton/stamp"
)

// Config configures the location service.
type Config struct {
	// DataDir holds location.db. "" keeps the state in a temporary file that
	// is deleted on Close (memory mode).
	DataDir string
	Logger  *zap.Logger
	// Auth checks every caller (docs/SECURITY.md); nil serves everyone
	// everything, only for an operator's explicit --insecure.
	Auth *auth.Authenticator
}

// Server is the location service. Serve it with Handler.
type Server struct {
	st    *store
	log   *zap.Logger
	now   func() time.Time
	guard *auth.Guard // who may call what; lets everyone in without Config.Auth
}

// MaxAccountPartitions bounds CreateRequest.Partitions (same as a stamp's).
const MaxAccountPartitions = stamp.MaxPartitions

// Stamp names are a little more permissive than account names, but still
// safe in a URL path segment and a log line.
var stampNameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)

const maxBody = 1 << 20

// Open opens (or creates) the location service's store.
func Open(cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = zap.NewNop()
	}
	st, err := openStore(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return &Server{
		st:  st,
		log: log,
		now: func() time.Time { return time.Now().UTC() },
		guard: auth.NewGuard(cfg.Auth, log, "baton_location_auth_refusals_total",
			"Calls the location service refused: unauthenticated (401) or forbidden (403), by route."),
	}, nil
}

// Close closes the store; in memory mode its file is deleted.
func (s *Server) Close() error { return s.st.close() }

// Handler serves the HTTP API (see docs/LOCATION_API.md).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	route := func(pattern string, h http.HandlerFunc, roles ...auth.Role) {
		mux.Handle(pattern, s.guard.Require(h, roles...))
	}
	control, admin := auth.RoleControl, auth.RoleAdmin
	route("PUT /v1/stamps/{name}", s.putStamp) // admin, or the stamp itself: putStamp checks
	route("GET /v1/stamps", s.listStamps)
	route("POST /v1/accounts", s.createAccount, admin)
	route("GET /v1/accounts", s.listAccounts)
	route("GET /v1/accounts/{account}", s.getAccount)
	route("POST /v1/accounts/{account}/move", s.moveAccount, control, admin)
	route("POST /v1/accounts/{account}/protect", s.protectAccount, control, admin)
	route("PUT /v1/accounts/{account}/labels", s.putLabels, admin)
	route("GET /v1/stamps/{name}/accounts", s.stampAccounts)
	route("GET /v1/maintenance", s.getMaintenance)
	route("PUT /v1/maintenance", s.putMaintenance, admin)
	route("GET /v1/health", func(w http.ResponseWriter, r *http.Request) {
		jsonhttp.WriteJSON(w, http.StatusOK, map[string]bool{"ok": true})
	})
	mux.Handle("GET /metrics", s.guard.Metrics())
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	jsonhttp.WriteJSON(w, status, ErrorBody{Code: code, Message: msg})
}

// fail answers err, mapping store errors to their status and everything else
// to a logged 500.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	if se, ok := isStoreErr(err); ok {
		writeError(w, se.status, se.code, se.msg)
		return
	}
	s.log.Error("location request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
	writeError(w, http.StatusInternalServerError, "internal", err.Error())
}

// answer answers 200 with v, read from the store, or the error that kept
// it from being read.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	if err != nil {
		s.fail(w, r, err)
		return
	}
	jsonhttp.WriteJSON(w, http.StatusOK, v)
}

func badRequest(w http.ResponseWriter, format string, args ...any) {
	writeError(w, http.StatusBadRequest, "bad_request", fmt.Sprintf(format, args...))
}

// decode reads a JSON body strictly: unknown fields are refused so that a
// typo in a field name is not silently treated as a zero value. Any body it
// cannot use, too large included, is a 400.
func decode(w http.ResponseWriter, r *http.Request, out any) bool {
	if err := jsonhttp.ReadJSON(w, r, maxBody, out); err != nil {
		badRequest(w, "%v", err)
		return false
	}
	return true
}

func validStampName(name string) error {
	if !stampNameRE.MatchString(name) {
		return fmt.Errorf("stamp name %q must be 1-63 characters of A-Z a-z 0-9 . _ -", name)
	}
	return nil
}

func (s *Server) putStamp(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.mayRegister(w, r, name) {
		return
	}
	var st Stamp
	if !decode(w, r, &st) {
		return
	}
	if st.Name == "" {
		st.Name = name
	}
	if st.Name != name {
		badRequest(w, "body names stamp %q but the path names %q", st.Name, name)
		return
	}
	if err := validStampName(name); err != nil {
		badRequest(w, "%v", err)
		return
	}
	u, err := url.Parse(st.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != KindRedis && u.Scheme != KindPostgres) || u.Host == "" {
		badRequest(w, "stamp url %q must be an absolute http(s) URL such as https://127.0.0.1:7101 "+
			"(or redis://SITE, postgres://SITE for a site of Redis or PostgreSQL servers)", st.URL)
		return
	}
	if err := s.st.putStamp(st); err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("stamp registered", zap.String("stamp", st.Name), zap.String("url", st.URL))
	jsonhttp.WriteJSON(w, http.StatusOK, st)
}

// mayRegister lets an admin register any stamp, and a stamp's node
// certificate (the replication role, its name) register itself; others get
// 403.
func (s *Server) mayRegister(w http.ResponseWriter, r *http.Request, name string) bool {
	if s.guard.Insecure() {
		return true
	}
	id, _ := auth.IdentityFrom(r.Context())
	if id.Has(auth.RoleAdmin) || (id.Via == "certificate" && id.Has(auth.RoleReplication) && id.Name == name) {
		return true
	}
	s.guard.Refuse(w, r, auth.RoleAdmin, id.Name, fmt.Sprintf("%s (%s) may not register stamp %q: "+
		"it takes the admin role, or that stamp's own node certificate", id.Name, id.Via, name))
	return false
}

func (s *Server) listStamps(w http.ResponseWriter, r *http.Request) {
	out, err := s.st.stamps()
	s.answer(w, r, out, err)
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) {
	var req CreateRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Epoch == 0 {
		req.Epoch = 1 // normalised before the idempotency comparison
	}
	if err := stamp.ValidateAccountName(req.Account); err != nil {
		badRequest(w, "%v", err)
		return
	}
	if req.Partitions < 1 || req.Partitions > MaxAccountPartitions {
		badRequest(w, "partitions must be in 1..%d, got %d", MaxAccountPartitions, req.Partitions)
		return
	}
	if req.Primary == "" || req.Secondary == "" {
		badRequest(w, "primary and secondary stamp names are required")
		return
	}
	if req.Primary == req.Secondary {
		badRequest(w, "primary and secondary must be different stamps, both are %q", req.Primary)
		return
	}
	if err := req.validateKind(); err != nil {
		badRequest(w, "%v", err)
		return
	}
	a, created, err := s.st.create(req, s.now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		s.log.Info("account created", zap.String("account", a.Account), zap.Int("partitions", a.Partitions),
			zap.String("primary", a.Primary), zap.String("secondary", a.Secondary), zap.Uint64("epoch", a.Epoch))
	}
	jsonhttp.WriteJSON(w, status, a)
}

func (s *Server) getAccount(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("account")
	if err := stamp.ValidateAccountName(name); err != nil {
		badRequest(w, "%v", err)
		return
	}
	a, err := s.st.lookup(name)
	s.answer(w, r, a, err)
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) {
	out, err := s.st.accounts()
	s.answer(w, r, out, err)
}

func (s *Server) protectAccount(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("account")
	if err := stamp.ValidateAccountName(name); err != nil {
		badRequest(w, "%v", err)
		return
	}
	var req ProtectRequest
	if !decode(w, r, &req) {
		return
	}
	if req.Epoch == 0 {
		badRequest(w, "epoch is required: the account's current epoch")
		return
	}
	a, err := s.st.protect(name, req, s.now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("account protected", zap.String("account", name), zap.Uint64("epoch", req.Epoch))
	jsonhttp.WriteJSON(w, http.StatusOK, a)
}

func (s *Server) moveAccount(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("account")
	if err := stamp.ValidateAccountName(name); err != nil {
		badRequest(w, "%v", err)
		return
	}
	var req MoveRequest
	if !decode(w, r, &req) {
		return
	}
	switch {
	case req.From == "" || req.To == "":
		badRequest(w, "from and to stamp names are required")
		return
	case req.From == req.To:
		badRequest(w, "from and to are the same stamp %q", req.From)
		return
	case req.Epoch <= req.ExpectedEpoch:
		badRequest(w, "epoch %d must be above expected_epoch %d", req.Epoch, req.ExpectedEpoch)
		return
	}
	a, err := s.st.move(name, req, s.now())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.log.Info("account moved", zap.String("account", name), zap.String("from", req.From),
		zap.String("to", req.To), zap.Uint64("epoch", req.Epoch))
	jsonhttp.WriteJSON(w, http.StatusOK, a)
}
