package idempotency

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/day-trade/platform/shared/httpx"
)

// Request is what the middleware tells the handler about the request it let through.
type Request struct {
	Scope       string // e.g. the tenant
	Key         string // the client's Idempotency-Key
	Fingerprint string // Fingerprint(method, path, body)
	Body        []byte // the body, already read
}

type ctxKey struct{}

// NewContext returns ctx carrying req.
func NewContext(ctx context.Context, req Request) context.Context {
	return context.WithValue(ctx, ctxKey{}, req)
}

// FromContext returns the idempotent request the middleware let through.
func FromContext(ctx context.Context) (Request, bool) {
	r, ok := ctx.Value(ctxKey{}).(Request)
	return r, ok
}

// ScopeFunc names the scope (tenant) of a request; an error is written as the answer.
type ScopeFunc func(*http.Request) (string, error)

// ValidKey reports whether k is an acceptable key: 1 to MaxKeyLength visible ASCII
// characters (the draft makes it a Structured Header string).
func ValidKey(k string) bool {
	if k == "" || len(k) > MaxKeyLength {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x20 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

// storeTimeout bounds the bookkeeping after the handler ran; it is detached from the
// request so that a client hanging up does not leave the lock held.
const storeTimeout = 5 * time.Second

// Middleware enforces the Idempotency-Key protocol in front of next; maxBody bounds the
// request body (httpx.DefaultMaxBody when <= 0). See the package doc for the semantics.
func (s *Store) Middleware(log *slog.Logger, scope ScopeFunc, maxBody int64) func(http.Handler) http.Handler {
	if maxBody <= 0 {
		maxBody = httpx.DefaultMaxBody
	}
	retryAfter := s.opts.RetryAfter
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			key := r.Header.Get(Header)
			// The draft sends the key as a Structured Header string: accept it quoted too.
			if len(key) >= 2 && key[0] == '"' && key[len(key)-1] == '"' {
				key = key[1 : len(key)-1]
			}
			switch {
			case len(r.Header.Values(Header)) == 0:
				httpx.WriteError(w, r, log, keyError("the Idempotency-Key header is required"))
				return
			case !ValidKey(key):
				httpx.WriteError(w, r, log, keyError("the Idempotency-Key header must be 1 to 255 visible ASCII characters"))
				return
			}
			sc, err := scope(r)
			if err != nil {
				httpx.WriteError(w, r, log, err)
				return
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
			if err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					httpx.WriteError(w, r, log, httpx.Errorf(httpx.CodeTooLarge, "request body exceeds %d bytes", maxBody))
					return
				}
				httpx.WriteError(w, r, log, httpx.Wrap(err, httpx.CodeInvalid, "request body could not be read"))
				return
			}
			fp := Fingerprint(r.Method, r.URL.Path, body)
			begun, err := s.Begin(r.Context(), sc, key, fp)
			if err != nil {
				// Fail closed: without the record we cannot tell a retry from a new request.
				httpx.WriteError(w, r, log, &httpx.Error{Code: httpx.CodeUnavailable, Message: "idempotency store unavailable; nothing was done, retry later", RetryAfter: retryAfter, Err: err})
				return
			}
			switch begun.State {
			case Mismatch:
				httpx.WriteError(w, r, log, &httpx.Error{Code: httpx.CodeUnprocessable, Message: "this Idempotency-Key was used with a different request", Extra: map[string]any{"rule": "idempotency_key_reuse"}})
				return
			case InFlight:
				httpx.WriteError(w, r, log, &httpx.Error{Code: httpx.CodeConflict, Message: "a request with this Idempotency-Key is still being processed", RetryAfter: retryAfter, Extra: map[string]any{"rule": "idempotency_key_in_flight"}})
				return
			case Done:
				replay(w, begun.Response)
				return
			}

			rec := &recorder{header: http.Header{}, status: http.StatusOK}
			r2 := r.WithContext(NewContext(r.Context(), Request{Scope: sc, Key: key, Fingerprint: fp, Body: body}))
			r2.Body = io.NopCloser(bytes.NewReader(body))
			func() {
				defer func() {
					if p := recover(); p != nil {
						s.release(r, log, begun.Lease)
						panic(p)
					}
				}()
				next.ServeHTTP(rec, r2)
			}()

			resp := Response{Status: rec.status, Header: stored(rec.header), Body: rec.body.Bytes()}
			ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
			defer cancel()
			if resp.Status >= 500 {
				s.release(r, log, begun.Lease)
			} else if err := s.Complete(ctx, begun.Lease, resp); err != nil {
				// The work is done and the caller should hear about it; a retry will find it
				// through the handler's own idempotency (e.g. the order id).
				log.WarnContext(r.Context(), "idempotent response not stored", "err", err)
			}
			write(w, rec.header, resp.Status, resp.Body)
		})
	}
}

func keyError(msg string) *httpx.Error {
	return &httpx.Error{Code: httpx.CodeInvalid, Message: msg, Fields: []httpx.FieldError{{Field: Header, Reason: msg}}, Extra: map[string]any{"rule": "idempotency_key"}}
}

func (s *Store) release(r *http.Request, log *slog.Logger, l Lease) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), storeTimeout)
	defer cancel()
	if err := s.Release(ctx, l); err != nil {
		log.WarnContext(r.Context(), "idempotency lock not released; it expires on its own", "err", err)
	}
}

// stored keeps the headers that belong to the answer itself, not to one delivery of it.
func stored(h http.Header) http.Header {
	out := h.Clone()
	for _, k := range []string{"Date", httpx.RequestIDHeader, "Retry-After", "Content-Length"} {
		out.Del(k)
	}
	return out
}

func replay(w http.ResponseWriter, resp *Response) {
	h := resp.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	h.Set(ReplayedHeader, "true")
	write(w, h, resp.Status, resp.Body)
}

func write(w http.ResponseWriter, h http.Header, status int, body []byte) {
	dst := w.Header()
	for k, v := range h {
		dst[k] = v
	}
	dst.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// recorder buffers the handler's answer so that it is stored before the client sees it.
type recorder struct {
	header      http.Header
	status      int
	wroteHeader bool
	body        bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wroteHeader = true
	return r.body.Write(b)
}
