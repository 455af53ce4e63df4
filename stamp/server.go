package stamp

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/jsonhttp"
)

// Config configures a stamp server; see Open.
type Config struct {
	Name             string        // stamp name, e.g. "stamp-a"; returned in WriteResult.Stamp etc.
	DataDir          string        // bbolt file lives here; "" = memory mode (temp file, NoSync, deleted on Close)
	LocationURL      string        // optional location service base URL, consulted before an unfence
	ReplicationBatch int           // max log entries per partition per shipment (default 1000)
	ReplicationDelay time.Duration // added WAN delay per shipment (default 0)
	ReplayRate       float64       // secondary replay ops/s per partition; 0 = unthrottled
	// HeartbeatInterval: a primary with nothing to ship still reports its
	// LastWritten to the peer this often (default 250ms), so that after an
	// outage the secondary knows what it missed and how fresh that is.
	HeartbeatInterval time.Duration
	// LogRetain is how many entries below what is safe to drop (what the
	// peer durably received, on a primary; what was replayed, on a
	// secondary) each partition's log keeps (0 = DefaultLogRetain; negative:
	// the whole log is kept).
	LogRetain int
	// Faults are initial injected faults; they need EnableFaults.
	Faults []Fault
	// EnableFaults serves the fault-injection routes (drills and tests);
	// without it they answer 404.
	EnableFaults bool
	// Auth checks every caller (docs/SECURITY.md); nil serves everyone
	// everything, only for an operator's explicit --insecure.
	Auth *auth.Authenticator
	// ClientTLS is how the stamp calls its peers and the location service
	// (its node certificate); nil: plaintext.
	ClientTLS *tls.Config
	Logger    *zap.Logger // nil = zap.NewNop()
}

// Server is one storage stamp. Create it with Open, serve Handler, and Close
// it when done.
type Server struct {
	cfg     Config
	log     *zap.Logger
	db      *bbolt.DB
	dbPath  string
	memory  bool
	started time.Time
	hc      *http.Client // shipments and location look-ups

	mu       sync.RWMutex // guards accounts
	accounts map[string]*account
	createMu sync.Mutex // serializes account creation

	queue    chan *commitItem
	brokenMu sync.Mutex
	broken   error // set when a commit failed; writes are refused after that

	faults faultSet

	guard *auth.Guard // who may call what; lets everyone in without Config.Auth

	stop      chan struct{}
	ctx       context.Context // canceled on Close; bounds outgoing calls
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// DataFile is the name of a durable stamp's database file in its DataDir.
const DataFile = "stamp.db"

// Open opens (or recovers) the stamp's store and starts its committer,
// shippers and replayers.
func Open(cfg Config) (*Server, error) {
	if cfg.Name == "" {
		return nil, errors.New("open stamp: Config.Name is required")
	}
	if cfg.ReplicationBatch <= 0 {
		cfg.ReplicationBatch = 1000
	}
	if cfg.LogRetain == 0 {
		cfg.LogRetain = DefaultLogRetain
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 250 * time.Millisecond
	}
	if cfg.ReplayRate < 0 {
		return nil, fmt.Errorf("open stamp %s: ReplayRate %v is negative; use 0 for unthrottled", cfg.Name, cfg.ReplayRate)
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger.With(zap.String("stamp", cfg.Name)),
		started:  time.Now().UTC(),
		accounts: map[string]*account{},
		queue:    make(chan *commitItem, queueLen),
		stop:     make(chan struct{}),
		hc:       HTTPClient(cfg.ClientTLS),
	}
	s.guard = auth.NewGuard(cfg.Auth, s.log, "baton_stamp_auth_refusals_total",
		"Calls the stamp refused: unauthenticated (401) or forbidden (403), by route.")
	if len(cfg.Faults) > 0 && !cfg.EnableFaults {
		return nil, fmt.Errorf("open stamp %s: initial faults need fault injection enabled (--enable-faults)", cfg.Name)
	}
	for _, f := range cfg.Faults {
		if err := validateFault(&f); err != nil {
			return nil, fmt.Errorf("open stamp %s: initial fault: %w", cfg.Name, err)
		}
		s.faults.add(f)
	}
	if err := s.openDB(); err != nil {
		return nil, fmt.Errorf("open stamp %s: %w", cfg.Name, err)
	}
	accts, err := loadAccounts(s.db)
	if err != nil {
		s.closeDB()
		return nil, fmt.Errorf("open stamp %s: recover accounts: %w", cfg.Name, err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.commitLoop()
	go s.heartbeatLoop()
	for _, a := range accts {
		s.accounts[a.spec.Account] = a
		s.startAccount(a)
		a.markRecovered()
	}
	s.log.Info("stamp open", zap.String("path", s.dbPath), zap.Int("accounts", len(accts)), zap.Bool("durable", !s.memory))
	return s, nil
}

func (s *Server) openDB() error {
	opts := &bbolt.Options{
		Timeout:      5 * time.Second,
		FreelistType: bbolt.FreelistMapType,
		// Reserve address space up front: growing the mmap waits for every
		// open read transaction, which would stall writes behind long reads.
		InitialMmapSize: 1 << 30,
	}
	if s.cfg.DataDir == "" {
		dir := os.TempDir()
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			dir = "/dev/shm"
		}
		f, err := os.CreateTemp(dir, "baton-stamp-"+s.cfg.Name+"-*.db")
		if err != nil {
			return fmt.Errorf("create memory-mode store: %w", err)
		}
		s.dbPath = f.Name()
		if err := f.Close(); err != nil {
			return fmt.Errorf("create memory-mode store: %w", err)
		}
		s.memory = true
		opts.NoSync = true
		opts.NoFreelistSync = true
	} else {
		if err := os.MkdirAll(s.cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
		s.dbPath = filepath.Join(s.cfg.DataDir, DataFile)
	}
	db, err := bbolt.Open(s.dbPath, 0o600, opts)
	if err != nil {
		if s.memory {
			os.Remove(s.dbPath)
		}
		return fmt.Errorf("open store %s: %w", s.dbPath, err)
	}
	s.db = db
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketAccounts)
		return err
	}); err != nil {
		s.closeDB()
		return fmt.Errorf("init store %s: %w", s.dbPath, err)
	}
	return nil
}

