package stamp

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/batonhq/baton/internal/jsonhttp"
)

// Client calls one stamp's HTTP API. It is safe for concurrent use.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the stamp at base (e.g. http://127.0.0.1:7101).
// A nil hc uses a pooled client with generous keep-alive settings.
func NewClient(base string, hc *http.Client) *Client {
	if hc == nil {
		hc = DefaultHTTPClient()
	}
	return &Client{base: base, hc: hc}
}

// DefaultHTTPClient is tuned for many concurrent calls to a few hosts.
func DefaultHTTPClient() *http.Client { return HTTPClient(nil) }

// HTTPClient is DefaultHTTPClient speaking TLS with tlsCfg (nil: the
// transport's default, for https URLs signed by a public CA, or plaintext).
func HTTPClient(tlsCfg *tls.Config) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 512
	tr.MaxIdleConnsPerHost = 256
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg
	}
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// Base is the stamp's base URL.
func (c *Client) Base() string { return c.base }

// APIError is a non-2xx answer from a stamp.
type APIError struct {
	Status int
	ErrorBody
	// RetryAfter is the server's Retry-After, if any.
	RetryAfter time.Duration
}

func (e *APIError) Error() string {
	return fmt.Sprintf("stamp answered %d %s: %s", e.Status, e.Code, e.Message)
}

// Retryable reports whether the same call may succeed later unchanged.
func (e *APIError) Retryable() bool {
	return e.Status >= 500 || e.Status == http.StatusTooManyRequests
}

// IsCode reports whether err is an APIError with the given code.
func IsCode(err error, code string) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Code == code
}

// do sends method path with an optional JSON body and decodes a JSON answer
// into out (if non-nil); a non-2xx answer becomes an *APIError.
func (c *Client) do(ctx context.Context, method, path string, hdr http.Header, in, out any) error {
	return jsonhttp.Do(ctx, c.hc, method, c.base, path, hdr, in, out, func(status int, h http.Header, data []byte) error {
		ae := &APIError{Status: status}
		jsonhttp.DecodeErrorBody(status, data, &ae.ErrorBody, &ae.Code, &ae.Message)
		if s := h.Get("Retry-After"); s != "" {
			if n, err := strconv.Atoi(s); err == nil {
				ae.RetryAfter = time.Duration(n) * time.Second
			}
		}
		return ae
	})
}

func epochHeader(epoch uint64) http.Header {
	if epoch == 0 {
		return nil
	}
	return http.Header{HeaderEpoch: []string{strconv.FormatUint(epoch, 10)}}
}

func keyPath(account, key string) string {
	return "/v1/accounts/" + url.PathEscape(account) + "/keys/" + url.PathEscape(key)
}

func accountPath(account string) string { return "/v1/accounts/" + url.PathEscape(account) }

// Health calls GET /v1/health.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var h Health
	err := c.do(ctx, http.MethodGet, "/v1/health", nil, nil, &h)
	return h, err
}

// CreateAccount calls POST /v1/accounts (idempotent for the same spec).
func (c *Client) CreateAccount(ctx context.Context, spec AccountSpec) error {
	return c.do(ctx, http.MethodPost, "/v1/accounts", nil, spec, nil)
}

// Put writes key=value. epoch 0 means "whatever is current".
func (c *Client) Put(ctx context.Context, account, key, value string, epoch uint64) (WriteResult, error) {
	var r WriteResult
	err := c.do(ctx, http.MethodPut, keyPath(account, key), epochHeader(epoch), map[string]string{"value": value}, &r)
	return r, err
}

// Delete removes key.
func (c *Client) Delete(ctx context.Context, account, key string, epoch uint64) (WriteResult, error) {
	var r WriteResult
	err := c.do(ctx, http.MethodDelete, keyPath(account, key), epochHeader(epoch), nil, &r)
	return r, err
}

// Get reads key.
func (c *Client) Get(ctx context.Context, account, key string) (Value, error) {
	var v Value
	err := c.do(ctx, http.MethodGet, keyPath(account, key), nil, nil, &v)
	return v, err
}

// Batch writes many keys in one call.
func (c *Client) Batch(ctx context.Context, account string, ops []BatchOp, epoch uint64) (BatchResult, error) {
	var r BatchResult
	err := c.do(ctx, http.MethodPost, accountPath(account)+"/batch", epochHeader(epoch), BatchRequest{Ops: ops}, &r)
	return r, err
}

// Read reads many keys in one call.
func (c *Client) Read(ctx context.Context, account string, keys []string) (ReadResult, error) {
	var r ReadResult
	err := c.do(ctx, http.MethodPost, accountPath(account)+"/read", nil, ReadRequest{Keys: keys}, &r)
	return r, err
}

// Status calls GET /v1/accounts/{a}/status for the given partitions (nil = all).
func (c *Client) Status(ctx context.Context, account string, partitions []int) (AccountStatus, error) {
	p := accountPath(account) + "/status"
	if len(partitions) > 0 {
		b := make([]byte, 0, 8*len(partitions))
		for i, n := range partitions {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(n), 10)
		}
		p += "?partitions=" + string(b)
	}
	var s AccountStatus
	err := c.do(ctx, http.MethodGet, p, nil, nil, &s)
	return s, err
}

