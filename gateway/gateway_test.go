package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// upstream is a real HTTP server standing in for the platform's activator: it records the
// Host each request named, as Knative's ingress routes by it.
func upstream(t testing.TB, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// harness is a gateway in front of one upstream address, with its own redis-server.
type harness struct {
	srv    *httptest.Server
	redis  *redistest.Server
	rdb    *redis.Client
	keys   *auth.KeyStore
	signer *auth.Signer
	key    string // admin+trader key of tenant "t1"
}

var defaultRoutes = []gateway.Route{
	{Method: "GET", Path: "/api/v1/data/stocks/{symbol}", Function: "data-stocks", Roles: []string{"viewer", "trader", "admin"}, Idempotent: true},
	{Method: "DELETE", Path: "/api/v1/data/cache", Function: "data-cache", Roles: []string{"admin"}, Idempotent: true},
	{Method: "POST", Path: "/api/v1/orders", Function: "execution-trade", Roles: []string{"trader"}},
	{Method: "GET", Path: "/api/v1/noroles", Function: "data-cache"},
}

func newHarness(t testing.TB, dial string, cfg gateway.Config, routes []gateway.Route) *harness {
	t.Helper()
	rs := redistest.Start(t)
	return newHarnessOn(t, rs, dial, cfg, routes)
}

func newHarnessOn(t testing.TB, rs *redistest.Server, dial string, cfg gateway.Config, routes []gateway.Route) *harness {
	t.Helper()
	return newHarnessWrapped(t, rs, dial, cfg, routes, httpx.RequestID)
}

// newHarnessWrapped serves the gateway through wrap (httpx.RequestID in most tests; the
// runtime's handler where what it adds matters).
func newHarnessWrapped(t testing.TB, rs *redistest.Server, dial string, cfg gateway.Config, routes []gateway.Route, wrap func(http.Handler) http.Handler, deps ...func(*gateway.Deps)) *harness {
	t.Helper()
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	if cfg.Namespace == "" {
		cfg.Namespace = "day-trade"
	}
	if routes == nil {
		routes = defaultRoutes
	}
	priv, _ := auth.GenerateInternalKey()
	pk, _ := auth.ParsePrivateKey(priv)
	h := &harness{redis: rs, rdb: rdb, keys: auth.NewKeyStore(rdb, gateway.Keys), signer: auth.NewSigner(pk)}
	h.keys.CacheTTL = 0 // every request asks Redis: revocation is immediate in tests
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := gateway.Deps{Log: log, Transport: gateway.NewTransport(dial), Redis: rdb, Keys: h.keys, Signer: h.signer}
	for _, f := range deps {
		f(&d)
	}
	g, err := gateway.New(cfg, routes, d)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(wrap(g))
	t.Cleanup(h.srv.Close)
	h.key = h.newKey(t, "t1", "admin", "trader")
	return h
}

func (h *harness) newKey(t testing.TB, tenant string, roles ...string) string {
	t.Helper()
	key, _, err := h.keys.Create(context.Background(), auth.KeySpec{Owner: "tester", Tenant: tenant, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// do sends one request with key (none when ""), as Authorization: Bearer.
func (h *harness) do(t testing.TB, method, path, key string, hdr ...string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func decodeProblem(t testing.TB, resp *http.Response) httpx.Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != httpx.ProblemContentType {
		t.Fatalf("content type %q, want problem+json", ct)
	}
	var p httpx.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProxiesByKnativeHost(t *testing.T) {
	t.Parallel()
	var gotHost, gotPath, gotID, gotAuth, gotIdentity string
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotPath, gotID = r.Host, r.URL.RequestURI(), r.Header.Get(httpx.RequestIDHeader)
		gotAuth, gotIdentity = r.Header.Get("Authorization"), r.Header.Get(auth.InternalTokenHeader)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	h := newHarness(t, dial, gateway.Config{UpstreamTimeout: 5 * time.Second}, nil)
	resp := h.do(t, "GET", "/api/v1/data/stocks/7203.T?period=1mo", h.key, httpx.RequestIDHeader, "req-123")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if gotHost != "data-stocks.day-trade.svc.cluster.local" {
		t.Errorf("upstream Host = %q", gotHost)
	}
	if gotPath != "/api/v1/data/stocks/7203.T?period=1mo" {
		t.Errorf("upstream path = %q", gotPath)
	}
	if gotID != "req-123" || resp.Header.Get(httpx.RequestIDHeader) != "req-123" {
		t.Errorf("request id not carried: upstream %q, response %q", gotID, resp.Header.Get(httpx.RequestIDHeader))
	}
	if gotAuth != "" || gotIdentity == "" {
		t.Errorf("upstream saw Authorization %q and identity token %q; want the key stripped and a token", gotAuth, gotIdentity)
	}
	for _, k := range []string{"X-Content-Type-Options", "Ratelimit", "Ratelimit-Policy", "X-Ratelimit-Limit", "X-Ratelimit-Remaining", "X-Ratelimit-Reset"} {
		if resp.Header.Get(k) == "" {
			t.Errorf("answer lacks %s", k)
		}
	}
}

func TestErrorsAreProblems(t *testing.T) {
	t.Parallel()
	// A closed port: the function cannot be reached.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	slow := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	ok := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	rs := redistest.Start(t)

	tests := map[string]struct {
		dial, method, path string
		timeout            time.Duration
		want               int
	}{
		"unknown route":       {ok, "GET", "/api/v1/nope", time.Second, 404},
		"outside api":         {ok, "GET", "/admin", time.Second, 404},
		"wrong method":        {ok, "POST", "/api/v1/data/cache", time.Second, 405},
		"function down":       {closed, "GET", "/api/v1/data/stocks/7203.T", time.Second, 503},
		"function too slow":   {slow, "GET", "/api/v1/data/stocks/7203.T", 50 * time.Millisecond, 504},
		"encoded path escape": {ok, "GET", "/api/v1/data/stocks/..%2f..%2fetc", time.Second, 200},
		"route without roles": {ok, "GET", "/api/v1/noroles", time.Second, 403},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h := newHarnessOn(t, rs, tc.dial, gateway.Config{UpstreamTimeout: tc.timeout, RetryBase: time.Millisecond}, nil)
			resp := h.do(t, tc.method, tc.path, h.key)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want >= 400 {
				p := decodeProblem(t, resp)
				if p.Status != tc.want || p.Detail == "" || p.RequestID == "" {
					t.Errorf("problem %+v", p)
				}
			}
			if tc.want == 503 && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

func TestRoutesFromCatalogCoverEveryRoute(t *testing.T) {
	t.Parallel()
	n := 0
	for _, f := range functions.Catalog() {
		if f.Kind != functions.KindGateway {
			n += len(f.Routes)
		}
	}
	if got := len(gateway.RoutesFromCatalog(functions.Catalog())); got != n || n == 0 {
		t.Fatalf("%d routes from a catalog of %d", got, n)
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) { calls.Add(1) })
	h := newHarness(t, dial, gateway.Config{}, nil)
	viewer := h.newKey(t, "t1", "viewer")
	revoked := h.newKey(t, "t1", "admin")
	_, id, _, _ := auth.ParseAPIKey(revoked)
	if _, err := h.keys.Revoke(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	expired, _, err := h.keys.Create(context.Background(), auth.KeySpec{Owner: "o", Tenant: "t1", Roles: []string{"admin"}, TTL: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	wrongSecret := h.key[:len(h.key)-4] + "0000"
	if wrongSecret == h.key {
		wrongSecret = h.key[:len(h.key)-4] + "1111"
	}

	tests := map[string]struct {
		method, path string
		hdr          []string
		want         int
	}{
		"no credential":        {"GET", "/api/v1/data/stocks/X", nil, 401},
		"bearer key":           {"GET", "/api/v1/data/stocks/X", []string{"Authorization", "Bearer " + h.key}, 200},
		"bearer lower case":    {"GET", "/api/v1/data/stocks/X", []string{"Authorization", "bearer " + h.key}, 200},
		"x-api-key":            {"GET", "/api/v1/data/stocks/X", []string{"X-API-Key", h.key}, 200},
		"wrong secret":         {"GET", "/api/v1/data/stocks/X", []string{"X-API-Key", wrongSecret}, 401},
		"malformed key":        {"GET", "/api/v1/data/stocks/X", []string{"X-API-Key", "dt_live_nope"}, 401},
		"revoked key":          {"GET", "/api/v1/data/stocks/X", []string{"X-API-Key", revoked}, 401},
		"jwt not configured":   {"GET", "/api/v1/data/stocks/X", []string{"Authorization", "Bearer eyJhbGciOiJub25lIn0.e30."}, 401},
		"basic auth":           {"GET", "/api/v1/data/stocks/X", []string{"Authorization", "Basic dXNlcjpwYXNz"}, 401},
		"bearer without token": {"GET", "/api/v1/data/stocks/X", []string{"Authorization", "Bearer"}, 401},
		"bearer with a space":  {"GET", "/api/v1/data/stocks/X", []string{"Authorization", "Bearer " + h.key + " " + h.key}, 401},
		"key outside token68":  {"GET", "/api/v1/data/stocks/X", []string{"X-API-Key", h.key + "é"}, 401},
		"empty x-api-key":      {"GET", "/api/v1/data/stocks/X", []string{"X-API-Key", "", "Authorization", "Bearer " + h.key}, 200},
		"viewer may read":      {"GET", "/api/v1/data/stocks/X", []string{"X-API-Key", viewer}, 200},
		"viewer may not trade": {"POST", "/api/v1/orders", []string{"X-API-Key", viewer}, 403},
		"viewer not admin":     {"DELETE", "/api/v1/data/cache", []string{"X-API-Key", viewer}, 403},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp := h.do(t, tc.method, tc.path, "", tc.hdr...)
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want == 401 {
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
				decodeProblem(t, resp)
			}
		})
	}
	// The expired key: its expiry is in whole seconds; wait it out (a deadline, not an assertion).
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := h.do(t, "GET", "/api/v1/data/stocks/X", "", "X-API-Key", expired)
		if resp.StatusCode == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("expired key still admitted: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestFunctionSeesPrincipalAndNoSpoofedIdentity(t *testing.T) {
	t.Parallel()
	type seen struct {
		p        *auth.Principal
		tenantID string
	}
	got := make(chan seen, 1)
	var verifier atomic.Pointer[auth.Verifier]
	fn := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{auth.PrincipalFromContext(r.Context()), r.Header.Get("X-Tenant-Id")}
	})
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		auth.Middleware(verifier.Load())(auth.Require("trader", "viewer", "admin")(fn)).ServeHTTP(w, r)
	})
	h := newHarness(t, dial, gateway.Config{}, nil)
	verifier.Store(auth.NewVerifier(h.signer.PublicKey(), "data-stocks"))
	resp := h.do(t, "GET", "/api/v1/data/stocks/7203.T", h.key, "X-Tenant-Id", "other-tenant", auth.InternalTokenHeader, "forged")
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
	s := <-got
	if s.p == nil || s.p.Tenant != "t1" || s.p.Subject != "tester" || !s.p.HasAnyRole([]string{"trader"}) || s.p.Method != auth.MethodAPIKey {
		t.Fatalf("function saw principal %+v", s.p)
	}
	if s.tenantID != "" {
		t.Errorf("spoofed X-Tenant-Id reached the function: %q", s.tenantID)
	}
	// A token for data-stocks is refused by another function.
	other := auth.NewVerifier(h.signer.PublicKey(), "data-cache")
	tok, _ := h.signer.Mint(s.p, "data-stocks")
	if _, err := other.Verify(tok); err == nil {
		t.Error("a token for data-stocks was accepted by data-cache")
	}
}

func TestRateLimitHeadersAnd429(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	h := newHarness(t, dial, gateway.Config{RateLimit: gateway.Limit{Rate: 2, Burst: 2, Period: time.Minute}}, nil)
	var last *http.Response
	for i := 0; i < 3; i++ {
		last = h.do(t, "GET", "/api/v1/data/stocks/X", h.key)
	}
	if last.StatusCode != 429 || last.Header.Get("Retry-After") == "" || last.Header.Get("X-Ratelimit-Remaining") != "0" {
		t.Fatalf("third call: %d Retry-After %q remaining %q", last.StatusCode, last.Header.Get("Retry-After"), last.Header.Get("X-Ratelimit-Remaining"))
	}
	if p := last.Header.Get("Ratelimit-Policy"); p != `"default";q=2;w=60` {
		t.Errorf("RateLimit-Policy %q", p)
	}
	decodeProblem(t, last)
	// Another caller has its own budget.
	if resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.newKey(t, "t1", "viewer")); resp.StatusCode != 200 {
		t.Fatalf("other key: %d", resp.StatusCode)
	}
}

func TestDailyQuota(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	h := newHarness(t, dial, gateway.Config{DailyQuota: 2}, nil)
	for i := 0; i < 2; i++ {
		if resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key); resp.StatusCode != 200 {
			t.Fatalf("call %d: %d", i, resp.StatusCode)
		}
	}
	resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key)
	if resp.StatusCode != 429 || resp.Header.Get("X-Quota-Remaining") != "0" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("over quota: %d %v", resp.StatusCode, resp.Header)
	}
}

