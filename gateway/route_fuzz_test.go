package gateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// patternMatches is the oracle for the router: does chi pattern p match path? A {param}
// matches one segment (no '/'); everything else matches itself.
func patternMatches(p, path string) bool {
	ps, xs := strings.Split(p, "/"), strings.Split(path, "/")
	if len(ps) != len(xs) {
		return false
	}
	for i, seg := range ps {
		if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
			if xs[i] == "" {
				return false
			}
			continue
		}
		if seg != xs[i] {
			return false
		}
	}
	return true
}

// FuzzRouteMatch sends arbitrary methods and request targets, without a credential, to the
// gateway with main's route table (the catalog's routes, the composite ones and the gateway's
// own): it never panics and never answers 5xx; a path no route matches is a 404 problem, a
// path some route matches with another method a 405 problem; and when the router picks a
// route, that route's pattern matches the path and its method is the request's, and the
// caller meets authentication (401), not the function.
//
//	go test -run '^$' -fuzz FuzzRouteMatch -fuzztime 30s ./gateway
func FuzzRouteMatch(f *testing.F) {
	catalog := functions.Catalog()
	routes := append(RoutesFromCatalog(catalog), CompositeRoutes(catalog)...)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never asked: no credential
	f.Cleanup(func() { rdb.Close() })
	priv, _ := auth.GenerateInternalKey()
	pk, _ := auth.ParsePrivateKey(priv)
	g, err := New(Config{}, routes, Deps{Redis: rdb, Signer: auth.NewSigner(pk), Transport: http.DefaultTransport})
	if err != nil {
		f.Fatal(err)
	}
	all := append(routes, g.ownRoutes()...)
	all = append(all, Route{Method: http.MethodGet, Path: PathOpenAPI})

	for _, seed := range [][2]string{
		{"GET", "/api/v1/data/stocks/7203.T"}, {"GET", "/api/v1/data/stocks/"}, {"GET", "/api/v1/data/stocks"},
		{"POST", "/api/v1/execution/trade"}, {"GET", "/api/v1/execution/trade"}, {"DELETE", "/api/v1/gateway/keys/abc"},
		{"POST", "/api/v1/gateway/keys/abc/rotate"}, {"GET", "/api/v1/nope"}, {"GET", "/"}, {"get", "/api/v1/ml/models"},
		{"GET", "/api/v1/data/stocks/..%2f..%2fetc"}, {"GET", "//api/v1/ml/models"}, {"GET", "/api/v1/ml/models/"},
		{"OPTIONS", "/api/v1/ml/models"}, {"HEAD", "/api/v1/ml/models"}, {"GET", "/api/v1/execution/jobs/%zz"},
		{"GET", PathOpenAPI}, {"BREW", "/api/v1/notifications/1"}, {"GET", "/api/v1/notifications/a/b"}, {"GET", "*"}, {"0", "*"},
		{"GET", "/api/v1/events/dead-letters/x/replay?y=1"}, {"PATCH", "/api/v1/gateway/upstreams/data-stocks/instances/i1"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, method, target string) {
		if !validMethod(method) {
			return // Go's server answers 400 before any handler
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return // likewise: not an origin-form request target the server would hand over
		}
		r := &http.Request{Method: method, URL: u, RequestURI: target, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Body: http.NoBody, Host: "gateway.test"}
		r = r.WithContext(t.Context())
		w := httptest.NewRecorder()
		g.ServeHTTP(w, r)
		status := w.Code
		if status >= 500 {
			t.Fatalf("%s %q: %d %s", method, target, status, w.Body)
		}

		routePath := u.Path
		if u.RawPath != "" {
			routePath = u.RawPath
		}
		if routePath == "" {
			routePath = "/"
		}
		pathMatched := false
		for _, rt := range all {
			if patternMatches(rt.Path, routePath) {
				pathMatched = true
			}
		}
		rctx := chi.NewRouteContext()
		if g.router.Load().Match(rctx, method, routePath) {
			pattern := rctx.RoutePattern()
			if !patternMatches(pattern, routePath) {
				t.Fatalf("%s %q matched %q", method, routePath, pattern)
			}
			found := false
			for _, rt := range all {
				found = found || rt.Method == method && rt.Path == pattern
			}
			if !found {
				t.Fatalf("%s %q matched %s %q, which is no route", method, routePath, method, pattern)
			}
			want := http.StatusUnauthorized
			if pattern == PathOpenAPI {
				want = http.StatusOK
			}
			if status != want {
				t.Fatalf("%s %q (route %s): %d, want %d", method, target, pattern, status, want)
			}
			return
		}
		switch {
		case !chiMethods[method]:
			if status != http.StatusMethodNotAllowed { // chi answers 405 to a method it does not know
				t.Fatalf("%s %q: unknown method, yet %d", method, target, status)
			}
		case !pathMatched && status != http.StatusNotFound:
			t.Fatalf("%s %q: no route matches the path, yet %d", method, target, status)
		case pathMatched && status != http.StatusMethodNotAllowed:
			t.Fatalf("%s %q: a route matches the path with another method, yet %d", method, target, status)
		}
		if ct := w.Header().Get("Content-Type"); ct != httpx.ProblemContentType {
			t.Fatalf("%s %q: %d with content type %q", method, target, status, ct)
		}
		var p httpx.Problem
		if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != status || p.Type == "" {
			t.Fatalf("%s %q: problem %s (%v)", method, target, w.Body, err)
		}
	})
}

// chiMethods are the methods chi routes; it answers any other with 405.
var chiMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true,
	"DELETE": true, "CONNECT": true, "OPTIONS": true, "TRACE": true}

// validMethod is what Go's server accepts as a method: a token (RFC 9110 §9.1).
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}
