package location

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bucketStamps      = []byte("stamps")
	bucketAccounts    = []byte("accounts")
	bucketMaintenance = []byte("maintenance")
)

// record is what the store keeps per account. Create and LastMove are kept
// so that repeating either request can be recognised and answered the same
// (idempotency) instead of being mistaken for a conflicting one.
type record struct {
	Account    string        `json:"account"`
	Partitions int           `json:"partitions"`
	Primary    string        `json:"primary"`
	Secondary  string        `json:"secondary"`
	Epoch      uint64        `json:"epoch"`
	UpdatedAt  time.Time     `json:"updated_at"`
	Create     CreateRequest `json:"create"`
	LastMove   *MoveRequest  `json:"last_move,omitempty"`
	// Unprotected: moved, and not reprotected since (no replica takes its
	// writes).
	Unprotected bool `json:"unprotected,omitempty"`
	// Labels are the operator's (e.g. tier: 0..3, an evacuation's priority).
	Labels map[string]string `json:"labels,omitempty"`
	// Endpoints are a Redis account's servers per site, shard by shard.
	Endpoints map[string][]string `json:"endpoints,omitempty"`
}

// errStore is a store answer the HTTP layer maps to a status code.
type errStore struct {
	status int
	code   string
	msg    string
}

func (e *errStore) Error() string { return e.msg }

func storeErr(status int, code, format string, args ...any) error {
	return &errStore{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

// store is the bbolt-backed state of the location service. bbolt serialises
// write transactions, which is what makes create and move atomic
// compare-and-sets without any extra locking.
type store struct {
	db      *bolt.DB
	tempDir string // memory mode: removed on close
}

func openStore(dataDir string) (*store, error) {
	st := &store{}
	opts := &bolt.Options{Timeout: 5 * time.Second}
	var path string
	if dataDir == "" {
		// Memory mode is bbolt on a throwaway file without fsync: the same code
		// path as the durable mode, just not durable.
		dir, err := os.MkdirTemp("", "baton-location-*")
		if err != nil {
			return nil, fmt.Errorf("create temp dir for in-memory location store: %w", err)
		}
		st.tempDir = dir
		path = filepath.Join(dir, "location.db")
		opts.NoSync = true
		opts.NoFreelistSync = true
	} else {
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("create location data dir %s: %w", dataDir, err)
		}
		path = filepath.Join(dataDir, "location.db")
	}
	db, err := bolt.Open(path, 0o644, opts)
	if err != nil {
		st.removeTemp()
		return nil, fmt.Errorf("open location store %s: %w", path, err)
	}
	st.db = db
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketStamps, bucketAccounts, bucketMaintenance} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		st.removeTemp()
		return nil, fmt.Errorf("init location store %s: %w", path, err)
	}
	return st, nil
}

func (st *store) removeTemp() {
	if st.tempDir != "" {
		_ = os.RemoveAll(st.tempDir)
	}
}

func (st *store) close() error {
	err := st.db.Close()
	st.removeTemp()
	if err != nil {
		return fmt.Errorf("close location store: %w", err)
	}
	return nil
}

func getJSON(b *bolt.Bucket, key string, out any) (bool, error) {
	v := b.Get([]byte(key))
	if v == nil {
		return false, nil
	}
	if err := json.Unmarshal(v, out); err != nil {
		return false, fmt.Errorf("decode stored %q: %w", key, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %q: %w", key, err)
	}
	return b.Put([]byte(key), data)
}

func (st *store) putStamp(s Stamp) error {
	return st.db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketStamps), s.Name, s)
	})
}

// eachJSON decodes every value of b, in key order, as a T (named what in
// errors) and hands it to fn.
func eachJSON[T any](b *bolt.Bucket, what string, fn func(T) error) error {
	return b.ForEach(func(k, v []byte) error {
		var t T
		if err := json.Unmarshal(v, &t); err != nil {
			return fmt.Errorf("decode %s %q: %w", what, k, err)
		}
		return fn(t)
	})
}

func (st *store) stamps() ([]Stamp, error) {
	out := []Stamp{}
	err := st.db.View(func(tx *bolt.Tx) error {
		return eachJSON(tx.Bucket(bucketStamps), "stamp", func(s Stamp) error {
			out = append(out, s)
			return nil
		})
	})
	return out, err // bbolt iterates in key order, so the list is sorted
}

// view returns the account with URLs filled in from the registry.
func view(tx *bolt.Tx, r record) (Account, error) {
	a := Account{
		Account: r.Account, Partitions: r.Partitions,
		Primary: r.Primary, Secondary: r.Secondary,
		Epoch: r.Epoch, UpdatedAt: r.UpdatedAt, Unprotected: r.Unprotected, Labels: r.Labels,
		Kind: r.Create.Kind, PrimaryEndpoints: r.Endpoints[r.Primary], SecondaryEndpoints: r.Endpoints[r.Secondary],
	}
	if m := r.LastMove; m != nil && m.To == r.Primary && m.Epoch == r.Epoch {
		a.MovedBy = m.Operation
	}
	sb := tx.Bucket(bucketStamps)
	var s Stamp
	if ok, err := getJSON(sb, r.Primary, &s); err != nil {
		return a, err
	} else if ok {
		a.PrimaryURL = s.URL
	}
	s = Stamp{}
	if ok, err := getJSON(sb, r.Secondary, &s); err != nil {
		return a, err
	} else if ok {
		a.SecondaryURL = s.URL
	}
	return a, nil
}