// TestLimiterWhenRedisDies kills the real redis-server: fail-open routes keep answering under
// the local limiter, fail-closed routes answer 503 with Retry-After, and once Redis is back the
// limiter uses it again.
func TestLimiterWhenRedisDies(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	h := newHarness(t, dial, gateway.Config{RateLimit: gateway.Limit{Rate: 1000, Burst: 1000, Period: time.Second}}, nil)
	h.keys.CacheTTL = time.Minute // a key seen before the outage keeps working through it
	if resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key); resp.StatusCode != 200 {
		t.Fatalf("before: %d", resp.StatusCode)
	}
	h.do(t, "POST", "/api/v1/orders", h.key)
	h.redis.Kill()
	for i := 0; i < 20; i++ {
		resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key)
		if resp.StatusCode != 200 {
			t.Fatalf("fail-open route during outage: %d", resp.StatusCode)
		}
		if resp.Header.Get("X-Ratelimit-Remaining") != "" {
			t.Fatal("rate-limit headers claimed from a dead Redis")
		}
	}
	resp := h.do(t, "POST", "/api/v1/orders", h.key)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("fail-closed route during outage: %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	decodeProblem(t, resp)
	h.redis.Restart() // empty data: the key comes back from the in-process cache
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key)
		if resp.StatusCode == 200 && resp.Header.Get("X-Ratelimit-Remaining") != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("limiter did not return to Redis: %d", resp.StatusCode)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRetriesOnlyWhenSafe(t *testing.T) {
	t.Parallel()
	var gets, posts, keyed atomic.Int64
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "GET":
			if gets.Add(1) < 3 {
				w.WriteHeader(503)
				return
			}
		case r.Header.Get("Idempotency-Key") != "":
			b, _ := io.ReadAll(r.Body)
			if string(b) != `{"qty":100}` {
				t.Errorf("retried body %q", b)
			}
			if keyed.Add(1) < 2 {
				w.WriteHeader(502)
				return
			}
		default:
			posts.Add(1)
			w.WriteHeader(503)
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
	h := newHarness(t, dial, gateway.Config{RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond}, nil)
	if resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key); resp.StatusCode != 200 || gets.Load() != 3 {
		t.Fatalf("idempotent GET: %d after %d calls", resp.StatusCode, gets.Load())
	}
	if resp := h.do(t, "POST", "/api/v1/orders", h.key); resp.StatusCode != 503 || posts.Load() != 1 {
		t.Fatalf("POST without Idempotency-Key: %d after %d calls (must not retry)", resp.StatusCode, posts.Load())
	}
	req, _ := http.NewRequest("POST", h.srv.URL+"/api/v1/orders", strings.NewReader(`{"qty":100}`))
	req.Header.Set("Authorization", "Bearer "+h.key)
	req.Header.Set("Idempotency-Key", "order-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || keyed.Load() != 2 {
		t.Fatalf("POST with Idempotency-Key: %d after %d calls", resp.StatusCode, keyed.Load())
	}
}

