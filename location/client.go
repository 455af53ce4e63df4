package location

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/batonhq/baton/internal/auth"
	"github.com/batonhq/baton/internal/jsonhttp"
	"github.com/batonhq/baton/stamp"
)

// Client calls the location service. It is safe for concurrent use. Its
// shape (a base URL, an HTTP client, calls through jsonhttp) is the stamp
// client's; the two differ in their default HTTP client and their calls.
type Client struct {
	base string
	hc   *http.Client
}

// NewClient returns a client for the location service at base.
func NewClient(base string, hc *http.Client) *Client {
	if hc == nil {
		return NewTLSClient(base, nil)
	}
	return &Client{base: base, hc: hc}
}

// NewTLSClient is a client calling over TLS with tlsCfg (nil: plaintext);
// its HTTP client is tuned for the stamps as well (HTTPClient).
func NewTLSClient(base string, tlsCfg *tls.Config) *Client {
	hc := stamp.HTTPClient(tlsCfg)
	hc.Timeout = 30 * time.Second
	return &Client{base: base, hc: hc}
}

// DefaultURL is the location service's address unless a tool is told
// another (--location, env BATON_LOCATION).
const DefaultURL = "https://127.0.0.1:7100"

// Dialer is a tool's way to the location service: its --location and how
// it proves who it is (auth.ClientSecurity). load and stampd's admin
// commands declare it with DialFlags; its client's HTTP client serves for the
// stamps too.
type Dialer struct {
	URL      string
	Security auth.ClientSecurity
}

// DialFlags declares --location and the client certificate flags (certName by
// default, holding roles) on fs.
func (d *Dialer) DialFlags(fs *flag.FlagSet, certName, roles string) {
	fs.StringVar(&d.URL, "location", envOr("BATON_LOCATION", DefaultURL), "location service base `URL` (env BATON_LOCATION)")
	d.Security.Flags(fs, certName, roles)
}

// Dial is the client: over TLS with the certificate, or plaintext with
// --insecure, which it tells warn first (auth.ClientSecurity.Config).
func (d *Dialer) Dial(warn func(string)) (*Client, error) {
	cfg, err := d.Security.Config(d.URL, warn)
	if err != nil {
		return nil, err
	}
	return NewTLSClient(d.URL, cfg), nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// HTTPClient is the client's HTTP client: the one a tool built for the
// location service (its TLS and certificate) serves for the stamps too.
func (c *Client) HTTPClient() *http.Client { return c.hc }

// Base is the service's base URL.
func (c *Client) Base() string { return c.base }

// APIError is a non-2xx answer.
type APIError struct {
	Status int
	ErrorBody
}

func (e *APIError) Error() string {
	return fmt.Sprintf("location service answered %d %s: %s", e.Status, e.Code, e.Message)
}

// IsNotFound reports whether err is a 404 from the service.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// IsConflict reports whether err is a 409 from the service.
func IsConflict(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusConflict
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return jsonhttp.Do(ctx, c.hc, method, c.base, path, nil, in, out, func(status int, _ http.Header, data []byte) error {
		ae := &APIError{Status: status}
		jsonhttp.DecodeErrorBody(status, data, &ae.ErrorBody, &ae.Code, &ae.Message)
		return ae
	})
}

// RegisterStamp calls PUT /v1/stamps/{name}.
func (c *Client) RegisterStamp(ctx context.Context, s Stamp) error {
	return c.do(ctx, http.MethodPut, "/v1/stamps/"+url.PathEscape(s.Name), s, nil)
}

// Stamps calls GET /v1/stamps.
func (c *Client) Stamps(ctx context.Context) ([]Stamp, error) {
	var out []Stamp
	err := c.do(ctx, http.MethodGet, "/v1/stamps", nil, &out)
	return out, err
}

// CreateAccount calls POST /v1/accounts.
func (c *Client) CreateAccount(ctx context.Context, r CreateRequest) (Account, error) {
	var a Account
	err := c.do(ctx, http.MethodPost, "/v1/accounts", r, &a)
	return a, err
}

// Lookup calls GET /v1/accounts/{account}.
func (c *Client) Lookup(ctx context.Context, account string) (Account, error) {
	var a Account
	err := c.do(ctx, http.MethodGet, "/v1/accounts/"+url.PathEscape(account), nil, &a)
	return a, err
}

// Protect records that the account is protected again at epoch.
func (c *Client) Protect(ctx context.Context, account string, epoch uint64) (Account, error) {
	var a Account
	err := c.do(ctx, http.MethodPost, "/v1/accounts/"+url.PathEscape(account)+"/protect", ProtectRequest{Epoch: epoch}, &a)
	return a, err
}

// Move calls POST /v1/accounts/{account}/move (compare-and-set on the epoch).
func (c *Client) Move(ctx context.Context, account string, r MoveRequest) (Account, error) {
	var a Account
	err := c.do(ctx, http.MethodPost, "/v1/accounts/"+url.PathEscape(account)+"/move", r, &a)
	return a, err
}
