package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
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

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/gateway/registry"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// lbRoutes are two routes to the same function with different policies, plus a POST.
var lbRoutes = []gateway.Route{
	{Method: "GET", Path: "/api/v1/data/stocks/{symbol}", Function: "data-stocks", Roles: []string{"viewer", "trader", "admin"}, Idempotent: true},
	{Method: "GET", Path: "/api/v1/rr/{symbol}", Function: "data-stocks", Roles: []string{"viewer", "trader", "admin"}, Idempotent: true, Balance: gateway.RoundRobin},
	{Method: "GET", Path: "/api/v1/lo/{symbol}", Function: "data-stocks", Roles: []string{"viewer", "trader", "admin"}, Idempotent: true, Balance: gateway.LeastOutstanding},
	{Method: "POST", Path: "/api/v1/orders", Function: "execution-trade", Roles: []string{"trader"}},
}

// lbHarness is a gateway with its registry loop running, a catalog server (what the Knative
// host reaches), an admin key and a log the test can read.
type lbHarness struct {
	*harness
	g       *gateway.Gateway
	log     *syncBuffer
	catalog *server
	sent    *hostRecorder
}

// hostRecorder is the gateway's transport, recording every host it was asked to reach
// (health checks apart).
type hostRecorder struct {
	next  http.RoundTripper
	mu    sync.Mutex
	hosts map[string]int
}

func (h *hostRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	if !strings.HasPrefix(r.URL.Path, "/health/") {
		h.mu.Lock()
		h.hosts[r.URL.Host]++
		h.mu.Unlock()
	}
	return h.next.RoundTrip(r)
}

func (h *hostRecorder) count(host string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hosts[host]
}

func (h *hostRecorder) any(pred func(string) bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for host := range h.hosts {
		if pred(host) {
			return true
		}
	}
	return false
}

func newLB(t *testing.T, cfg gateway.Config, opts ...func(*gateway.Deps)) *lbHarness {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	catalog := startServer(t, "catalog", nil)
	priv, _ := auth.GenerateInternalKey()
	pk, _ := auth.ParsePrivateKey(priv)
	h := &harness{redis: rs, rdb: rdb, keys: auth.NewKeyStore(rdb, gateway.Keys), signer: auth.NewSigner(pk)}
	h.keys.CacheTTL = 0
	cfg.Namespace = "day-trade"
	if cfg.RateLimit.Rate == 0 {
		cfg.RateLimit = gateway.Limit{Rate: 1e6, Burst: 1e6}
	}
	if cfg.Registry.AllowedHosts == nil {
		cfg.Registry.AllowedHosts = []string{"127.0.0.1"}
	}
	if cfg.Registry.Poll == 0 {
		cfg.Registry.Poll = 50 * time.Millisecond
	}
	if cfg.Health.Interval == 0 {
		cfg.Health.Interval = -1 // tests of active checks turn them on
	}
	logs := &syncBuffer{}
	rec := &hostRecorder{next: gateway.NewTransport(catalog.addr()), hosts: map[string]int{}}
	deps := gateway.Deps{Log: slog.New(slog.NewJSONHandler(logs, nil)), Transport: rec, Redis: rdb, Keys: h.keys, Signer: h.signer}
	for _, o := range opts {
		o(&deps)
	}
	g, err := gateway.New(cfg, lbRoutes, deps)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { g.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	h.srv = httptest.NewServer(httpx.RequestID(g))
	t.Cleanup(h.srv.Close)
	h.key = h.newKey(t, "t1", "admin", "trader")
	return &lbHarness{harness: h, g: g, log: logs, catalog: catalog, sent: rec}
}

// server is one instance of an upstream: a real HTTP server that counts what it served and
// can be killed and started again on the same port.
type server struct {
	name  string
	mu    sync.Mutex
	srv   *httptest.Server
	hits  atomic.Int64
	delay atomic.Int64 // ns each answer waits
	t     *testing.T
	ln    string
}

func startServer(t *testing.T, name string, ln net.Listener) *server {
	t.Helper()
	s := &server{name: name, t: t}
	s.start(ln)
	t.Cleanup(s.kill)
	return s
}

func (s *server) start(ln net.Listener) {
	s.t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/health/readiness" {
			s.hits.Add(1)
		}
		if d := s.delay.Load(); d > 0 {
			time.Sleep(time.Duration(d))
		}
		w.Header().Set("X-Instance", s.name)
		_, _ = io.WriteString(w, `{"instance":"`+s.name+`"}`)
	})
	srv := httptest.NewUnstartedServer(h)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	s.mu.Lock()
	s.srv, s.ln = srv, srv.Listener.Addr().String()
	s.mu.Unlock()
}