func TestCircuitBreakerOpens(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.WriteHeader(500)
	})
	cfg := gateway.Config{}
	cfg.Breaker.MinRequests = 5
	cfg.Breaker.OpenFor = time.Minute
	h := newHarness(t, dial, cfg, nil)
	for i := 0; i < 5; i++ {
		if resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key); resp.StatusCode != 500 {
			t.Fatalf("call %d: %d", i, resp.StatusCode)
		}
	}
	before := calls.Load()
	resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "60" {
		t.Fatalf("open breaker answered %d Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if p := decodeProblem(t, resp); !strings.Contains(p.Detail, "circuit open") {
		t.Errorf("detail %q", p.Detail)
	}
	if calls.Load() != before {
		t.Error("an open breaker let a call through")
	}
	// The breaker is per upstream: data-cache is untouched.
	if resp := h.do(t, "DELETE", "/api/v1/data/cache", h.key); resp.StatusCode != 500 {
		t.Fatalf("other upstream: %d", resp.StatusCode)
	}
}

func TestBulkheadRejectsAtOnce(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 1)
	release := make(chan struct{})
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
	})
	h := newHarness(t, dial, gateway.Config{MaxConcurrent: 1}, nil)
	done := make(chan int)
	go func() {
		req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/data/stocks/A", nil)
		req.Header.Set("X-API-Key", h.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- 0
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	<-entered
	resp := h.do(t, "GET", "/api/v1/data/stocks/B", h.key)
	close(release)
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("second concurrent call: %d", resp.StatusCode)
	}
	if code := <-done; code != 200 {
		t.Fatalf("first call: %d", code)
	}
}

