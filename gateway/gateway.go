// Package gateway is the platform's one public entry under /api/v1. Each request passes the
// chain of ARCHITECTURE.md §8, outside in: request id, access log, metrics and the SLA window
// (plus the OTel server span, added by shared/runtime) → header and body limits (body.go)
// and identity-header stripping → CORS and security headers → route match → authentication
// (API key or JWT) → authorisation (roles per route; deny by default) → rate limit and
// daily and monthly quotas (Redis GCRA with a bounded local fallback; quota counters in
// Redis) → response cache (GET) → bulkhead
// → proxy to the function by its Knative host (or to its instances from the registry,
// balanced and health-checked: see registry.go, balance.go, health.go), through a transport
// with timeout, retries for idempotent calls under a budget (a retry goes to another
// instance), and a circuit breaker per upstream; the function receives a short-lived signed
// identity token instead of the caller's credentials.
//
// The per-route steps run in one handler (route.ServeHTTP) with every policy resolved when the
// gateway is built, so the hot path does no map lookups and few allocations.
package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/metric"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/resilience"
	"github.com/day-trade/platform/shared/store"
)

// Limit is a GCRA rate: Rate requests per Period with bursts of up to Burst.
type Limit struct {
	Rate   int
	Burst  int
	Period time.Duration
}

func (l Limit) zero() bool { return l.Rate <= 0 }

// FailMode says what a route does while the rate limiter's Redis is unreachable.
type FailMode string

const (
	// FailAuto is FailOpen for idempotent routes and FailClosed for the others.
	FailAuto FailMode = ""
	// FailOpen admits requests under a local limiter of Limit ÷ Replicas per gateway.
	FailOpen FailMode = "open"
	// FailClosed refuses with 503 and Retry-After.
	FailClosed FailMode = "closed"
)

// Route sends one method and path to one function, with its policy.
type Route struct {
	Method     string
	Path       string // chi pattern, served unchanged by the function
	Function   string // the function's catalog name
	Roles      []string
	Idempotent bool
	// CacheTTL caches successful GET answers per tenant and query; 0 disables.
	CacheTTL time.Duration
	// RateLimit overrides Config.RateLimit for this route.
	RateLimit Limit
	// TenantRateLimit overrides Config.TenantRateLimit for this route.
	TenantRateLimit Limit
	// OnLimiterDown chooses fail-open or fail-closed while Redis is unreachable.
	OnLimiterDown FailMode
	// DailyQuota caps a caller's requests to this route per UTC day; 0 = Config.DailyQuota.
	DailyQuota int
	// MonthlyQuota caps a caller's requests to this route per UTC calendar month; 0 =
	// Config.MonthlyQuota.
	MonthlyQuota int
	// Timeout, when set, bounds the route below Config.UpstreamTimeout.
	Timeout time.Duration
	// Transform rewrites the path and edits headers on the way up and down (routes file).
	Transform *Transform
	// Composite makes this an aggregation route (Function empty); see aggregate.go.
	Composite *Composite
	// Balance chooses among the function's instances for this route (default Config.Balance).
	Balance BalancePolicy
}

// RoutesFromCatalog is the default route table: every HTTP route of every function.
func RoutesFromCatalog(fs []functions.Function) []Route {
	var rs []Route
	for _, f := range fs {
		if f.Kind == functions.KindGateway {
			continue // the gateway's own routes are served here, not proxied
		}
		for _, r := range f.Routes {
			rs = append(rs, Route{Method: r.Method, Path: r.Path, Function: f.Name, Roles: r.Roles,
				Idempotent: r.Idempotent, CacheTTL: r.CacheTTL})
		}
	}
	return rs
}