func (s *Server) closeDB() error {
	err := s.db.Close()
	if s.memory {
		if rerr := os.Remove(s.dbPath); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// Close stops the background goroutines and closes the store. Requests
// still waiting on the server get errClosed. Safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.cancel()
		s.wg.Wait()
		if err := s.closeDB(); err != nil {
			s.closeErr = fmt.Errorf("close stamp %s: %w", s.cfg.Name, err)
		}
		s.hc.CloseIdleConnections()
	})
	return s.closeErr
}

func (s *Server) startAccount(a *account) {
	s.wg.Add(3)
	go s.shipLoop(a)
	go s.replayLoop(a)
	go s.pruneLoop(a)
}

// Handler returns the stamp's HTTP API (docs/STAMP_API.md).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	data, control, admin := auth.RoleData, auth.RoleControl, auth.RoleAdmin
	s.route(mux, "GET /v1/health", s.health)
	mux.Handle("GET /metrics", s.guard.Metrics())
	s.route(mux, "POST /v1/accounts", s.createAccount, admin)
	s.route(mux, "GET /v1/accounts", s.listAccounts, admin, control)
	s.route(mux, "PUT /v1/accounts/{account}/keys/{key...}", s.putKey, data)
	s.route(mux, "DELETE /v1/accounts/{account}/keys/{key...}", s.deleteKey, data)
	s.route(mux, "GET /v1/accounts/{account}/keys/{key...}", s.getKey, data)
	s.route(mux, "POST /v1/accounts/{account}/batch", s.batch, data)
	s.route(mux, "POST /v1/accounts/{account}/read", s.read, data)
	s.route(mux, "GET /v1/accounts/{account}/status", s.status, control)
	s.route(mux, "POST /v1/accounts/{account}/control/{op}", s.controlBulk, control)
	s.route(mux, "POST /v1/accounts/{account}/partitions/{partition}/{op}", s.controlOne, control)
	s.route(mux, "GET /v1/accounts/{account}/recovered", s.listRecovered, control)
	s.route(mux, "POST /v1/accounts/{account}/restore", s.restore, control)
	s.route(mux, "GET /v1/accounts/{account}/snapshot", s.snapshot, auth.RoleReplication, control)
	if s.cfg.EnableFaults {
		s.route(mux, "POST /v1/faults", s.addFault, auth.RoleFaults)
		s.route(mux, "GET /v1/faults", s.listFaults, auth.RoleFaults)
		s.route(mux, "DELETE /v1/faults", s.clearFaults, auth.RoleFaults)
	} else {
		mux.Handle("/v1/faults", s.handle(func(w http.ResponseWriter, r *http.Request) error {
			return errNotFound("fault injection is off on stamp %s; start it with --enable-faults (drills and tests only)",
				s.cfg.Name)
		}))
	}
	s.route(mux, "POST /v1/internal/replicate", s.replicate, auth.RoleReplication)
	s.route(mux, "POST /v1/internal/heartbeats", s.heartbeats, auth.RoleReplication)
	mux.HandleFunc("/", s.handle(func(w http.ResponseWriter, r *http.Request) error {
		return errNotFound("no route %s %s; see docs/STAMP_API.md for the routes", r.Method, r.URL.Path)
	}))
	return mux
}

