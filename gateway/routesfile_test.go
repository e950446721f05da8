package gateway_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

var known = gateway.CatalogFunctions(functions.Catalog())

func mustMerge(t testing.TB, base []gateway.Route, yml string) []gateway.Route {
	t.Helper()
	f, err := gateway.ParseRoutesFile([]byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := gateway.MergeRoutes(base, f, known)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestRoutesFileRejectsBadFiles(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ yml, want string }{
		"unknown field":      {"routes:\n- method: GET\n  path: /api/v1/x\n  funktion: data-stocks\n", "unknown field"},
		"duplicate key":      {"routes:\n- method: GET\n  method: POST\n  path: /api/v1/x\n", "already set"},
		"number duration":    {"routes:\n- method: GET\n  path: /api/v1/data/stocks/{symbol}\n  timeout: 5\n", "duration"},
		"negative duration":  {"routes:\n- method: GET\n  path: /api/v1/data/stocks/{symbol}\n  timeout: -1s\n", "negative"},
		"unknown function":   {"routes:\n- {method: GET, path: /api/v1/x, function: evil.example.com, roles: [viewer]}\n", "unknown function"},
		"gateway itself":     {"routes:\n- {method: GET, path: /api/v1/x, function: gateway, roles: [viewer]}\n", "unknown function"},
		"no roles":           {"routes:\n- {method: GET, path: /api/v1/x, function: data-stocks}\n", "needs roles"},
		"no function":        {"routes:\n- {method: GET, path: /api/v1/x, roles: [viewer]}\n", "needs a function"},
		"bad method":         {"routes:\n- {method: TRACE, path: /api/v1/x, function: data-stocks, roles: [viewer]}\n", "method"},
		"outside api":        {"routes:\n- {method: GET, path: /admin, function: data-stocks, roles: [viewer]}\n", "under /api/v1"},
		"dot dot path":       {"routes:\n- {method: GET, path: /api/v1/../x, function: data-stocks, roles: [viewer]}\n", "under /api/v1"},
		"twice":              {"routes:\n- {method: GET, path: /api/v1/x, function: data-stocks, roles: [viewer]}\n- {method: GET, path: /api/v1/x, function: data-stocks, roles: [viewer]}\n", "twice"},
		"remove missing":     {"routes:\n- {method: GET, path: /api/v1/nothing, remove: true}\n", "no such route"},
		"identity header":    {"routes:\n- method: GET\n  path: /api/v1/data/stocks/{symbol}\n  request_headers: {set: {X-Dt-Identity: forged}}\n", "gateway's"},
		"authorization":      {"routes:\n- method: GET\n  path: /api/v1/data/stocks/{symbol}\n  request_headers: {remove: [Authorization]}\n", "gateway's"},
		"crlf value":         {"routes:\n- method: GET\n  path: /api/v1/data/stocks/{symbol}\n  response_headers: {set: {X-A: \"a\\r\\nSet-Cookie: x\"}}\n", "CR"},
		"bad header name":    {"routes:\n- method: GET\n  path: /api/v1/data/stocks/{symbol}\n  response_headers: {remove: [\"X A\"]}\n", "not a header name"},
		"rewrite param":      {"routes:\n- method: GET\n  path: /api/v1/data/stocks/{symbol}\n  rewrite: /api/v1/x/{other}\n", "not a parameter"},
		"rewrite traversal":  {"routes:\n- method: GET\n  path: /api/v1/data/stocks/{symbol}\n  rewrite: /api/v1/../admin\n", "'..'"},
		"cache on post":      {"routes:\n- {method: POST, path: /api/v1/ml/predict, cache_ttl: 10s}\n", "GET routes only"},
		"bad fail mode":      {"routes:\n- {method: POST, path: /api/v1/ml/predict, on_limiter_down: maybe}\n", "open, closed or auto"},
		"zero rate":          {"routes:\n- {method: POST, path: /api/v1/ml/predict, rate_limit: {rate: 0}}\n", "rate must be positive"},
		"zero tenant rate":   {"routes:\n- {method: POST, path: /api/v1/ml/predict, tenant_rate_limit: {rate: 0}}\n", "tenant_rate_limit: rate must be positive"},
		"negative monthly":   {"routes:\n- {method: POST, path: /api/v1/ml/predict, monthly_quota: -1}\n", "monthly_quota must not be negative"},
		"composite function": {"routes:\n- {method: GET, path: '/api/v1/overview/{symbol}', function: data-stocks}\n", "aggregation"},
		"not yaml":           {"routes: [", "routes file"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, err := gateway.ParseRoutesFile([]byte(c.yml))
			if err == nil {
				_, err = gateway.MergeRoutes(catalogRoutes(), f, known)
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestRoutesFileMergesOverTheCatalog(t *testing.T) {
	t.Parallel()
	rs := mustMerge(t, catalogRoutes(), `
routes:
  - method: GET
    path: /api/v1/data/stocks/{symbol}
    cache_ttl: 15s
    roles: [trader]
  - method: DELETE
    path: /api/v1/data/cache
    remove: true
  - method: GET
    path: /api/v1/quotes/{symbol}
    function: data-stocks
    rewrite: /api/v1/data/stocks/{symbol}
    roles: [viewer]
    idempotent: true
    timeout: 2s
    rate_limit: {rate: 5, burst: 10, period: 1s}
    tenant_rate_limit: {rate: 20, burst: 40, period: 1s}
    daily_quota: 100
    monthly_quota: 2000
    on_limiter_down: closed
`)
	find := func(m, p string) *gateway.Route {
		for i := range rs {
			if rs[i].Method == m && rs[i].Path == p {
				return &rs[i]
			}
		}
		return nil
	}
	if r := find("GET", "/api/v1/data/stocks/{symbol}"); r == nil || r.CacheTTL != 15*time.Second || len(r.Roles) != 1 || r.Function != "data-stocks" || !r.Idempotent {
		t.Errorf("changed route: %+v", r)
	}
	if find("DELETE", "/api/v1/data/cache") != nil {
		t.Error("removed route still there")
	}
	r := find("GET", "/api/v1/quotes/{symbol}")
	if r == nil || r.Timeout != 2*time.Second || r.RateLimit.Rate != 5 || r.TenantRateLimit != (gateway.Limit{Rate: 20, Burst: 40, Period: time.Second}) || r.DailyQuota != 100 || r.MonthlyQuota != 2000 || r.OnLimiterDown != gateway.FailClosed || r.Transform == nil || r.Transform.Rewrite != "/api/v1/data/stocks/{symbol}" {
		t.Errorf("added route: %+v", r)
	}
	if len(rs) != len(catalogRoutes()) {
		t.Errorf("%d routes, want %d (one removed, one added)", len(rs), len(catalogRoutes()))
	}
}

func TestRoutesFileTransformsAndPolicy(t *testing.T) {
	t.Parallel()
	type seen struct {
		path, client, debug string
	}
	got := make(chan seen, 10)
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Host, "ml-predict.") {
			<-r.Context().Done() // hangs past the route's timeout
			return
		}
		got <- seen{r.URL.RequestURI(), r.Header.Get("X-Client"), r.Header.Get("X-Debug")}
		w.Header().Set("X-Upstream", "leaky")
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	routes := mustMerge(t, catalogRoutes(), `
routes:
  - method: GET
    path: /api/v1/quotes/{symbol}
    function: data-stocks
    rewrite: /api/v1/data/stocks/{symbol}
    roles: [viewer, trader]
    request_headers: {set: {X-Client: gateway-file}, remove: [X-Debug]}
    response_headers: {set: {X-Route: quotes}, remove: [X-Upstream]}
  - method: POST
    path: /api/v1/ml/predict
    timeout: 100ms
  - method: GET
    path: /api/v1/symbols/recommend
    roles: [admin]
`)
	h := newHarness(t, dial, gateway.Config{RetryAttempts: 1}, routes)
	resp := h.do(t, "GET", "/api/v1/quotes/7203.T?period=1mo", h.key, "X-Debug", "1", "X-Client", "caller")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	s := <-got
	if s.path != "/api/v1/data/stocks/7203.T?period=1mo" || s.client != "gateway-file" || s.debug != "" {
		t.Errorf("upstream saw %+v", s)
	}
	if resp.Header.Get("X-Route") != "quotes" || resp.Header.Get("X-Upstream") != "" {
		t.Errorf("answer headers %v", resp.Header)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get(httpx.RequestIDHeader) == "" {
		t.Errorf("the chain's own headers are gone: %v", resp.Header)
	}
	// A value cannot add a path segment through the rewrite.
	h.do(t, "GET", "/api/v1/quotes/a%2F..%2Fb", h.key)
	if s := <-got; s.path != "/api/v1/data/stocks/a%2F..%2Fb" {
		t.Errorf("escaped parameter reached upstream as %q", s.path)
	}
	if resp := h.do(t, "POST", "/api/v1/ml/predict", h.key); resp.StatusCode != 504 {
		t.Errorf("route timeout: status %d, want 504", resp.StatusCode)
	}
	viewer := h.newKey(t, "t1", "viewer")
	if resp := h.do(t, "GET", "/api/v1/symbols/recommend", viewer); resp.StatusCode != 403 {
		t.Errorf("roles narrowed by the file: viewer got %d", resp.StatusCode)
	}
}

// reloadable is a harness whose gateway the test can reload.
func reloadable(t testing.TB, dial string, routes []gateway.Route) (*harness, *gateway.Gateway) {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	priv, _ := auth.GenerateInternalKey()
	pk, _ := auth.ParsePrivateKey(priv)
	h := &harness{redis: rs, rdb: rdb, keys: auth.NewKeyStore(rdb, gateway.Keys), signer: auth.NewSigner(pk)}
	g, err := gateway.New(gateway.Config{Namespace: "day-trade", RateLimit: gateway.Limit{Rate: 1e6, Burst: 1e6}}, routes,
		gateway.Deps{Transport: gateway.NewTransport(dial), Redis: rdb, Keys: h.keys, Signer: h.signer})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(httpx.RequestID(g))
	t.Cleanup(h.srv.Close)
	h.key = h.newKey(t, "t1", "admin", "trader")
	return h, g
}

// syncBuffer is a log sink safe for the watcher's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRoutesFileHotReload(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{}`) })
	path := filepath.Join(t.TempDir(), "routes.yaml")
	write := func(s string) {
		// Written aside and renamed, as editors and ConfigMap updates do: never half a file.
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	v1 := "routes:\n- {method: GET, path: '/api/v1/quotes/{symbol}', function: data-stocks, rewrite: '/api/v1/data/stocks/{symbol}', roles: [viewer, trader]}\n"
	write(v1)
	base := catalogRoutes()
	routes, err := gateway.LoadRoutesFile(path, base, known)
	if err != nil {
		t.Fatal(err)
	}
	h, g := reloadable(t, dial, routes)
	var logs syncBuffer
	w := &gateway.RoutesWatcher{G: g, Path: path, Base: base, Known: known, Log: slog.New(slog.NewTextHandler(&logs, nil))}
	hup := make(chan os.Signal, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx, 10*time.Millisecond, hup) }()

	waitStatus := func(path string, want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second) // only against a hang
		for {
			resp := h.do(t, "GET", path, h.key)
			if resp.StatusCode == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET %s still %d, want %d; log:\n%s", path, resp.StatusCode, want, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitStatus("/api/v1/quotes/7203.T", 200)
	waitStatus("/api/v1/prices/7203.T", 404)

	// A changed file is picked up by the poll.
	write("routes:\n- {method: GET, path: '/api/v1/prices/{symbol}', function: data-stocks, rewrite: '/api/v1/data/stocks/{symbol}', roles: [viewer, trader]}\n")
	waitStatus("/api/v1/prices/7203.T", 200)
	waitStatus("/api/v1/quotes/7203.T", 404)
	if !strings.Contains(logs.String(), "routes reloaded") {
		t.Errorf("no reload logged:\n%s", logs.String())
	}

	// A bad file is refused, logged, and the routes in force stay.
	write("routes:\n- {method: GET, path: '/api/v1/prices/{symbol}', function: nowhere, roles: [viewer]}\n")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "routes file refused") {
		if time.Now().After(deadline) {
			t.Fatalf("bad file not refused:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitStatus("/api/v1/prices/7203.T", 200)

	// A route to a function the gateway was not built with needs a restart, and says so.
	write("routes:\n- {method: GET, path: /api/v1/ens, function: ensemble, roles: [admin]}\n")
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "restart the gateway") {
		if time.Now().After(deadline) {
			t.Fatalf("new upstream not refused:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// SIGHUP reloads at once: a watcher that polls once an hour picks up the file on the signal.
	cancel()
	<-done
	w2 := &gateway.RoutesWatcher{G: g, Path: path, Base: base, Known: known, Log: w.Log}
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	go w2.Run(ctx2, time.Hour, hup)
	write(v1)
	hup <- syscall.SIGHUP
	waitStatus("/api/v1/quotes/7203.T", 200)
}

func TestReloadUnderLoadDropsNothing(t *testing.T) {
	t.Parallel()
	var served atomic.Int64
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		time.Sleep(time.Millisecond) // keep requests in flight across swaps
		_, _ = io.WriteString(w, `{}`)
	})
	base := catalogRoutes()
	h, g := reloadable(t, dial, base)
	files := []string{
		"routes:\n- {method: GET, path: '/api/v1/data/stocks/{symbol}', response_headers: {set: {X-Version: a}}}\n",
		"routes:\n- {method: GET, path: '/api/v1/data/stocks/{symbol}', response_headers: {set: {X-Version: b}}, timeout: 10s}\n",
	}
	var tables [][]gateway.Route
	for _, f := range files {
		tables = append(tables, mustMerge(t, base, f))
	}

	stop := make(chan struct{})
	var failures, total atomic.Int64
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 10 * time.Second}
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/data/stocks/7203.T", nil)
				req.Header.Set("X-API-Key", h.key)
				resp, err := client.Do(req)
				total.Add(1)
				if err != nil {
					failures.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failures.Add(1)
				}
			}
		})
	}
	for i := range 50 {
		for served.Load() < int64(i) { // let traffic flow between swaps
			time.Sleep(100 * time.Microsecond)
		}
		if err := g.Reload(tables[i%2]); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || total.Load() < 50 {
		t.Fatalf("%d of %d requests failed across 50 reloads", failures.Load(), total.Load())
	}
	resp := h.do(t, "GET", "/api/v1/data/stocks/7203.T", h.key)
	if v := resp.Header.Get("X-Version"); v != "b" {
		t.Fatalf("after the last reload X-Version = %q, want b", v)
	}
}

func FuzzParseRoutesFile(f *testing.F) {
	f.Add([]byte("routes:\n- {method: GET, path: '/api/v1/x/{id}', function: data-stocks, roles: [viewer], timeout: 1s}\n"))
	f.Add([]byte("routes:\n- method: GET\n  path: /api/v1/data/stocks/{symbol}\n  response_headers: {set: {X-A: b}}\n"))
	f.Add([]byte("routes: [{method: DELETE, path: /api/v1/data/cache, remove: true}]"))
	base := catalogRoutes()
	f.Fuzz(func(t *testing.T, b []byte) {
		rf, err := gateway.ParseRoutesFile(b)
		if err != nil {
			return
		}
		rs, err := gateway.MergeRoutes(base, rf, known)
		if err != nil {
			return
		}
		// Whatever merges must build, or be refused with an error: never a panic.
		for _, r := range rs {
			if r.Transform != nil {
				_ = r.Transform.Validate(r.Path)
			}
		}
	})
}
