package location

import (
	"context"
	"net/http"
)

// Accounts calls GET /v1/accounts: every registered account, sorted by name.
// (Kept out of client.go, which is the frozen contract file.)
func (c *Client) Accounts(ctx context.Context) ([]Account, error) {
	var out []Account
	err := c.do(ctx, http.MethodGet, "/v1/accounts", nil, &out)
	return out, err
}