func TestResponseCache(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	gate := make(chan struct{})
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			<-gate // hold the first miss so that the others pile up behind it
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"q":"`+r.URL.RawQuery+`"}`)
	})
	routes := []gateway.Route{{Method: "GET", Path: "/api/v1/data/stocks/{symbol}", Function: "data-stocks", Roles: []string{"viewer"}, Idempotent: true, CacheTTL: time.Minute}}
	h := newHarness(t, dial, gateway.Config{}, routes)
	k1 := h.newKey(t, "t1", "viewer")
	k2 := h.newKey(t, "t2", "viewer")

	// Stampede: 10 concurrent misses, one upstream call.
	var wg sync.WaitGroup
	results := make(chan string, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/data/stocks/A?p=1", nil)
			req.Header.Set("X-API-Key", k1)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				results <- err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			results <- resp.Header.Get("X-Cache") + " " + string(b)
		}()
	}
	time.Sleep(100 * time.Millisecond) // let the followers reach the single flight (not asserted)
	close(gate)
	wg.Wait()
	close(results)
	for r := range results {
		if !strings.HasSuffix(r, `{"q":"p=1"}`) {
			t.Errorf("stampede answer %q", r)
		}
	}
	if n := calls.Load(); n > 2 {
		t.Errorf("%d upstream calls for 10 concurrent misses", n)
	}
	before := calls.Load()
	resp := h.do(t, "GET", "/api/v1/data/stocks/A?p=1", k1)
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("X-Cache") != "HIT" || string(b) != `{"q":"p=1"}` || resp.Header.Get("Content-Type") != "application/json" || calls.Load() != before {
		t.Fatalf("repeat: X-Cache %q body %s", resp.Header.Get("X-Cache"), b)
	}
	if resp := h.do(t, "GET", "/api/v1/data/stocks/A?p=2", k1); resp.Header.Get("X-Cache") != "MISS" {
		t.Error("another query was served from cache")
	}
	if resp := h.do(t, "GET", "/api/v1/data/stocks/A?p=1", k2); resp.Header.Get("X-Cache") != "MISS" {
		t.Error("another tenant was served tenant t1's cached answer")
	}
	if resp := h.do(t, "GET", "/api/v1/data/stocks/A?p=1", k1, "Cache-Control", "no-cache"); resp.Header.Get("X-Cache") != "MISS" {
		t.Error("Cache-Control: no-cache was served from cache")
	}
}

func TestAdminKeyLifecycle(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	h := newHarness(t, dial, gateway.Config{}, nil)
	call := func(method, path, key, body string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
		req.Header.Set("X-API-Key", key)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, b := call("POST", "/api/v1/gateway/keys", h.key, `{"owner":"alice","roles":["viewer"],"ttl_seconds":3600}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create: %d %s", resp.StatusCode, b)
	}
	var created gateway.KeyCreated
	_ = json.Unmarshal(b, &created)
	if !strings.HasPrefix(created.Key, "dt_live_"+created.Record.ID+"_") || created.Record.Tenant != "t1" || created.Record.Hash != "" {
		t.Fatalf("created %+v", created)
	}
	if resp := h.do(t, "GET", "/api/v1/data/stocks/X", created.Key); resp.StatusCode != 200 {
		t.Fatalf("new key: %d", resp.StatusCode)
	}
	if resp, _ := call("GET", "/api/v1/gateway/keys", created.Key, ""); resp.StatusCode != 403 {
		t.Fatalf("viewer listed keys: %d", resp.StatusCode)
	}
	if resp, _ := call("POST", "/api/v1/gateway/keys", h.key, `{"owner":"x","tenant":"t2","roles":["admin"]}`); resp.StatusCode != 403 {
		t.Fatalf("created a key in another tenant: %d", resp.StatusCode)
	}
	if resp, _ := call("POST", "/api/v1/gateway/keys", h.key, `{"owner":"x","roles":[]}`); resp.StatusCode != 400 {
		t.Fatalf("key without roles: %d", resp.StatusCode)
	}
	resp, b = call("GET", "/api/v1/gateway/keys", h.key, "")
	if resp.StatusCode != 200 || strings.Contains(string(b), `"hash"`) || !strings.Contains(string(b), created.Record.ID) {
		t.Fatalf("list: %d %s", resp.StatusCode, b)
	}
	// Another tenant's admin cannot see or revoke it.
	other := h.newKey(t, "t2", "admin")
	if resp, _ := call("DELETE", "/api/v1/gateway/keys/"+created.Record.ID, other, ""); resp.StatusCode != 404 {
		t.Fatalf("cross-tenant revoke: %d", resp.StatusCode)
	}
	resp, b = call("POST", "/api/v1/gateway/keys/"+created.Record.ID+"/rotate", h.key, "")
	if resp.StatusCode != 201 {
		t.Fatalf("rotate: %d %s", resp.StatusCode, b)
	}
	var rotated gateway.KeyCreated
	_ = json.Unmarshal(b, &rotated)
	if resp := h.do(t, "GET", "/api/v1/data/stocks/X", created.Key); resp.StatusCode != 401 {
		t.Fatalf("rotated-out key: %d", resp.StatusCode)
	}
	if resp := h.do(t, "GET", "/api/v1/data/stocks/X", rotated.Key); resp.StatusCode != 200 {
		t.Fatalf("rotated-in key: %d", resp.StatusCode)
	}
	if resp, _ := call("DELETE", "/api/v1/gateway/keys/"+rotated.Record.ID, h.key, ""); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp := h.do(t, "GET", "/api/v1/data/stocks/X", rotated.Key); resp.StatusCode != 401 {
		t.Fatalf("revoked key: %d", resp.StatusCode)
	}
}