func (s *server) addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ln
}

func (s *server) url() string { return "http://" + s.addr() }

// kill closes the listener and every connection: the port refuses from now on.
func (s *server) kill() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	srv.CloseClientConnections()
	srv.Close()
}

// restart listens on the same port again.
func (s *server) restart() {
	s.t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 100; i++ {
		if ln, err = net.Listen("tcp", s.addr()); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.start(ln)
}

// register registers s under data-stocks through the admin API.
func (h *lbHarness) register(t *testing.T, s *server, weight, ttlSeconds int) string {
	t.Helper()
	body := fmt.Sprintf(`{"url":%q,"weight":%d,"ttl_seconds":%d}`, s.url(), weight, ttlSeconds)
	resp := h.call(t, "POST", "/api/v1/gateway/upstreams/data-stocks/instances", h.key, body)
	if resp.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("register %s: %d %s", s.url(), resp.StatusCode, b)
	}
	var in struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&in)
	return in.ID
}

func (h *lbHarness) call(t *testing.T, method, path, key, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// get sends n GETs to path one after another and fails on any non-200.
func (h *lbHarness) get(t *testing.T, path string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		resp := h.call(t, "GET", path, h.key, "")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d to %s: %d %s", i, path, resp.StatusCode, b)
		}
	}
}

func (h *lbHarness) upstream(t *testing.T, name string) gateway.UpstreamView {
	t.Helper()
	resp := h.call(t, "GET", "/api/v1/gateway/upstreams", h.key, "")
	if resp.StatusCode != 200 {
		t.Fatalf("list upstreams: %d", resp.StatusCode)
	}
	var out struct{ Upstreams []gateway.UpstreamView }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	for _, u := range out.Upstreams {
		if u.Name == name {
			return u
		}
	}
	t.Fatalf("no upstream %s in %+v", name, out)
	return gateway.UpstreamView{}
}

func (h *lbHarness) stateOf(t *testing.T, s *server) string {
	t.Helper()
	for _, in := range h.upstream(t, "data-stocks").Instances {
		if in.URL == s.url() {
			return in.State
		}
	}
	return "absent"
}

func eventually(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func hits(ss ...*server) []int64 {
	out := make([]int64, len(ss))
	for i, s := range ss {
		out[i] = s.hits.Load()
	}
	return out
}

func TestCatalogHostWhenRegistryIsEmpty(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{})
	h.get(t, "/api/v1/data/stocks/7203.T", 3)
	if n := h.catalog.hits.Load(); n != 3 {
		t.Fatalf("catalog served %d of 3", n)
	}
	u := h.upstream(t, "data-stocks")
	if u.Source != "catalog" || len(u.Instances) != 1 || u.Instances[0].URL != "http://data-stocks.day-trade.svc.cluster.local" {
		t.Fatalf("upstream %+v", u)
	}
}