// Config is the gateway's policy. Zero values get the defaults noted.
type Config struct {
	// Namespace of the functions (hosts are <fn>.<ns>.svc.cluster.local).
	Namespace string
	// UpstreamTimeout bounds one request to a function, retries included (default 30s).
	UpstreamTimeout time.Duration

	// RateLimit is every route's limit per caller unless the route sets one (default 100/s,
	// burst 200). Replicas divides it for the local fallback limiter (default 1).
	RateLimit Limit
	Replicas  int
	// TenantRateLimit, when set, is every route's limit per tenant as well: all of a tenant's
	// keys and subjects together, so that minting more keys does not raise the tenant's
	// share (zero = none; a route may set its own).
	TenantRateLimit Limit
	// DailyQuota caps a caller's requests per route per UTC day, MonthlyQuota per UTC
	// calendar month (0 = none). Quotas are counted apart from the rate limit (ratelimit.go).
	DailyQuota   int
	MonthlyQuota int

	// Retries: at most RetryAttempts tries of an idempotent call (default 3), backoff from
	// RetryBase to RetryMax, retries capped at RetryBudget of requests (default 0.2).
	RetryAttempts int
	RetryBase     time.Duration
	RetryMax      time.Duration
	RetryBudget   float64
	// Breaker configures each upstream's circuit breaker.
	Breaker resilience.BreakerSettings
	// MaxConcurrent caps in-flight requests per upstream (default 512; <0 unlimited).
	MaxConcurrent int

	// CacheMaxBody is the largest answer the response cache stores (default 1 MiB).
	CacheMaxBody int

	// MaxHeaderBytes bounds all request headers together (431; default 32 KiB).
	MaxHeaderBytes int
	// MaxBodyBytes bounds a request body (413; default 1 MiB, httpx.DefaultMaxBody): a
	// declared Content-Length over it is refused before anything else, and a body of unknown
	// length (chunked) is read whole, up to it, before it is forwarded.
	MaxBodyBytes int64
	// CORS origins allowed to call the API from a browser ("*" = any, without credentials).
	CORSOrigins []string
	// HSTS adds Strict-Transport-Security (set when TLS ends in front of the gateway).
	HSTS bool

	// SLAWindow is the rolling window of GET /api/v1/gateway/sla (default 5m).
	SLAWindow time.Duration

	// Balance is every upstream's load-balancing policy unless a route sets its own (default
	// Weighted). Registry and Health configure the dynamic registry of instances and their
	// health checks (registry.go, health.go).
	Balance  BalancePolicy
	Registry RegistryConfig
	Health   HealthConfig
}

func (c *Config) defaults() {
	if c.UpstreamTimeout <= 0 {
		c.UpstreamTimeout = 30 * time.Second
	}
	if c.RateLimit.zero() {
		c.RateLimit = Limit{Rate: 100, Burst: 200, Period: time.Second}
	}
	if c.RateLimit.Period <= 0 {
		c.RateLimit.Period = time.Second
	}
	if c.RateLimit.Burst <= 0 {
		c.RateLimit.Burst = c.RateLimit.Rate
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.RetryAttempts <= 0 {
		c.RetryAttempts = 3
	}
	if c.RetryBase <= 0 {
		c.RetryBase = 25 * time.Millisecond
	}
	if c.RetryMax <= 0 {
		c.RetryMax = 500 * time.Millisecond
	}
	if c.RetryBudget <= 0 {
		c.RetryBudget = 0.2
	}
	if c.MaxConcurrent == 0 {
		c.MaxConcurrent = 512
	}
	if c.CacheMaxBody <= 0 {
		c.CacheMaxBody = 1 << 20
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = 32 << 10
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = httpx.DefaultMaxBody
	}
	if c.SLAWindow <= 0 {
		c.SLAWindow = 5 * time.Minute
	}
	if c.Balance == BalanceDefault {
		c.Balance = Weighted
	}
	c.Registry.defaults()
	c.Health.defaults()
}

// Deps are the gateway's collaborators.
type Deps struct {
	Log *slog.Logger
	// AccessLog receives the one line per request (default Log). cmd/gateway gives it a
	// buffered writer (telemetry.BufferedWriter), so that the line costs no write(2) on the
	// request's path.
	AccessLog *slog.Logger
	Transport http.RoundTripper // to the functions (wrap with otelhttp for client spans)
	// Redis holds API keys, rate-limit cells, quotas and cached answers; required.
	Redis redis.UniversalClient
	// Keys authenticates API keys (default auth.NewKeyStore(Redis, gw keys)).
	Keys *auth.KeyStore
	// JWT, when set, accepts bearer JWTs.
	JWT *auth.JWTVerifier
	// Signer mints the identity token sent to functions; required.
	Signer *auth.Signer
	// Meter records the gateway's metrics (nil: not recorded).
	Meter metric.MeterProvider
}

// Gateway is the handler.
type Gateway struct {
	cfg     Config
	log     *slog.Logger
	access  *slog.Logger
	deps    Deps
	router  atomic.Pointer[chi.Mux] // swapped whole by Reload; in-flight requests keep the old one
	reload  sync.Mutex
	metrics *metrics
	sla     *slaBook
	limiter *limiter
	cache   *responseCache
	ups     map[string]*upstream
	sec     *security
	disc    discovery
}

// Keys is the gateway's Redis key space.
var Keys = store.NewKeys("gw")

// New builds the gateway for routes.
func New(cfg Config, routes []Route, d Deps) (*Gateway, error) {
	cfg.defaults()
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.AccessLog == nil {
		d.AccessLog = d.Log
	}
	if d.Redis == nil || d.Signer == nil || d.Transport == nil {
		return nil, errors.New("gateway: Redis, Signer and Transport are required")
	}
	if d.Keys == nil {
		d.Keys = auth.NewKeyStore(d.Redis, Keys)
	}
	g := &Gateway{cfg: cfg, log: d.Log, access: d.AccessLog, deps: d, ups: map[string]*upstream{}}
	g.metrics = newMetrics(d.Meter, g)
	g.sla = newSLABook(cfg.SLAWindow)
	g.limiter = newLimiter(redis_rate.NewLimiter(d.Redis), d.Redis, cfg.Replicas, d.Log, g.metrics)
	g.cache = newResponseCache(d.Redis, cfg.CacheMaxBody, d.Log)
	g.sec = newSecurity(cfg)
	if _, err := ParseBalancePolicy(string(cfg.Balance)); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	if err := g.initDiscovery(); err != nil {
		return nil, err
	}

	r, err := g.buildRouter(routes)
	if err != nil {
		return nil, err
	}
	g.router.Store(r)
	g.publishUpstreams()
	return g, nil
}

// buildRouter builds the route table: routes plus the gateway's own API.
func (g *Gateway) buildRouter(routes []Route) (*chi.Mux, error) {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	seen := map[string]bool{}
	for _, rt := range append(slices.Clone(routes), g.ownRoutes()...) {
		key := rt.Method + " " + rt.Path
		if seen[key] {
			return nil, fmt.Errorf("gateway: route %s declared twice", key)
		}
		seen[key] = true
		h, err := g.buildRoute(rt)
		if err != nil {
			return nil, err
		}
		r.Method(rt.Method, rt.Path, h)
	}
	if seen[http.MethodGet+" "+PathOpenAPI] {
		return nil, fmt.Errorf("gateway: route GET %s is the gateway's", PathOpenAPI)
	}
	doc, err := OpenAPIDocument(routes)
	if err != nil {
		return nil, err
	}
	r.Method(http.MethodGet, PathOpenAPI, openAPIHandler(doc)) // public: see PathOpenAPI
	return r, nil
}

func (g *Gateway) upstreamFor(function string) *upstream {
	u, ok := g.ups[function]
	if !ok {
		u = newUpstream(g, function)
		g.ups[function] = u
	}
	return u
}

// ServeHTTP runs the outer chain, then the route's.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	if g.sec.admit(sw, r) {
		g.router.Load().ServeHTTP(sw, r)
	}
	d := time.Since(start)
	if sw.status == 0 {
		sw.status = http.StatusOK
	}
	g.metrics.request(r.Context(), sw.route, sw.status, d)
	if sw.route != nil {
		g.sla.record(sw.route.sla, sw.status, d, start)
	}
	g.accessLog(r, sw, d)
}

