package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
)

// SignatureHeader carries the HMAC-SHA256 of the raw request body under the
// shared secret, as "sha256=<hex>".
const SignatureHeader = "X-Baton-Signature"

// Auth holds the secrets a request may prove it knows. At least one must be
// set.
type Auth struct {
	// Token is the bearer token (Authorization: Bearer <token>).
	Token []byte
	// HMACSecret keys the X-Baton-Signature header.
	HMACSecret []byte
}

func (a Auth) validate() error {
	if len(a.Token) == 0 && len(a.HMACSecret) == 0 {
		return errors.New("no bearer token and no HMAC secret: the receiver refuses to run unauthenticated")
	}
	return nil
}

// hasCredentials reports whether the request carries something to check,
// before its body is read.
func (a Auth) hasCredentials(r *http.Request) bool {
	return r.Header.Get("Authorization") != "" || r.Header.Get(SignatureHeader) != ""
}

// bearerOK checks the Authorization header in constant time (over hashes,
// so that not even the token's length leaks).
func (a Auth) bearerOK(r *http.Request) bool {
	if len(a.Token) == 0 {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	g, w := sha256.Sum256([]byte(strings.TrimSpace(got))), sha256.Sum256(a.Token)
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// signatureOK checks the body's HMAC (hmac.Equal is constant time).
func (a Auth) signatureOK(r *http.Request, body []byte) bool {
	if len(a.HMACSecret) == 0 {
		return false
	}
	got, ok := strings.CutPrefix(r.Header.Get(SignatureHeader), "sha256=")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(strings.TrimSpace(got))
	if err != nil {
		return false
	}
	return hmac.Equal(sig, Sign(a.HMACSecret, body))
}

// Sign is the HMAC-SHA256 of body under secret; send it as
// "X-Baton-Signature: sha256=" + hex.
func Sign(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return m.Sum(nil)
}

// LoadSecret reads a secret from file if given, else from the environment
// variable env; surrounding whitespace (a trailing newline) is dropped. It
// never comes from a flag value, which `ps` would show. Empty means unset.
func LoadSecret(file, env string) ([]byte, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read secret: %w", err)
		}
		s := strings.TrimSpace(string(b))
		if s == "" {
			return nil, fmt.Errorf("secret file %s is empty", file)
		}
		return []byte(s), nil
	}
	if env != "" {
		if s := strings.TrimSpace(os.Getenv(env)); s != "" {
			return []byte(s), nil
		}
	}
	return nil, nil
}