func TestRoundRobinSpreadsEvenly(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{})
	a, b, c := startServer(t, "a", nil), startServer(t, "b", nil), startServer(t, "c", nil)
	for _, s := range []*server{a, b, c} {
		h.register(t, s, 1, 60)
	}
	h.get(t, "/api/v1/rr/7203.T", 300)
	if got := hits(a, b, c); got[0] != 100 || got[1] != 100 || got[2] != 100 {
		t.Fatalf("round robin served %v, want 100 each", got)
	}
	if n := h.catalog.hits.Load(); n != 0 {
		t.Fatalf("the catalog host served %d while instances were registered", n)
	}
}

func TestWeightedFollowsWeights(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{}) // Weighted is the default policy
	a, b, c := startServer(t, "a", nil), startServer(t, "b", nil), startServer(t, "c", nil)
	h.register(t, a, 1, 60)
	h.register(t, b, 3, 60)
	h.register(t, c, 6, 60)
	h.get(t, "/api/v1/data/stocks/7203.T", 500) // 50 rounds of 10
	if got := hits(a, b, c); got[0] != 50 || got[1] != 150 || got[2] != 300 {
		t.Fatalf("weighted 1:3:6 served %v, want [50 150 300]", got)
	}
}

// TestLeastOutstandingAvoidsSlowInstance: with one instance answering slowly, least
// outstanding sends it a much smaller share than round robin does under the same load.
func TestLeastOutstandingAvoidsSlowInstance(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{})
	slow, f1, f2 := startServer(t, "slow", nil), startServer(t, "f1", nil), startServer(t, "f2", nil)
	// Least outstanding equalises requests in flight, so "slow" must be slow next to the
	// whole proxied round trip, which the race detector stretches.
	slow.delay.Store(int64(250 * time.Millisecond))
	for _, s := range []*server{slow, f1, f2} {
		h.register(t, s, 1, 60)
	}
	share := func(path string, each int) float64 {
		before := hits(slow, f1, f2)
		var wg sync.WaitGroup
		for w := 0; w < 6; w++ {
			wg.Go(func() { h.get(t, path, each) })
		}
		wg.Wait()
		after := hits(slow, f1, f2)
		total := (after[0] - before[0]) + (after[1] - before[1]) + (after[2] - before[2])
		return float64(after[0]-before[0]) / float64(total)
	}
	rr := share("/api/v1/rr/7203.T", 10)
	lo := share("/api/v1/lo/7203.T", 30)
	t.Logf("slow instance's share: round robin %.3f, least outstanding %.3f", rr, lo)
	if rr < 0.30 || rr > 0.37 {
		t.Fatalf("round robin gave the slow instance %.3f, want about 1/3", rr)
	}
	if lo > rr/2 {
		t.Fatalf("least outstanding gave the slow instance %.3f, not well below round robin's %.3f", lo, rr)
	}
}

// TestPassiveEjectionHidesADeadInstance: one of three instances dies; idempotent GETs keep
// succeeding (retries go to another instance), the dead one is ejected after exactly
// ConsecutiveFailures failed attempts and gets no more traffic.
func TestPassiveEjectionHidesADeadInstance(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader()
	h := newLB(t, gateway.Config{Health: gateway.HealthConfig{ConsecutiveFailures: 3, BaseEjection: time.Minute}},
		func(d *gateway.Deps) { d.Meter = sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)) })
	a, b, dead := startServer(t, "a", nil), startServer(t, "b", nil), startServer(t, "dead", nil)
	for _, s := range []*server{a, b, dead} {
		h.register(t, s, 1, 60)
	}
	h.get(t, "/api/v1/data/stocks/7203.T", 30)
	dead.kill()
	before := h.sent.count(dead.addr())
	h.get(t, "/api/v1/data/stocks/7203.T", 60) // fails the test on any non-200
	if n := h.sent.count(dead.addr()) - before; n != 3 {
		t.Fatalf("%d attempts reached the dead instance, want exactly 3 (then ejected)", n)
	}
	if st := h.stateOf(t, dead); st != "ejected" {
		t.Fatalf("dead instance is %s", st)
	}
	if !strings.Contains(h.log.String(), `"msg":"upstream instance ejected","upstream":"data-stocks","instance":"`+dead.url()+`"`) {
		t.Fatalf("no ejection log line:\n%s", h.log.String())
	}
	// The health gauge says the same, per instance.
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	ejections := int64(0)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				if m.Name == "gateway.upstream.instance.health" {
					for _, p := range d.DataPoints {
						inst, _ := p.Attributes.Value("instance")
						got[inst.AsString()] = p.Value
					}
				}
			case metricdata.Sum[int64]:
				if m.Name == "gateway.upstream.ejections" {
					for _, p := range d.DataPoints {
						ejections += p.Value
					}
				}
			}
		}
	}
	if got[dead.url()] != 0 || got[a.url()] != 1 || got[b.url()] != 1 || ejections != 1 {
		t.Fatalf("instance health %v, ejections %d", got, ejections)
	}
}