func TestSLAReport(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/BAD") {
			w.WriteHeader(500)
		}
	})
	h := newHarness(t, dial, gateway.Config{}, nil)
	for i := 0; i < 3; i++ {
		h.do(t, "GET", "/api/v1/data/stocks/OK", h.key)
	}
	h.do(t, "GET", "/api/v1/data/stocks/BAD", h.key)
	viewer := h.newKey(t, "t1", "viewer")
	if resp := h.do(t, "GET", "/api/v1/gateway/sla", viewer); resp.StatusCode != 403 {
		t.Fatalf("viewer read the SLA: %d", resp.StatusCode)
	}
	resp := h.do(t, "GET", "/api/v1/gateway/sla", h.key)
	var sla gateway.SLA
	if err := json.NewDecoder(resp.Body).Decode(&sla); err != nil || resp.StatusCode != 200 {
		t.Fatalf("sla: %d %v", resp.StatusCode, err)
	}
	var found bool
	for _, r := range sla.Routes {
		if r.Route == "GET /api/v1/data/stocks/{symbol}" {
			found = true
			if r.Requests != 4 || r.Errors != 1 || r.Availability != 0.75 || r.P99ms <= 0 || r.P95ms > r.P99ms {
				t.Errorf("route %+v", r)
			}
		}
	}
	if !found || sla.Breakers["data-stocks"] != "closed" || sla.LimiterState != "redis" {
		t.Fatalf("sla %+v", sla)
	}
}

