package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/auth"
)

// Transform edits one route's traffic: the upstream path and the request and answer headers.
type Transform struct {
	// Rewrite is the path sent upstream, with the route's {param}s substituted (escaped), e.g.
	// /api/v1/data/stocks/{symbol}. Empty keeps the incoming path.
	Rewrite string
	// RequestSet sets (replaces) headers on the request sent upstream; RequestRemove drops them.
	RequestSet    map[string]string
	RequestRemove []string
	// ResponseSet and ResponseRemove do the same on the answer sent to the caller.
	ResponseSet    map[string]string
	ResponseRemove []string
}

// protectedHeaders may not be set or removed by a transform: identity and credentials are the
// gateway's (a routes file must not be able to forge or leak them), and hop-by-hop and framing
// headers belong to the HTTP layer.
var protectedHeaders = func() []string {
	h := []string{"Authorization", "X-Api-Key", "Cookie", "Set-Cookie", "Host", "Content-Length", "Transfer-Encoding",
		"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Te", "Trailer", "Upgrade"}
	for _, k := range auth.IdentityHeaders {
		h = append(h, http.CanonicalHeaderKey(k))
	}
	return h
}()

// Validate checks the transform against its route's path: every {param} of Rewrite must be
// one of the route's, and header names and values must be safe.
func (t *Transform) Validate(routePath string) error {
	var errs []error
	if t.Rewrite != "" {
		if !strings.HasPrefix(t.Rewrite, "/") || strings.Contains(t.Rewrite, "..") || strings.ContainsAny(t.Rewrite, "?#\\ \r\n") {
			errs = append(errs, fmt.Errorf("rewrite %q: must be an absolute path without query, '..' or spaces", t.Rewrite))
		}
		have := pathParams(routePath)
		for _, p := range pathParams(t.Rewrite) {
			if !slices.Contains(have, p) {
				errs = append(errs, fmt.Errorf("rewrite %q: {%s} is not a parameter of %s", t.Rewrite, p, routePath))
			}
		}
	}
	check := func(where string, names []string, values map[string]string) {
		for _, n := range names {
			if !validHeaderName(n) {
				errs = append(errs, fmt.Errorf("%s: %q is not a header name", where, n))
			} else if slices.Contains(protectedHeaders, http.CanonicalHeaderKey(n)) {
				errs = append(errs, fmt.Errorf("%s: %s is the gateway's and cannot be changed", where, n))
			}
		}
		for n, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				errs = append(errs, fmt.Errorf("%s: the value of %s contains CR, LF or NUL", where, n))
			}
		}
	}
	check("request_headers", append(t.RequestRemove, mapKeys(t.RequestSet)...), t.RequestSet)
	check("response_headers", append(t.ResponseRemove, mapKeys(t.ResponseSet)...), t.ResponseSet)
	return errors.Join(errs...)
}

func mapKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

// validHeaderName is RFC 9110's token.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// pathParams lists a chi pattern's parameter names ("{id:[0-9]+}" → "id").
func pathParams(pattern string) []string {
	var out []string
	for _, seg := range strings.Split(pattern, "/") {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			out = append(out, strings.SplitN(seg[1:len(seg)-1], ":", 2)[0])
		}
	}
	return out
}

// buildRoute is newRoute plus what the routes file and composites add: an aggregation in
// place of the proxy, a transform and a route timeout around whichever serves.
func (g *Gateway) buildRoute(rt Route) (*route, error) {
	if rt.Transform != nil {
		if err := rt.Transform.Validate(rt.Path); err != nil {
			return nil, fmt.Errorf("gateway: route %s %s: %w", rt.Method, rt.Path, err)
		}
	}
	if rt.Composite == nil {
		x, err := g.newRoute(rt)
		if err != nil || (rt.Transform == nil && rt.Timeout <= 0) {
			return x, err
		}
		x.serve = transformed(x.serve, rt)
		return x, nil
	}
	if rt.Function != "" {
		return nil, fmt.Errorf("gateway: composite route %s %s names a function", rt.Method, rt.Path)
	}
	a, err := g.newAggregator(rt)
	if err != nil {
		return nil, err
	}
	// newRoute resolves the policy (limits, quota, SLA, metrics) of a proxied route; the
	// aggregation then replaces its proxy.
	probe := rt
	probe.Function = rt.Composite.Parts[0].Function
	x, err := g.newRoute(probe)
	if err != nil {
		return nil, err
	}
	x.Route.Function, x.up, x.serve = "", nil, a.serve
	if rt.Transform != nil {
		t := *rt.Transform
		t.Rewrite = "" // a composite has no single upstream path
		rt.Transform = &t
		x.serve = transformed(x.serve, rt)
	}
	return x, nil
}