// TestEjectionCapAndGrowingTime: with two of three instances dead only one is ejected (the
// 50% cap), requests still succeed, and a repeated ejection lasts twice as long.
func TestEjectionCapAndGrowingTime(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{
		RetryAttempts: 3,
		Health:        gateway.HealthConfig{ConsecutiveFailures: 2, BaseEjection: time.Second, MaxEjection: time.Minute},
	})
	a, d1, d2 := startServer(t, "a", nil), startServer(t, "d1", nil), startServer(t, "d2", nil)
	for _, s := range []*server{a, d1, d2} {
		h.register(t, s, 1, 60)
	}
	d1.kill()
	d2.kill()
	h.get(t, "/api/v1/data/stocks/7203.T", 20)
	states := map[string]int{}
	for _, in := range h.upstream(t, "data-stocks").Instances {
		states[in.State]++
	}
	// (An ejection may have ended by now on a slow machine, so "at most one".)
	if states["ejected"] > 1 {
		t.Fatalf("states %v: more than one of three ejected", states)
	}
	if !strings.Contains(h.log.String(), `"msg":"upstream instance ejected"`) || !strings.Contains(h.log.String(), "not ejected: too many") {
		t.Fatal("want one ejection and a log line for the refused second one")
	}
	// Only d2 dead now: once ejected it comes back after its time, fails again and is ejected
	// for twice as long.
	d1.restart()
	h.get(t, "/api/v1/data/stocks/7203.T", 10)
	eventually(t, func() bool {
		h.get(t, "/api/v1/data/stocks/7203.T", 3)
		return strings.Count(h.log.String(), `"instance":"`+d2.url()+`","for":`) >= 2
	}, "d2 ejected twice")
	var fors []string
	for _, line := range strings.Split(h.log.String(), "\n") {
		if strings.Contains(line, `"msg":"upstream instance ejected"`) && strings.Contains(line, d2.url()) {
			var rec struct{ For string }
			_ = json.Unmarshal([]byte(line), &rec)
			fors = append(fors, rec.For)
		}
	}
	// d2 may or may not have been the one ejected in the first phase; what matters is that
	// each ejection of it lasts twice the one before.
	for i := 1; i < len(fors); i++ {
		prev, _ := time.ParseDuration(fors[i-1])
		cur, _ := time.ParseDuration(fors[i])
		if cur != 2*prev {
			t.Fatalf("ejection times %v: each should double", fors)
		}
	}
}

