// Package jsonhttp is JSON over HTTP for Baton's services, both sides of
// it: the one call the Go clients share (this file: encode, send, read, and
// either decode the answer or hand a non-2xx answer to the client's own
// error type), and the server helpers (server.go: answer with JSON, read a
// bounded body, decode it strictly). The stamp, the location service and the
// alert webhook all use them, so they answer and refuse alike.
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

// DecodeErrorBody reads a non-2xx answer into body, the service's JSON error
// object, whose code and message fields code and message point into. An
// answer that is not such an object (a proxy's page, an empty body) is kept
// readable instead: the status text becomes its code and the trimmed answer
// its message.
func DecodeErrorBody(status int, data []byte, body any, code, message *string) {
	if json.Unmarshal(data, body) != nil || *code == "" {
		*code = http.StatusText(status)
		*message = string(bytes.TrimSpace(data))
	}
}
