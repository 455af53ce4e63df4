package location

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/batonhq/baton/stamp"
)

// What a fleet of accounts needs of the location service: the accounts of
// a stamp page by page, labels, and the maintenance switches.

// maxPage bounds a page of accounts.
const maxPage = 1000

// stampAccounts returns up to limit accounts whose primary is stamp, with
// names after after, and the next page's after ("" on the last).
func (st *store) stampAccounts(stamp, after string, limit int) (AccountPage, error) {
	page := AccountPage{Accounts: []Account{}}
	err := st.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAccounts).Cursor()
		k, v := c.First()
		if after != "" {
			k, v = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for ; k != nil; k, v = c.Next() {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode account %q: %w", k, err)
			}
			if r.Primary != stamp {
				continue
			}
			if len(page.Accounts) == limit {
				page.Next = page.Accounts[limit-1].Account
				return nil
			}
			a, err := view(tx, r)
			if err != nil {
				return err
			}
			page.Accounts = append(page.Accounts, a)
		}
		return nil
	})
	return page, err
}

// setLabels replaces an account's labels.
func (st *store) setLabels(account string, labels map[string]string, now time.Time) (Account, error) {
	return st.updateAccount(account, func(_ *bolt.Tx, r *record) (bool, error) {
		r.Labels, r.UpdatedAt = labels, now
		return true, nil
	})
}

// maintenance reads every switch.
func (st *store) maintenance() (Maintenance, error) {
	m := Maintenance{Stamps: map[string]Switch{}}
	err := st.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMaintenance).ForEach(func(k, v []byte) error {
			var s Switch
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("decode switch %q: %w", k, err)
			}
			if len(k) == 0 || bytes.Equal(k, []byte(globalSwitch)) {
				m.Global = s
			} else {
				m.Stamps[string(k)] = s
			}
			return nil
		})
	})
	return m, err
}

// globalSwitch keys the global switch (stamp names cannot contain it).
const globalSwitch = "*"

// setSwitch records a switch.
func (st *store) setSwitch(req SwitchRequest, now time.Time) (Maintenance, error) {
	key := req.Stamp
	if key == "" {
		key = globalSwitch
	}
	if err := st.db.Update(func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketMaintenance), key, Switch{On: req.On, By: req.By, Reason: req.Reason, At: now})
	}); err != nil {
		return Maintenance{}, err
	}
	return st.maintenance()
}

func (s *Server) stampAccounts(w http.ResponseWriter, r *http.Request) {
	limit := maxPage
	if q := r.URL.Query().Get("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxPage {
			badRequest(w, "limit %q: use 1..%d", q, maxPage)
			return
		}
		limit = n
	}
	page, err := s.st.stampAccounts(r.PathValue("name"), r.URL.Query().Get("after"), limit)
	s.answer(w, r, page, err)
}

func (s *Server) putLabels(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("account")
	if err := stamp.ValidateAccountName(name); err != nil {
		badRequest(w, "%v", err)
		return
	}
	var req LabelsRequest
	if !decode(w, r, &req) {
		return
	}
	a, err := s.st.setLabels(name, req.Labels, s.now())
	s.answer(w, r, a, err)
}

func (s *Server) getMaintenance(w http.ResponseWriter, r *http.Request) {
	m, err := s.st.maintenance()
	s.answer(w, r, m, err)
}

func (s *Server) putMaintenance(w http.ResponseWriter, r *http.Request) {
	var req SwitchRequest
	if !decode(w, r, &req) {
		return
	}
	if req.On && (req.By == "" || req.Reason == "") {
		badRequest(w, "say who sets the switch and why: by and reason are required to turn it on")
		return
	}
	m, err := s.st.setSwitch(req, s.now())
	if err == nil {
		s.log.Info("maintenance switch", zap.String("stamp", req.Stamp), zap.Bool("on", req.On),
			zap.String("by", req.By), zap.String("reason", req.Reason))
	}
	s.answer(w, r, m, err)
}

// StampAccounts calls GET /v1/stamps/{name}/accounts: one page of the
// accounts whose primary is the stamp, after the account named after ("" =
// from the first), at most limit (0 = the service's page size).
func (c *Client) StampAccounts(ctx context.Context, stampName, after string, limit int) (AccountPage, error) {
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/stamps/" + url.PathEscape(stampName) + "/accounts"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var page AccountPage
	err := c.do(ctx, http.MethodGet, path, nil, &page)
	return page, err
}

// SetLabels calls PUT /v1/accounts/{account}/labels.
func (c *Client) SetLabels(ctx context.Context, account string, labels map[string]string) (Account, error) {
	var a Account
	err := c.do(ctx, http.MethodPut, "/v1/accounts/"+url.PathEscape(account)+"/labels", LabelsRequest{Labels: labels}, &a)
	return a, err
}

// Maintenance calls GET /v1/maintenance.
func (c *Client) Maintenance(ctx context.Context) (Maintenance, error) {
	var m Maintenance
	err := c.do(ctx, http.MethodGet, "/v1/maintenance", nil, &m)
	return m, err
}

// SetSwitch calls PUT /v1/maintenance.
func (c *Client) SetSwitch(ctx context.Context, req SwitchRequest) (Maintenance, error) {
	var m Maintenance
	err := c.do(ctx, http.MethodPut, "/v1/maintenance", req, &m)
	return m, err
}