// Control calls POST /v1/accounts/{a}/control/{op}: fence, flush-send,
// flush-replay, promote or unfence for a group of partitions. When some
// partitions failed on their own it returns the whole answer and a
// *PartitionErrors naming them, so a caller that needs every partition
// just checks the error, and one that goes on with the rest reads the
// answer.
func (c *Client) Control(ctx context.Context, account, op string, req ControlRequest) (ControlResponse, error) {
	var r ControlResponse
	if err := c.do(ctx, http.MethodPost, accountPath(account)+"/control/"+url.PathEscape(op), nil, req, &r); err != nil {
		return r, err
	}
	var failed []ControlResult
	for _, res := range r.Results {
		if res.Error != nil {
			failed = append(failed, res)
		}
	}
	if len(failed) > 0 {
		return r, &PartitionErrors{Op: op, Of: len(r.Results), Failed: failed}
	}
	return r, nil
}

// Err is the partition's own refusal in a bulk answer, or nil.
func (r ControlResult) Err() error {
	if r.Error == nil {
		return nil
	}
	return &APIError{Status: r.Error.StatusCode, ErrorBody: r.Error.ErrorBody}
}

// PartitionErrors is a bulk control answer in which some partitions were
// refused on their own while the others were done. It unwraps to the
// refusal that matters most (the first that retrying cannot change, else
// the first), so errors.As finds an *APIError and its Retryable.
type PartitionErrors struct {
	Op     string
	Of     int             // partitions in the call
	Failed []ControlResult // the refused partitions' results (Error set)
}

func (e *PartitionErrors) Error() string {
	first := e.Failed[0]
	return fmt.Sprintf("%s refused for %d of %d partitions (partition %d: %v)",
		e.Op, len(e.Failed), e.Of, first.Partition, first.Err())
}

// Unwrap returns the first final refusal, or the first refusal.
func (e *PartitionErrors) Unwrap() error {
	for _, f := range e.Failed {
		if err := f.Err().(*APIError); !err.Retryable() {
			return err
		}
	}
	return e.Failed[0].Err()
}

// Fence stops writes on the partitions and returns each one's final LSN.
func (c *Client) Fence(ctx context.Context, account string, req ControlRequest) (ControlResponse, error) {
	return c.Control(ctx, account, CtlFence, req)
}

// FlushSend ships everything pending on the partitions as one group.
func (c *Client) FlushSend(ctx context.Context, account string, req ControlRequest) (ControlResponse, error) {
	return c.Control(ctx, account, CtlFlushSend, req)
}

// FlushReplay replays received entries up to the targets; see
// ControlRequest.WaitMillis for long polling.
func (c *Client) FlushReplay(ctx context.Context, account string, req ControlRequest) (ControlResponse, error) {
	return c.Control(ctx, account, CtlFlushReplay, req)
}

// Promote makes the partitions primary under req.Epoch.
func (c *Client) Promote(ctx context.Context, account string, req ControlRequest) (ControlResponse, error) {
	return c.Control(ctx, account, CtlPromote, req)
}

// Unfence lets fenced partitions take writes again (rollback).
func (c *Client) Unfence(ctx context.Context, account string, req ControlRequest) (ControlResponse, error) {
	return c.Control(ctx, account, CtlUnfence, req)
}

// Demote turns an old primary's partitions into secondaries at req.Epoch,
// setting aside what they hold past req.Targets (see CtlDemote).
func (c *Client) Demote(ctx context.Context, account string, req ControlRequest) (ControlResponse, error) {
	return c.Control(ctx, account, CtlDemote, req)
}

// Protect makes a promoted primary ship to its peer from req.Targets.
func (c *Client) Protect(ctx context.Context, account string, req ControlRequest) (ControlResponse, error) {
	return c.Control(ctx, account, CtlProtect, req)
}

// Seed replaces a secondary's partitions with a snapshot of its peer's.
func (c *Client) Seed(ctx context.Context, account string, req ControlRequest) (ControlResponse, error) {
	return c.Control(ctx, account, CtlSeed, req)
}

// Recovered lists the account's recovered entries (GET
// /v1/accounts/{a}/recovered), calling fn for each, in partition and LSN
// order.
func (c *Client) Recovered(ctx context.Context, account string, fn func(RecoveredEntry) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+accountPath(account)+"/recovered", nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		ae := &APIError{Status: resp.StatusCode}
		jsonhttp.DecodeErrorBody(resp.StatusCode, data, &ae.ErrorBody, &ae.Code, &ae.Message)
		return ae
	}
	dec := json.NewDecoder(resp.Body)
	for {
		var e RecoveredEntry
		switch err := dec.Decode(&e); {
		case errors.Is(err, io.EOF):
			return nil
		case err != nil:
			return fmt.Errorf("read recovered entries: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
}

// Restore sets keys of secondary partitions to the new primary's values
// (POST /v1/accounts/{a}/restore).
func (c *Client) Restore(ctx context.Context, account string, values []RestoreValue) error {
	return c.do(ctx, http.MethodPost, accountPath(account)+"/restore", nil, RestoreRequest{Values: values}, nil)
}

// AddFault calls POST /v1/faults.
func (c *Client) AddFault(ctx context.Context, f Fault) error {
	return c.do(ctx, http.MethodPost, "/v1/faults", nil, f, nil)
}

// Faults calls GET /v1/faults: the faults in force, with the calls each
// one struck.
func (c *Client) Faults(ctx context.Context) ([]Fault, error) {
	var fs []Fault
	err := c.do(ctx, http.MethodGet, "/v1/faults", nil, nil, &fs)
	return fs, err
}

// ClearFaults calls DELETE /v1/faults.
func (c *Client) ClearFaults(ctx context.Context) error {
	return c.do(ctx, http.MethodDelete, "/v1/faults", nil, nil, nil)
}