// apiError is an answer other than 2xx; handlers return it and handle
// writes it.
type apiError struct {
	status     int
	body       ErrorBody
	location   string // Location header for not_primary
	retryAfter bool
}

func (e *apiError) Error() string { return e.body.Code + ": " + e.body.Message }

// partitionError is e as one partition's refusal in a bulk answer.
func (e *apiError) partitionError() *PartitionError {
	return &PartitionError{StatusCode: e.status, ErrorBody: e.body}
}

func newErr(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, body: ErrorBody{Code: code, Message: fmt.Sprintf(format, args...)}}
}

func errBad(format string, args ...any) *apiError {
	return newErr(http.StatusBadRequest, CodeBadRequest, format, args...)
}

func errNotFound(format string, args ...any) *apiError {
	return newErr(http.StatusNotFound, CodeNotFound, format, args...)
}

func errConflict(format string, args ...any) *apiError {
	return newErr(http.StatusConflict, CodeConflict, format, args...)
}

func errStale(epoch uint64, format string, args ...any) *apiError {
	e := newErr(http.StatusConflict, CodeStaleEpoch, format, args...)
	e.body.Epoch = epoch
	return e
}

func errUnavailable(format string, args ...any) *apiError {
	return newErr(http.StatusServiceUnavailable, CodeUnavailable, format, args...)
}

// errAnswered means the handler already dealt with the connection (an
// injected unreachable fault hijacked it).
var errAnswered = errors.New("answered")

func (s *Server) handle(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil || errors.Is(err, errAnswered) {
			return
		}
		var ae *apiError
		if !errors.As(err, &ae) {
			if errors.Is(err, errClosed) {
				ae = errUnavailable("stamp %s is shutting down; retry against it once it is back", s.cfg.Name)
			} else {
				s.log.Error("request failed", zap.String("method", r.Method), zap.String("path", r.URL.Path), zap.Error(err))
				ae = newErr(http.StatusInternalServerError, CodeInternal, "stamp %s: %v", s.cfg.Name, err)
			}
		}
		if ae.location != "" {
			w.Header().Set("Location", ae.location)
		}
		if ae.retryAfter {
			w.Header().Set("Retry-After", "1")
		}
		jsonhttp.WriteJSON(w, ae.status, ae.body)
	}
}

// Request body limits.
const (
	limitSmall     = 1 << 20   // account, control, fault bodies
	limitPut       = 8 << 20   // one value of up to MaxValueBytes, JSON-escaped
	limitBatch     = 8 << 20   // batch requests
	limitRead      = 16 << 20  // read requests: 10,000 keys of up to 1 KiB
	limitReplicate = 512 << 20 // shipments; the shipper keeps them far smaller

	// MaxValueBytes bounds a value.
	MaxValueBytes = 1 << 20
	// MaxKeyBytes bounds a key.
	MaxKeyBytes = 1024
	// MaxReadKeys bounds a read request.
	MaxReadKeys = 10000
)

// readBody reads a request body of up to limit bytes: a larger one is
// refused 413, so that the caller splits it.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := jsonhttp.ReadBody(w, r, limit)
	var be *jsonhttp.BodyError
	switch {
	case errors.As(err, &be) && be.TooLarge:
		return nil, newErr(http.StatusRequestEntityTooLarge, CodeTooLarge, "request %v; split it into smaller requests", be)
	case err != nil:
		return nil, errBad("%v", err)
	}
	return b, nil
}

// decodeBody reads a JSON body into v, refusing unknown fields so typos in
// control calls fail loudly instead of being ignored.
func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any, what string) error {
	b, err := readBody(w, r, limit)
	if err != nil {
		return err
	}
	return decodeJSON(b, v, what)
}