// TestActiveHealthCheckBringsInstanceBack: a killed instance fails its checks and leaves the
// rotation (no request is sent to learn it), and returns once it listens again.
func TestActiveHealthCheckBringsInstanceBack(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{Health: gateway.HealthConfig{Interval: 30 * time.Millisecond, Healthy: 2, Unhealthy: 2, ConsecutiveFailures: -1}})
	a, b := startServer(t, "a", nil), startServer(t, "b", nil)
	h.register(t, a, 1, 60)
	h.register(t, b, 1, 60)
	b.kill()
	eventually(t, func() bool { return h.stateOf(t, b) == "unhealthy" }, "b marked unhealthy")
	before := h.sent.count(b.addr())
	h.get(t, "/api/v1/data/stocks/7203.T", 20)
	if h.sent.count(b.addr()) != before {
		t.Fatal("requests went to the unhealthy instance")
	}
	b.restart()
	eventually(t, func() bool { return h.stateOf(t, b) == "healthy" }, "b healthy again")
	b.hits.Store(0)
	h.get(t, "/api/v1/data/stocks/7203.T", 20)
	if n := b.hits.Load(); n < 8 || n > 12 {
		t.Fatalf("b served %d of 20 after recovering, want about half", n)
	}
	for _, want := range []string{`"msg":"upstream instance unhealthy"`, `"msg":"upstream instance healthy again"`} {
		if !strings.Contains(h.log.String(), want) {
			t.Fatalf("no %s log line", want)
		}
	}
}

// TestHeartbeatLapseRemovesInstance: an instance whose registration is not renewed leaves the
// rotation by itself while a heartbeating one stays; when that one stops, the catalog host
// serves again.
func TestHeartbeatLapseRemovesInstance(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{})
	a, b := startServer(t, "a", nil), startServer(t, "b", nil)
	h.register(t, a, 1, 3) // three seconds, never renewed
	hbCtx, stopHeartbeat := context.WithCancel(context.Background())
	hbDone := make(chan struct{})
	go func() {
		registry.New(h.rdb, gateway.Keys).Heartbeat(hbCtx, "data-stocks", registry.Instance{URL: b.url()}, time.Second, nil)
		close(hbDone)
	}()
	t.Cleanup(func() { stopHeartbeat(); <-hbDone })
	eventually(t, func() bool { return len(h.upstream(t, "data-stocks").Instances) == 2 }, "both instances")
	eventually(t, func() bool {
		u := h.upstream(t, "data-stocks")
		return len(u.Instances) == 1 && u.Instances[0].URL == b.url()
	}, "a's registration to lapse while b's heartbeat keeps it")
	before := hits(a, b)
	h.get(t, "/api/v1/data/stocks/7203.T", 6)
	if after := hits(a, b); after[0] != before[0] || after[1] != before[1]+6 {
		t.Fatalf("after a lapsed: served %v → %v", before, after)
	}
	if !strings.Contains(h.log.String(), `"msg":"upstream instance removed","upstream":"data-stocks","instance":"`+a.url()+`"`) {
		t.Fatal("no removal log line")
	}
	stopHeartbeat()
	<-hbDone
	eventually(t, func() bool { return h.upstream(t, "data-stocks").Source == "catalog" }, "b gone after its heartbeat stopped")
	h.get(t, "/api/v1/data/stocks/7203.T", 4)
	if n := h.catalog.hits.Load(); n != 4 {
		t.Fatalf("catalog served %d of 4", n)
	}
}

func TestRoutesFileChoosesBalancePolicy(t *testing.T) {
	t.Parallel()
	known := func(string) bool { return true }
	base := []gateway.Route{{Method: "GET", Path: "/api/v1/data/stocks/{symbol}", Function: "data-stocks", Roles: []string{"viewer"}}}
	f, err := gateway.ParseRoutesFile([]byte("routes:\n  - {method: GET, path: '/api/v1/data/stocks/{symbol}', load_balancing: least_outstanding}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := gateway.MergeRoutes(base, f, known)
	if err != nil || out[0].Balance != gateway.LeastOutstanding {
		t.Fatalf("merge: %v %+v", err, out)
	}
	f, _ = gateway.ParseRoutesFile([]byte("routes:\n  - {method: GET, path: '/api/v1/data/stocks/{symbol}', load_balancing: random}\n"))
	if _, err := gateway.MergeRoutes(base, f, known); err == nil || !strings.Contains(err.Error(), "load balancing policy") {
		t.Fatalf("an unknown policy was accepted: %v", err)
	}
}