// create registers an account. created is false when an identical request
// had already been applied.
func (st *store) create(req CreateRequest, now time.Time) (a Account, created bool, err error) {
	err = st.db.Update(func(tx *bolt.Tx) error {
		ab := tx.Bucket(bucketAccounts)
		var r record
		ok, err := getJSON(ab, req.Account, &r)
		if err != nil {
			return err
		}
		if ok {
			if !r.Create.same(req) {
				return storeErr(409, "conflict",
					"account %s already exists with partitions=%d primary=%s secondary=%s epoch=%d; "+
						"this request asks partitions=%d primary=%s secondary=%s epoch=%d",
					req.Account, r.Create.Partitions, r.Create.Primary, r.Create.Secondary, r.Create.Epoch,
					req.Partitions, req.Primary, req.Secondary, req.Epoch)
			}
			a, err = view(tx, r)
			return err
		}
		sb := tx.Bucket(bucketStamps)
		for _, name := range []string{req.Primary, req.Secondary} {
			var s Stamp
			if ok, err := getJSON(sb, name, &s); err != nil {
				return err
			} else if !ok {
				return storeErr(400, "bad_request", "stamp %s is not registered: PUT /v1/stamps/%s first", name, name)
			}
			if scheme, _, _ := strings.Cut(s.URL, "://"); siteScheme(scheme) != req.Kind {
				want := "http(s)://"
				if req.Kind != "" {
					want = SiteScheme(req.Kind) + "://"
				}
				return storeErr(400, "bad_request", "site %s is registered as %s: an account of kind %q needs "+
					"sites registered with %s URLs", name, s.URL, req.Kind, want)
			}
		}
		r = record{
			Account: req.Account, Partitions: req.Partitions,
			Primary: req.Primary, Secondary: req.Secondary,
			Epoch: req.Epoch, UpdatedAt: now, Create: req,
		}
		if req.Kind != "" {
			r.Endpoints = map[string][]string{req.Primary: req.PrimaryEndpoints, req.Secondary: req.SecondaryEndpoints}
		}
		if err := putJSON(ab, req.Account, r); err != nil {
			return err
		}
		created = true
		a, err = view(tx, r)
		return err
	})
	return a, created, err
}

func (st *store) lookup(account string) (Account, error) {
	var a Account
	err := st.db.View(func(tx *bolt.Tx) error {
		var r record
		ok, err := getJSON(tx.Bucket(bucketAccounts), account, &r)
		if err != nil {
			return err
		}
		if !ok {
			return storeErr(404, "not_found", "account %s is not registered", account)
		}
		a, err = view(tx, r)
		return err
	})
	return a, err
}

func (st *store) accounts() ([]Account, error) {
	out := []Account{}
	err := st.db.View(func(tx *bolt.Tx) error {
		return eachJSON(tx.Bucket(bucketAccounts), "account", func(r record) error {
			a, err := view(tx, r)
			if err != nil {
				return err
			}
			out = append(out, a)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Account < out[j].Account })
	return out, err
}

// updateAccount runs change on the account's record in one transaction
// (404 if the account is not registered), stores the record if change
// says so, and returns the account as it then stands.
func (st *store) updateAccount(account string, change func(tx *bolt.Tx, r *record) (write bool, err error)) (Account, error) {
	var a Account
	err := st.db.Update(func(tx *bolt.Tx) error {
		ab := tx.Bucket(bucketAccounts)
		var r record
		ok, err := getJSON(ab, account, &r)
		switch {
		case err != nil:
			return err
		case !ok:
			return storeErr(404, "not_found", "account %s is not registered", account)
		}
		write, err := change(tx, &r)
		if err != nil {
			return err
		}
		if write {
			if err := putJSON(ab, account, r); err != nil {
				return err
			}
		}
		a, err = view(tx, r)
		return err
	})
	return a, err
}

// move applies the compare-and-set documented on MoveRequest.
func (st *store) move(account string, req MoveRequest, now time.Time) (Account, error) {
	return st.updateAccount(account, func(tx *bolt.Tx, r *record) (bool, error) {
		// A repeat of the move that produced the current state answers the
		// same, so a failover step that retries after a lost answer succeeds.
		if r.LastMove != nil && *r.LastMove == req && r.Primary == req.To && r.Epoch == req.Epoch {
			return false, nil
		}
		if r.Primary != req.From || r.Epoch != req.ExpectedEpoch {
			return false, storeErr(409, "conflict",
				"account %s is on %s at epoch %d, not %s at epoch %d: re-resolve and retry",
				account, r.Primary, r.Epoch, req.From, req.ExpectedEpoch)
		}
		if tx.Bucket(bucketStamps).Get([]byte(req.To)) == nil {
			return false, storeErr(400, "bad_request", "stamp %s is not registered: PUT /v1/stamps/%s first", req.To, req.To)
		}
		m := req
		r.Primary, r.Secondary, r.Epoch = req.To, req.From, req.Epoch
		r.UpdatedAt = now
		r.LastMove = &m
		r.Unprotected = true // until a reprotect makes the old primary its replica
		return true, nil
	})
}

// protect records that the account's secondary replicates its primary
// again, at epoch: a compare-and-set on the epoch, idempotent.
func (st *store) protect(account string, req ProtectRequest, now time.Time) (Account, error) {
	return st.updateAccount(account, func(_ *bolt.Tx, r *record) (bool, error) {
		if r.Epoch != req.Epoch {
			return false, storeErr(409, "conflict", "account %s is at epoch %d, not %d: re-resolve and retry",
				account, r.Epoch, req.Epoch)
		}
		if !r.Unprotected {
			return false, nil
		}
		r.Unprotected, r.UpdatedAt = false, now
		return true, nil
	})
}

func isStoreErr(err error) (*errStore, bool) {
	var se *errStore
	ok := errors.As(err, &se)
	return se, ok
}

// siteScheme is the kind of account a site of URL scheme serves.
func siteScheme(scheme string) string {
	if scheme == "http" || scheme == "https" {
		return ""
	}
	return scheme
}