type serveFunc = func(http.ResponseWriter, *http.Request, *auth.Principal)

// transformed wraps serve with rt's transform and timeout. The request is copied before it is
// changed: chi and the access log still see what the caller sent.
func transformed(serve serveFunc, rt Route) serveFunc {
	t := rt.Transform
	if t == nil {
		t = &Transform{}
	}
	reqRemove := canonical(t.RequestRemove)
	respRemove := canonical(t.ResponseRemove)
	reqSet, respSet := canonicalMap(t.RequestSet), canonicalMap(t.ResponseSet)
	return func(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
		if rt.Timeout > 0 {
			ctx, cancel := context.WithTimeout(r.Context(), rt.Timeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if t.Rewrite != "" || len(reqRemove)+len(reqSet) > 0 {
			r2 := r.Clone(r.Context())
			if t.Rewrite != "" {
				u := *r.URL
				u.Path, u.RawPath = rewritePath(t.Rewrite, chi.RouteContext(r.Context()))
				r2.URL = &u
			}
			for _, k := range reqRemove {
				delete(r2.Header, k)
			}
			for k, v := range reqSet {
				r2.Header[k] = []string{v}
			}
			r = r2
		}
		if len(respRemove)+len(respSet) > 0 {
			ed := &headerEditor{remove: respRemove, set: respSet}
			if sw := writerState(w); sw != nil {
				// Edit beneath the statusWriter, so the chain still finds it (writerState).
				ed.ResponseWriter = sw.ResponseWriter
				sw.ResponseWriter = ed
				defer func() { sw.ResponseWriter = ed.ResponseWriter }()
			} else {
				ed.ResponseWriter = w
				w = ed
			}
		}
		serve(w, r, p)
	}
}

func canonical(ks []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = http.CanonicalHeaderKey(k)
	}
	return out
}

func canonicalMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[http.CanonicalHeaderKey(k)] = v
	}
	return out
}

// rewritePath fills the template's {param}s with the request's values and returns the path
// and its escaped form: each value is path-escaped, so it can never add a segment.
func rewritePath(tmpl string, rc *chi.Context) (path, raw string) {
	segs := strings.Split(tmpl, "/")
	esc := slices.Clone(segs)
	for i, seg := range segs {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			name := strings.SplitN(seg[1:len(seg)-1], ":", 2)[0]
			v := ""
			if rc != nil {
				v = rc.URLParam(name)
			}
			if uv, err := url.PathUnescape(v); err == nil {
				v = uv // chi hands out the raw (escaped) value when the path had escapes
			}
			segs[i], esc[i] = v, url.PathEscape(v)
		}
	}
	return strings.Join(segs, "/"), strings.Join(esc, "/")
}

// headerEditor applies a route's answer-header edits just before the status line is sent.
type headerEditor struct {
	http.ResponseWriter
	remove []string
	set    map[string]string
	done   bool
}

func (e *headerEditor) edit() {
	if e.done {
		return
	}
	e.done = true
	h := e.ResponseWriter.Header()
	for _, k := range e.remove {
		delete(h, k)
	}
	for k, v := range e.set {
		h[k] = []string{v}
	}
}

func (e *headerEditor) WriteHeader(code int) {
	if code >= 200 {
		e.edit()
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *headerEditor) Write(b []byte) (int, error) {
	e.edit()
	return e.ResponseWriter.Write(b)
}

func (e *headerEditor) Flush() {
	e.edit()
	if f, ok := e.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (e *headerEditor) Unwrap() http.ResponseWriter { return e.ResponseWriter }
