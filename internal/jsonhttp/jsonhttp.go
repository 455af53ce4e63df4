// Package jsonhttp is the one JSON-over-HTTP call Baton's Go clients (the
// stamp's and the location service's) share: encode, send, read, and either
// decode the answer or hand a non-2xx answer to the client's own error type.
package jsonhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Do sends method base+path with in (if non-nil) as a JSON body and the
// extra headers hdr, and decodes a 2xx JSON answer into out (if non-nil).
// A non-2xx answer is turned into an error by onError.
func Do(ctx context.Context, hc *http.Client, method, base, path string, hdr http.Header, in, out any,
	onError func(status int, h http.Header, body []byte) error) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode %s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s%s: %w", method, base, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s %s%s: read answer: %w", method, base, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return onError(resp.StatusCode, resp.Header, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s%s: decode answer: %w", method, base, path, err)
	}
	return nil
}
