package gateway

import (
	"net/http"
	"strings"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// security is the outer hygiene: header limits (431), a declared body over the limit (413; see
// body.go for bodies of unknown length), identity-header stripping, security
// headers and CORS. Go's server already refuses CR/LF and other control bytes in header
// values and request targets (400), and ReverseProxy drops hop-by-hop headers (RFC 9110
// §7.6.1) and every header the Connection header names.
type security struct {
	maxHeader   int
	maxBody     int64
	origins     map[string]bool
	anyOrigin   bool
	hsts        bool
	allowMethod string
}

var (
	hNosniff  = []string{"nosniff"}
	hDeny     = []string{"DENY"}
	hNoRef    = []string{"no-referrer"}
	hCSP      = []string{"default-src 'none'; frame-ancestors 'none'"}
	hHSTS     = []string{"max-age=63072000; includeSubDomains"}
	hVary     = []string{"Origin"}
	hExpose   = []string{"X-Request-Id, X-Cache, RateLimit, RateLimit-Policy, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, X-Quota-Limit, X-Quota-Remaining, X-Quota-Monthly-Limit, X-Quota-Monthly-Remaining, Retry-After"}
	hAllowHdr = []string{"Authorization, X-API-Key, Content-Type, Idempotency-Key, X-Request-Id, traceparent, tracestate"}
)

func newSecurity(cfg Config) *security {
	s := &security{maxHeader: cfg.MaxHeaderBytes, maxBody: cfg.MaxBodyBytes, origins: map[string]bool{}, hsts: cfg.HSTS,
		allowMethod: "GET, POST, PUT, PATCH, DELETE"}
	for _, o := range cfg.CORSOrigins {
		if o == "*" {
			s.anyOrigin = true
		} else if o != "" {
			s.origins[strings.TrimSuffix(o, "/")] = true
		}
	}
	return s
}

// admit applies the outer hygiene; false means it has answered (431, 413, or a CORS preflight).
func (s *security) admit(w http.ResponseWriter, r *http.Request) bool {
	h := w.Header()
	h["X-Content-Type-Options"] = hNosniff
	h["X-Frame-Options"] = hDeny
	h["Referrer-Policy"] = hNoRef
	h["Content-Security-Policy"] = hCSP
	if s.hsts {
		h["Strict-Transport-Security"] = hHSTS
	}
	size := 0
	for k, vs := range r.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if size > s.maxHeader {
		writeHeadersTooLarge(w, r, s.maxHeader)
		return false
	}
	if r.ContentLength > s.maxBody {
		httpx.WriteError(w, r, nil, tooLarge(s.maxBody, nil))
		return false
	}
	for _, k := range auth.IdentityHeaders {
		delete(r.Header, k)
	}
	if origin := r.Header.Get("Origin"); origin != "" && (s.anyOrigin || s.origins[origin]) {
		if s.anyOrigin {
			h["Access-Control-Allow-Origin"] = []string{"*"}
		} else {
			h["Access-Control-Allow-Origin"] = []string{origin}
			h["Vary"] = hVary
		}
		h["Access-Control-Expose-Headers"] = hExpose
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h["Access-Control-Allow-Methods"] = []string{s.allowMethod}
			h["Access-Control-Allow-Headers"] = hAllowHdr
			h["Access-Control-Max-Age"] = []string{"600"}
			w.WriteHeader(http.StatusNoContent)
			return false
		}
	}
	return true
}

// writeHeadersTooLarge answers 431 as problem+json.
func writeHeadersTooLarge(w http.ResponseWriter, r *http.Request, limit int) {
	httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeHeadersTooLarge, "request headers exceed %d bytes", limit))
}
