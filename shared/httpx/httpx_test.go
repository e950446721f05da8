package httpx_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/httpx"
)

type order struct {
	Symbol   string `json:"symbol"`
	Quantity int    `json:"quantity"`
}

func (o order) Validate() error {
	if o.Quantity%100 != 0 {
		return httpx.Invalid("invalid order", httpx.FieldError{Field: "quantity", Reason: "must be a multiple of 100"})
	}
	return nil
}

func TestDecode(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body, contentType string
		limit             int64
		code              httpx.Code
		field             string
	}{
		"ok":              {`{"symbol":"7203.T","quantity":100}`, "application/json", 0, "", ""},
		"ok problem+json": {`{"symbol":"7203.T","quantity":100}`, "application/merge-patch+json", 0, "", ""},
		"unknown field":   {`{"symbol":"7203.T","quantity":100,"extra":1}`, "application/json", 0, httpx.CodeInvalid, "extra"},
		"wrong type":      {`{"symbol":"7203.T","quantity":"100"}`, "application/json", 0, httpx.CodeInvalid, "quantity"},
		"malformed":       {`{"symbol":`, "application/json", 0, httpx.CodeInvalid, ""},
		"syntax error":    {`{"symbol" "x"}`, "application/json", 0, httpx.CodeInvalid, ""},
		"empty":           {``, "application/json", 0, httpx.CodeInvalid, ""},
		"two values":      {`{"quantity":100}{"quantity":200}`, "application/json", 0, httpx.CodeInvalid, ""},
		"too large":       {`{"symbol":"` + strings.Repeat("A", 200) + `"}`, "application/json", 64, httpx.CodeTooLarge, ""},
		"not json":        {`symbol=7203.T`, "application/x-www-form-urlencoded", 0, httpx.CodeUnsupported, ""},
		"validation":      {`{"symbol":"7203.T","quantity":150}`, "application/json", 0, httpx.CodeInvalid, "quantity"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("POST", "/", strings.NewReader(tc.body))
			r.Header.Set("Content-Type", tc.contentType)
			_, err := httpx.Decode[order](httptest.NewRecorder(), r, tc.limit)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if got := httpx.ErrorCode(err); got != tc.code {
				t.Fatalf("code %q (%v), want %q", got, err, tc.code)
			}
			var e *httpx.Error
			if tc.field != "" && (!errors.As(err, &e) || len(e.Fields) == 0 || e.Fields[0].Field != tc.field) {
				t.Fatalf("fields of %v, want %q", err, tc.field)
			}
		})
	}
}

func TestWriteErrorIsAProblem(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		err        error
		status     int
		detail     string
		retryAfter string
	}{
		"invalid with fields": {httpx.Invalid("bad", httpx.FieldError{Field: "period", Reason: "no"}), 400, "bad", ""},
		"not found":           {httpx.Errorf(httpx.CodeNotFound, "unknown symbol %s", "X"), 404, "unknown symbol X", ""},
		"unavailable":         {&httpx.Error{Code: httpx.CodeUnavailable, Message: "down", RetryAfter: 1500 * time.Millisecond}, 503, "down", "2"},
		"foreign error hides": {errors.New("password=hunter2 leaked"), 500, "internal error", ""},
		"internal hides":      {httpx.Wrap(errors.New("secret"), httpx.CodeInternal, "secret detail"), 500, "internal error", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			w := httptest.NewRecorder()
			r := httptest.NewRequest("GET", "/api/v1/x", nil)
			r = r.WithContext(httpx.NewContextWithRequestID(r.Context(), "rid-1"))
			httpx.WriteError(w, r, nil, tc.err)
			if w.Code != tc.status || w.Header().Get("Content-Type") != httpx.ProblemContentType {
				t.Fatalf("status %d type %q", w.Code, w.Header().Get("Content-Type"))
			}
			if got := w.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
			var m map[string]any
			if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
				t.Fatal(err)
			}
			if m["status"] != float64(tc.status) || m["detail"] != tc.detail || m["request_id"] != "rid-1" || m["instance"] != "/api/v1/x" {
				t.Errorf("problem %v", m)
			}
			if !strings.HasPrefix(m["type"].(string), "https://") || m["title"] != http.StatusText(tc.status) {
				t.Errorf("type/title %v", m)
			}
			if strings.Contains(w.Body.String(), "hunter2") || strings.Contains(w.Body.String(), "secret") {
				t.Errorf("internal detail leaked: %s", w.Body)
			}
		})
	}
}

func TestProblemExtraIsFlattened(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	httpx.WriteError(w, httptest.NewRequest("GET", "/", nil), nil,
		&httpx.Error{Code: httpx.CodeUnavailable, Message: "not ready", Extra: map[string]any{"checks": map[string]string{"redis": "down"}, "status": "spoofed"}})
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	if m["checks"] == nil || m["status"] != float64(503) {
		t.Fatalf("extra not flattened or overrode a standard member: %v", m)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	var seen string
	h := httpx.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = httpx.RequestIDFromContext(r.Context()) }))
	for name, tc := range map[string]struct{ in, wantSame bool }{"kept": {true, true}, "made": {false, false}} {
		t.Run(name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.in {
				r.Header.Set(httpx.RequestIDHeader, "abc-123")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if seen == "" || w.Header().Get(httpx.RequestIDHeader) != seen || (tc.wantSame && seen != "abc-123") {
				t.Fatalf("id %q header %q", seen, w.Header().Get(httpx.RequestIDHeader))
			}
		})
	}
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set(httpx.RequestIDHeader, "bad id\twith spaces")
	h.ServeHTTP(httptest.NewRecorder(), r)
	if seen == "bad id\twith spaces" {
		t.Fatal("an id with control characters was trusted")
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range []string{`{"symbol":"7203.T","quantity":100}`, `{`, `[]`, `null`, `{"quantity":1e400}`, "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/", strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		_, err := httpx.Decode[order](httptest.NewRecorder(), r, 1024)
		if err != nil && httpx.ErrorCode(err).Status() >= 500 {
			t.Fatalf("%q: a client mistake became %v", body, err)
		}
	})
}
