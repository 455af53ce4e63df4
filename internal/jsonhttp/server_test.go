package jsonhttp

import (
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	type body struct {
		A int `json:"a"`
	}
	tests := []struct {
		name, in string
		strict   bool
		wantErr  string // "" = decodes
	}{
		{"object", `{"a": 1}`, true, ""},
		{"trailing space", "{\"a\": 1}\n ", true, ""},
		{"empty", "", true, "empty body: want a JSON object"},
		{"blank", "  \n", true, "empty body"},
		{"truncated", `{"a":`, true, "malformed JSON: unexpected EOF"},
		{"wrong type", `{"a": "x"}`, true, "malformed JSON"},
		{"unknown field", `{"a": 1, "b": 2}`, true, `unknown field "b"`},
		{"unknown field allowed", `{"a": 1, "b": 2}`, false, ""},
		{"trailing object", `{"a": 1} {}`, true, "malformed JSON: trailing data after the JSON object"},
		{"trailing brace", `{"a": 1}}`, true, "trailing data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b body
			decode := Decode
			if !tt.strict {
				decode = DecodeAllowingUnknown
			}
			err := decode([]byte(tt.in), &b)
			if tt.wantErr == "" {
				if err != nil || b.A != 1 {
					t.Fatalf("decoded %+v, %v; want a=1", b, err)
				}
				return
			}
			var be *BodyError
			if !errors.As(err, &be) || be.TooLarge || !strings.Contains(be.Msg, tt.wantErr) {
				t.Fatalf("error %v, want a *BodyError saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestReadBodyLimit(t *testing.T) {
	for _, tt := range []struct {
		body     string
		tooLarge bool
	}{{"1234", false}, {"12345", true}} {
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
		b, err := ReadBody(httptest.NewRecorder(), r, 4)
		var be *BodyError
		switch {
		case tt.tooLarge && (!errors.As(err, &be) || !be.TooLarge || be.Msg != "body larger than 4 bytes"):
			t.Errorf("%q: error %v, want body larger than 4 bytes", tt.body, err)
		case !tt.tooLarge && (err != nil || string(b) != tt.body):
			t.Errorf("%q: read %q, %v", tt.body, b, err)
		}
	}
}

func TestWriteJSON(t *testing.T) {
	w := httptest.NewRecorder()
	WriteJSON(w, http.StatusCreated, map[string]int{"a": 1})
	if w.Code != http.StatusCreated || w.Body.String() != "{\"a\":1}\n" || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %q %v", w.Code, w.Body.String(), w.Header())
	}
	w = httptest.NewRecorder()
	WriteIndentedJSON(w, http.StatusOK, map[string]int{"a": 1})
	if w.Body.String() != "{\n  \"a\": 1\n}\n" {
		t.Fatalf("indented answer %q", w.Body.String())
	}
	w = httptest.NewRecorder()
	WriteJSON(w, http.StatusOK, math.Inf(1))
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), `"code":"internal"`) {
		t.Fatalf("unencodable answer %d %q", w.Code, w.Body.String())
	}
}

func TestDecodeErrorBody(t *testing.T) {
	type errBody struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	var e errBody
	DecodeErrorBody(http.StatusConflict, []byte(`{"code":"conflict","message":"no"}`), &e, &e.Code, &e.Message)
	if e != (errBody{"conflict", "no"}) {
		t.Fatalf("JSON error body read as %+v", e)
	}
	e = errBody{}
	DecodeErrorBody(http.StatusBadGateway, []byte(" <html>bad gateway</html>\n"), &e, &e.Code, &e.Message)
	if e != (errBody{"Bad Gateway", "<html>bad gateway</html>"}) {
		t.Fatalf("non-JSON error body read as %+v", e)
	}
}
