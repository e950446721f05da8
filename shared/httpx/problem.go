package httpx

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
)

// ProblemContentType is the media type of RFC 9457 problem details.
const ProblemContentType = "application/problem+json"

// Problem is an RFC 9457 problem details object.
type Problem struct {
	Type      string         `json:"type"`
	Title     string         `json:"title"`
	Status    int            `json:"status"`
	Detail    string         `json:"detail,omitempty"`
	Instance  string         `json:"instance,omitempty"`
	Code      Code           `json:"code"`
	RequestID string         `json:"request_id,omitempty"`
	Errors    []FieldError   `json:"errors,omitempty"`
	Extra     map[string]any `json:"-"`
}

// MarshalJSON flattens Extra into the top-level object, as RFC 9457 §3.2 allows.
func (p Problem) MarshalJSON() ([]byte, error) {
	type plain Problem
	b, err := json.Marshal(plain(p))
	if err != nil || len(p.Extra) == 0 {
		return b, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range p.Extra {
		if _, taken := m[k]; !taken {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// NewProblem builds the problem body for err as seen by request r.
func NewProblem(r *http.Request, err error) Problem {
	e := AsError(err)
	status := e.Code.Status()
	p := Problem{
		Type:      "https://day-trade.dev/problems/" + string(e.Code),
		Title:     http.StatusText(status),
		Status:    status,
		Detail:    e.Message,
		Code:      e.Code,
		Errors:    e.Fields,
		Extra:     e.Extra,
		RequestID: RequestIDFromContext(r.Context()),
	}
	if r != nil && r.URL != nil {
		p.Instance = r.URL.Path
	}
	if e.Code == CodeInternal {
		p.Detail = "internal error" // never leak internals
	}
	return p
}

// WriteError writes err as problem+json. Internal errors and 5xx are logged with their cause.
func WriteError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	e := AsError(err)
	p := NewProblem(r, e)
	if log != nil && p.Status >= 500 {
		log.ErrorContext(ctxOf(r), "request failed", "code", e.Code, "status", p.Status, "err", e.Error())
	}
	h := w.Header()
	if e.RetryAfter > 0 {
		secs := int(e.RetryAfter.Seconds() + 0.999)
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	h.Set("Content-Type", ProblemContentType)
	h.Set("Cache-Control", "no-store")
	h.Del("Content-Length")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

func ctxOf(r *http.Request) context.Context {
	if r == nil {
		return context.Background()
	}
	return r.Context()
}

// NotFoundHandler answers unknown routes with a 404 problem.
func NotFoundHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, nil, Errorf(CodeNotFound, "no route for %s %s", r.Method, r.URL.Path))
	})
}

// MethodNotAllowedHandler answers a known route with the wrong method.
func MethodNotAllowedHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, r, nil, Errorf(CodeMethod, "method %s not allowed on %s", r.Method, r.URL.Path))
	})
}