func (g *Gateway) accessLog(r *http.Request, sw *statusWriter, d time.Duration) {
	lv := slog.LevelInfo
	if sw.status >= 500 {
		lv = slog.LevelWarn
	}
	if !g.access.Enabled(r.Context(), lv) {
		return
	}
	route, tenant := "", ""
	if sw.route != nil {
		route = sw.route.name
	}
	if sw.principal != nil {
		tenant = sw.principal.Tenant
	}
	// Built here rather than with LogAttrs, which spends a runtime.Callers per line on a
	// source location this log never prints.
	rec := slog.NewRecord(time.Now(), lv, "access", 0)
	rec.AddAttrs(
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sw.status),
		slog.Int64("bytes", sw.written), slog.Float64("ms", float64(d.Microseconds())/1000),
		slog.String("request_id", httpx.RequestIDFromContext(r.Context())), slog.String("route", route),
		slog.String("tenant", tenant), slog.String("cache", sw.cache),
		slog.Float64("upstream_ms", float64(sw.upstream.Microseconds())/1000))
	_ = g.access.Handler().Handle(r.Context(), rec)
}

// statusWriter records what the chain needs after the answer: status, size, matched route,
// caller and cache outcome. Unwrap keeps Flush and Hijack reachable (http.ResponseController).
type statusWriter struct {
	http.ResponseWriter
	status    int
	written   int64
	route     *route
	principal *auth.Principal
	cache     string
	upstream  time.Duration // waiting for upstream answers (proxy.go)
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets streamed answers through (ReverseProxy flushes via ResponseController too).
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func writerState(w http.ResponseWriter) *statusWriter {
	sw, _ := w.(*statusWriter)
	return sw
}