func TestHeaderHygiene(t *testing.T) {
	t.Parallel()
	var gotConn string
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		gotConn = r.Header.Get("X-Hop")
		w.Header().Set("Server", "leaky/1.0")
		w.Header().Set("X-Content-Type-Options", "sniff-me")
	})
	h := newHarness(t, dial, gateway.Config{MaxHeaderBytes: 4096, CORSOrigins: []string{"https://app.example"}}, nil)
	resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key, "Connection", "X-Hop", "X-Hop", "secret", "Origin", "https://app.example")
	if resp.StatusCode != 200 || gotConn != "" {
		t.Fatalf("status %d; hop-by-hop header reached upstream: %q", resp.StatusCode, gotConn)
	}
	if resp.Header.Get("Server") != "" || resp.Header.Values("X-Content-Type-Options")[0] != "nosniff" || len(resp.Header.Values("X-Content-Type-Options")) != 1 {
		t.Errorf("answer headers %v", resp.Header)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("CORS origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}
	big := h.do(t, "GET", "/api/v1/data/stocks/X", h.key, "X-Big", strings.Repeat("a", 5000))
	if big.StatusCode != 431 {
		t.Fatalf("oversized headers: %d", big.StatusCode)
	}
	decodeProblem(t, big)
	pre := h.do(t, "OPTIONS", "/api/v1/data/stocks/X", "", "Origin", "https://app.example", "Access-Control-Request-Method", "GET")
	if pre.StatusCode != 204 || pre.Header.Get("Access-Control-Allow-Methods") == "" {
		t.Fatalf("preflight %d %v", pre.StatusCode, pre.Header)
	}
	evil := h.do(t, "GET", "/api/v1/data/stocks/X", h.key, "Origin", "https://evil.example")
	if evil.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("CORS allowed an unknown origin")
	}
}

func TestDevKeyIsStable(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	h := newHarness(t, dial, gateway.Config{}, nil)
	ctx := context.Background()
	k1, err := gateway.EnsureDevKey(ctx, h.rdb, h.keys)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := gateway.EnsureDevKey(ctx, h.rdb, h.keys)
	if err != nil || k1 != k2 {
		t.Fatalf("second call %q, %v; want the same key", k2, err)
	}
	if resp := h.do(t, "DELETE", "/api/v1/data/cache", k1); resp.StatusCode != 200 {
		t.Fatalf("dev key as admin: %d", resp.StatusCode)
	}
	_, id, _, _ := auth.ParseAPIKey(k1)
	_, _ = h.keys.Revoke(ctx, id)
	k3, err := gateway.EnsureDevKey(ctx, h.rdb, h.keys)
	if err != nil || k3 == k1 {
		t.Fatalf("a revoked dev key was reused: %v", err)
	}
}
