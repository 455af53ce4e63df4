package jsonhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// WriteJSON answers status with v as one line of JSON. v is encoded before
// anything is written, so a value that cannot be encoded is answered 500
// {"code": "internal", ...} instead of a 2xx with half a body.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	write(w, status, v, json.Marshal)
}

// WriteIndentedJSON is WriteJSON indented by two spaces, for answers people
// read (the webhook's, often read with curl).
func WriteIndentedJSON(w http.ResponseWriter, status int, v any) {
	write(w, status, v, func(v any) ([]byte, error) { return json.MarshalIndent(v, "", "  ") })
}

func write(w http.ResponseWriter, status int, v any, marshal func(any) ([]byte, error)) {
	b, err := marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]string{"code": "internal", "message": "encode answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n')) // the client has gone if this fails; nothing left to tell it
}

// BodyError is a request body a server cannot use. Its message says what
// was wrong; TooLarge tells a body over the limit (413) from a malformed one
// (400).
type BodyError struct {
	Msg      string
	TooLarge bool
}

func (e *BodyError) Error() string { return e.Msg }

func bodyErr(format string, args ...any) *BodyError {
	return &BodyError{Msg: fmt.Sprintf(format, args...)}
}

// ReadBody reads r's body, up to limit bytes. A larger body is a *BodyError
// with TooLarge set (and the connection is closed after the answer, so the
// rest of the body is never read); any other read failure is a *BodyError
// too.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		return nil, &BodyError{Msg: fmt.Sprintf("body larger than %d bytes", limit), TooLarge: true}
	case err != nil:
		return nil, bodyErr("read body: %v", err)
	}
	return b, nil
}

// Decode decodes exactly one JSON value from b into v, refusing the fields
// v does not have, so that a misspelled field fails loudly instead of
// passing as a zero value. Its errors are *BodyError: an empty body,
// malformed JSON, or data after the value.
func Decode(b []byte, v any) error { return decode(b, v, true) }

// DecodeAllowingUnknown is Decode for bodies whose senders add fields in
// newer versions (Alertmanager's): fields v does not have are ignored.
func DecodeAllowingUnknown(b []byte, v any) error { return decode(b, v, false) }

func decode(b []byte, v any, strict bool) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return bodyErr("empty body: want a JSON object")
		}
		return bodyErr("malformed JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return bodyErr("malformed JSON: trailing data after the JSON object")
	}
	return nil
}

// ReadJSON reads r's body, up to limit bytes, and decodes it into v as
// Decode does. Its errors are *BodyError.
func ReadJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	b, err := ReadBody(w, r, limit)
	if err != nil {
		return err
	}
	return Decode(b, v)
}