// decodeJSON decodes b, a what, strictly into v.
func decodeJSON(b []byte, v any, what string) error {
	if err := jsonhttp.Decode(b, v); err != nil {
		return errBad("%s body: %v; send a JSON %s (see docs/STAMP_API.md)", what, err, what)
	}
	return nil
}

func (s *Server) account(name string) (*account, error) {
	s.mu.RLock()
	a := s.accounts[name]
	s.mu.RUnlock()
	if a == nil {
		return nil, errNotFound("account %q does not exist on stamp %s; create it with POST /v1/accounts", name, s.cfg.Name)
	}
	return a, nil
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) error {
	s.mu.RLock()
	n := len(s.accounts)
	s.mu.RUnlock()
	jsonhttp.WriteJSON(w, http.StatusOK, Health{
		Stamp:    s.cfg.Name,
		OK:       s.brokenErr() == nil,
		Accounts: n,
		Started:  s.started,
		Durable:  !s.memory,
	})
	return nil
}

func validateSpec(spec *AccountSpec) error {
	if err := ValidateAccountName(spec.Account); err != nil {
		return errBad("%v", err)
	}
	if spec.Partitions < 1 || spec.Partitions > MaxPartitions {
		return errBad("partitions %d out of range; use 1..%d", spec.Partitions, MaxPartitions)
	}
	if spec.Role != RolePrimary && spec.Role != RoleSecondary {
		return errBad("role %q is invalid; use %q or %q", spec.Role, RolePrimary, RoleSecondary)
	}
	if spec.Epoch < 1 {
		return errBad("epoch must be >= 1")
	}
	if len(spec.PeerName) > 63 || strings.ContainsAny(spec.PeerName, "/\\ \t\n") {
		return errBad("peer_name %q is not a stamp name: 1-63 characters of letters, digits, '.', '_' or '-'", spec.PeerName)
	}
	if spec.Peer == "" {
		if spec.Role == RolePrimary {
			return errBad("a primary needs a peer: the base URL of the secondary stamp it ships to")
		}
		return nil
	}
	u, err := url.Parse(spec.Peer)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errBad("peer %q is not a base URL like http://host:port", spec.Peer)
	}
	return nil
}

func (s *Server) createAccount(w http.ResponseWriter, r *http.Request) error {
	if err := s.injectFault(w, r, scopeControl, "", "", nil); err != nil {
		return err
	}
	var spec AccountSpec
	if err := decodeBody(w, r, limitSmall, &spec, "AccountSpec"); err != nil {
		return err
	}
	spec.Peer = trimSlash(spec.Peer)
	if err := validateSpec(&spec); err != nil {
		return err
	}
	s.createMu.Lock()
	defer s.createMu.Unlock()
	s.mu.RLock()
	old := s.accounts[spec.Account]
	s.mu.RUnlock()
	if old != nil {
		if old.spec != spec {
			return errConflict("account %q already exists on stamp %s with spec %+v; "+
				"delete is not supported, pick another name or send the same spec", spec.Account, s.cfg.Name, old.spec)
		}
		jsonhttp.WriteJSON(w, http.StatusOK, old.spec)
		return nil
	}
	specJSON, err := json.Marshal(spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	if err := s.db.Update(func(tx *bbolt.Tx) error {
		if err := createAcctBuckets(tx, spec.Account); err != nil {
			return err
		}
		return tx.Bucket(bucketAccounts).Put([]byte(spec.Account), specJSON)
	}); err != nil {
		return fmt.Errorf("create account %q: %w", spec.Account, err)
	}
	a := newAccount(spec)
	s.mu.Lock()
	s.accounts[spec.Account] = a
	s.mu.Unlock()
	s.startAccount(a)
	s.log.Info("account created", zap.String("account", spec.Account), zap.Int("partitions", spec.Partitions),
		zap.String("role", string(spec.Role)))
	jsonhttp.WriteJSON(w, http.StatusCreated, spec)
	return nil
}

func trimSlash(u string) string {
	for len(u) > 0 && u[len(u)-1] == '/' {
		u = u[:len(u)-1]
	}
	return u
}

func (s *Server) listAccounts(w http.ResponseWriter, r *http.Request) error {
	if err := s.injectFault(w, r, scopeControl, "", "", nil); err != nil {
		return err
	}
	s.mu.RLock()
	out := make([]AccountSpec, 0, len(s.accounts))
	for _, a := range s.accounts {
		out = append(out, a.spec)
	}
	s.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Account < out[j].Account })
	jsonhttp.WriteJSON(w, http.StatusOK, out)
	return nil
}
