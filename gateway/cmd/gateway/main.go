// Command gateway is the API gateway: the one public entry under /api/v1.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/gateway/registry"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/resilience"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/telemetry"
)

type cfg struct {
	config.Runtime
	config.Redis
	// PlatformMode is "local" under `make run`: a development key is created and printed.
	PlatformMode string `envconfig:"PLATFORM_MODE"`
	// UpstreamDialAddr sends every upstream connection to one address (the local platform's
	// activator); empty in a cluster, where Knative hosts resolve through DNS.
	UpstreamDialAddr string        `envconfig:"UPSTREAM_DIAL_ADDR"`
	UpstreamTimeout  time.Duration `envconfig:"UPSTREAM_TIMEOUT" default:"30s"`

	// InternalTokenKey is the base64 Ed25519 seed that signs identity tokens for functions
	// (functions get the public half as INTERNAL_TOKEN_PUBLIC_KEY). Required outside local mode.
	InternalTokenKey string `envconfig:"INTERNAL_TOKEN_KEY"`

	JWTIssuer     string        `envconfig:"JWT_ISSUER"`
	JWTAudience   []string      `envconfig:"JWT_AUDIENCE"`
	JWTJWKSURL    string        `envconfig:"JWT_JWKS_URL"`
	JWTDiscovery  bool          `envconfig:"JWT_OIDC_DISCOVERY"`
	JWTAlgorithms []string      `envconfig:"JWT_ALGORITHMS" default:"RS256,ES256,EdDSA"`
	JWTHS256Key   string        `envconfig:"JWT_HS256_SECRET"`
	JWTLeeway     time.Duration `envconfig:"JWT_LEEWAY" default:"30s"`
	JWKSRefresh   time.Duration `envconfig:"JWKS_REFRESH" default:"15m"`
	JWKSCooldown  time.Duration `envconfig:"JWKS_COOLDOWN" default:"30s"`

	APIKeyCacheTTL time.Duration `envconfig:"API_KEY_CACHE_TTL" default:"5s"`

	RateLimit  int           `envconfig:"RATE_LIMIT" default:"100"`
	RateBurst  int           `envconfig:"RATE_LIMIT_BURST" default:"200"`
	RatePeriod time.Duration `envconfig:"RATE_LIMIT_PERIOD" default:"1s"`
	Replicas   int           `envconfig:"GATEWAY_REPLICAS" default:"1"`
	// TENANT_RATE_LIMIT (0 = none) limits all of a tenant's callers together on each route.
	TenantRate    int           `envconfig:"TENANT_RATE_LIMIT" default:"0"`
	TenantBurst   int           `envconfig:"TENANT_RATE_LIMIT_BURST" default:"0"`
	DailyQuota    int           `envconfig:"DAILY_QUOTA" default:"0"`
	MonthlyQuota  int           `envconfig:"MONTHLY_QUOTA" default:"0"`
	RetryAttempts int           `envconfig:"RETRY_ATTEMPTS" default:"3"`
	RetryBudget   float64       `envconfig:"RETRY_BUDGET" default:"0.2"`
	BreakerMin    uint32        `envconfig:"BREAKER_MIN_REQUESTS" default:"20"`
	BreakerRatio  float64       `envconfig:"BREAKER_FAILURE_RATIO" default:"0.5"`
	BreakerOpen   time.Duration `envconfig:"BREAKER_OPEN_FOR" default:"5s"`
	MaxConcurrent int           `envconfig:"MAX_CONCURRENT_PER_UPSTREAM" default:"512"`
	CORSOrigins   []string      `envconfig:"CORS_ORIGINS"`
	HSTS          bool          `envconfig:"HSTS"`
	MaxHeader     int           `envconfig:"MAX_HEADER_BYTES" default:"32768"`
	SLAWindow     time.Duration `envconfig:"SLA_WINDOW" default:"5m"`

	// RoutesFile (YAML) adds routes, rewrites and per-route policy over the catalog's; it is
	// reloaded when it changes (polled every RoutesPoll) and on SIGHUP.
	RoutesFile string        `envconfig:"GATEWAY_ROUTES_FILE"`
	RoutesPoll time.Duration `envconfig:"GATEWAY_ROUTES_POLL" default:"2s"`

	// The dynamic registry of upstream instances, load balancing and health checks. Registered
	// URLs must match RegistryAllowedHosts (globs); empty means 127.0.0.1, localhost and [::1]
	// in local mode and *.svc.cluster.local otherwise.
	RegistryAllowedHosts []string      `envconfig:"GATEWAY_REGISTRY_ALLOWED_HOSTS"`
	RegistryPoll         time.Duration `envconfig:"GATEWAY_REGISTRY_POLL" default:"2s"`
	LBPolicy             string        `envconfig:"GATEWAY_LB_POLICY" default:"weighted"`
	HealthInterval       time.Duration `envconfig:"GATEWAY_HEALTH_INTERVAL" default:"10s"`
	HealthTimeout        time.Duration `envconfig:"GATEWAY_HEALTH_TIMEOUT" default:"2s"`
	HealthPath           string        `envconfig:"GATEWAY_HEALTH_PATH" default:"/health/readiness"`
	HealthyThreshold     int           `envconfig:"GATEWAY_HEALTHY_THRESHOLD" default:"2"`
	UnhealthyThreshold   int           `envconfig:"GATEWAY_UNHEALTHY_THRESHOLD" default:"3"`
	EjectAfter           int           `envconfig:"GATEWAY_EJECT_CONSECUTIVE_FAILURES" default:"5"`
	EjectBase            time.Duration `envconfig:"GATEWAY_EJECT_BASE" default:"30s"`
	EjectMax             time.Duration `envconfig:"GATEWAY_EJECT_MAX" default:"5m"`
	EjectMaxPercent      int           `envconfig:"GATEWAY_EJECT_MAX_PERCENT" default:"50"`

	// GOGC and GOMEMLIMIT are the Go runtime's own variables, read here only to know whether
	// they are set: when they are not, the gateway picks its own (gc.go).
	GOGC       string `envconfig:"GOGC"`
	GOMemLimit string `envconfig:"GOMEMLIMIT"`
}

func (c cfg) local() bool { return c.PlatformMode == "local" }

func (c cfg) Validate() error {
	var errs []error
	if !c.local() && c.InternalTokenKey == "" {
		errs = append(errs, errors.New("INTERNAL_TOKEN_KEY is required outside local mode"))
	}
	if c.RateLimit <= 0 || c.RateBurst <= 0 || c.RatePeriod <= 0 || c.Replicas <= 0 {
		errs = append(errs, errors.New("RATE_LIMIT, RATE_LIMIT_BURST, RATE_LIMIT_PERIOD and GATEWAY_REPLICAS must be positive"))
	}
	if c.TenantRate < 0 || c.TenantBurst < 0 {
		errs = append(errs, errors.New("TENANT_RATE_LIMIT and TENANT_RATE_LIMIT_BURST must not be negative"))
	}
	if _, err := gateway.ParseBalancePolicy(c.LBPolicy); err != nil {
		errs = append(errs, fmt.Errorf("GATEWAY_LB_POLICY: %w", err))
	}
	if _, err := registry.NewHostPolicy(c.RegistryAllowedHosts); err != nil {
		errs = append(errs, fmt.Errorf("GATEWAY_REGISTRY_ALLOWED_HOSTS: %w", err))
	}
	if c.EjectMaxPercent < 1 || c.EjectMaxPercent > 100 || !strings.HasPrefix(c.HealthPath, "/") {
		errs = append(errs, errors.New("GATEWAY_EJECT_MAX_PERCENT must be 1..100 and GATEWAY_HEALTH_PATH a path"))
	}
	return errors.Join(config.ValidateAll(c.Runtime, c.Redis), errors.Join(errs...))
}

func main() { runtime.Main[cfg]("gateway", builder(os.Stdout, os.Stderr)) }

// builder returns the gateway's build; stdout receives the development key in local mode,
// stderr the access log (the runtime's own log goes to stderr too).
func builder(stdout, stderr io.Writer) runtime.Build[cfg] {
	return func(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
		return build(ctx, c, d, stdout, stderr)
	}
}

func build(ctx context.Context, c *cfg, d runtime.Deps, stdout, stderr io.Writer) (runtime.Function, error) {
	gc := applyGCDefaults(c.GOGC, c.GOMemLimit, cgroupMemoryLimit)
	d.Log.Info("garbage collector", "gogc", gc.Percent, "gogc_from_env", gc.PercentFromEnv,
		"memory_limit_bytes", gc.MemoryLimit, "memory_limit_from", gc.MemoryLimitFrom)
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	var signer *auth.Signer
	if c.InternalTokenKey != "" {
		key, err := auth.ParsePrivateKey(c.InternalTokenKey)
		if err != nil {
			return runtime.Function{}, err
		}
		signer = auth.NewSigner(key)
	} else {
		priv, pub := auth.GenerateInternalKey()
		key, _ := auth.ParsePrivateKey(priv)
		signer = auth.NewSigner(key)
		d.Log.Warn("local mode without INTERNAL_TOKEN_KEY: identity tokens signed with a throw-away key", "public_key", pub)
	}
	keys := auth.NewKeyStore(rdb, gateway.Keys)
	keys.CacheTTL = c.APIKeyCacheTTL
	if c.local() {
		keys.Env = "local"
	}
	var jwtv *auth.JWTVerifier
	if c.JWTIssuer != "" || c.JWTJWKSURL != "" || c.JWTHS256Key != "" {
		jwtv, err = auth.NewJWTVerifier(auth.JWTConfig{
			Issuer: c.JWTIssuer, Audience: c.JWTAudience, Algorithms: c.JWTAlgorithms, HMACSecret: []byte(c.JWTHS256Key),
			JWKSURL: c.JWTJWKSURL, Discovery: c.JWTDiscovery, Leeway: c.JWTLeeway, RefreshEvery: c.JWKSRefresh, Cooldown: c.JWKSCooldown,
		})
		if err != nil {
			return runtime.Function{}, err
		}
		if err := jwtv.Refresh(ctx); err != nil {
			d.Log.Warn("JWKS not loaded at start; will retry on demand", "err", err)
		}
	}
	// Client spans for sampled requests only; upstream latency is the gateway's own metric.
	plain := gateway.NewTransport(c.UpstreamDialAddr)
	tr := gateway.TraceSampled(otelhttp.NewTransport(plain,
		otelhttp.WithTracerProvider(d.Telemetry.TracerProvider),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()),
		otelhttp.WithPropagators(d.Telemetry.Propagator)), plain, d.Telemetry.Propagator)
	catalog := functions.Catalog()
	base := append(gateway.RoutesFromCatalog(catalog), gateway.CompositeRoutes(catalog)...)
	routes, known := base, gateway.CatalogFunctions(catalog)
	if c.RoutesFile != "" {
		if routes, err = gateway.LoadRoutesFile(c.RoutesFile, base, known); err != nil {
			return runtime.Function{}, err // at start a bad file is fatal; on reload it is refused
		}
	}
	allowed := c.RegistryAllowedHosts
	if len(allowed) == 0 && c.local() {
		allowed = []string{"127.0.0.1", "localhost", "[::1]"}
	}
	policy, _ := gateway.ParseBalancePolicy(c.LBPolicy)
	// The access log, one line per request, is written in batches off the request's path;
	// the same JSON lines, with the runtime logger's attributes, on the same stream.
	accessOut := telemetry.NewBufferedWriter(stderr, 100*time.Millisecond)
	access := telemetry.NewLogger(accessOut, c.LogLevel, slog.String("service", c.ServiceName("gateway")),
		slog.String("revision", c.Revision), slog.String("configuration", c.Configuration))
	g, err := gateway.New(gateway.Config{
		Namespace:       c.Namespace,
		UpstreamTimeout: c.UpstreamTimeout,
		RateLimit:       gateway.Limit{Rate: c.RateLimit, Burst: c.RateBurst, Period: c.RatePeriod},
		Replicas:        c.Replicas,
		TenantRateLimit: gateway.Limit{Rate: c.TenantRate, Burst: c.TenantBurst, Period: c.RatePeriod},
		DailyQuota:      c.DailyQuota,
		MonthlyQuota:    c.MonthlyQuota,
		RetryAttempts:   c.RetryAttempts,
		RetryBudget:     c.RetryBudget,
		Breaker:         resilience.BreakerSettings{MinRequests: c.BreakerMin, FailureRatio: c.BreakerRatio, OpenFor: c.BreakerOpen},
		MaxConcurrent:   c.MaxConcurrent,
		CORSOrigins:     c.CORSOrigins,
		HSTS:            c.HSTS,
		MaxHeaderBytes:  c.MaxHeader,
		MaxBodyBytes:    c.MaxBodyBytes,
		SLAWindow:       c.SLAWindow,
		Balance:         policy,
		Registry:        gateway.RegistryConfig{AllowedHosts: allowed, Poll: c.RegistryPoll},
		Health: gateway.HealthConfig{Interval: c.HealthInterval, Timeout: c.HealthTimeout, Path: c.HealthPath,
			Healthy: c.HealthyThreshold, Unhealthy: c.UnhealthyThreshold, ConsecutiveFailures: c.EjectAfter,
			BaseEjection: c.EjectBase, MaxEjection: c.EjectMax, MaxEjectedPercent: c.EjectMaxPercent},
	}, routes, gateway.Deps{
		Log: d.Log, AccessLog: access, Transport: tr, Redis: rdb, Keys: keys, JWT: jwtv, Signer: signer, Meter: d.Telemetry.MeterProvider,
	})
	if err != nil {
		_ = accessOut.Close()
		return runtime.Function{}, err
	}
	go g.Run(ctx) // registry polling and active health checks
	if c.RoutesFile != "" {
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		w := &gateway.RoutesWatcher{G: g, Path: c.RoutesFile, Base: base, Known: known, Log: d.Log}
		go w.Run(ctx, c.RoutesPoll, hup)
	}
	if c.local() {
		printDevKey(ctx, c, d, rdb, keys, stdout)
	}
	return runtime.Function{
		Handler:    g,
		OwnMetrics: true, // per-route request and latency metrics in gateway/metrics.go
		Checks:     map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:       func(context.Context) error { return errors.Join(accessOut.Close(), rdb.Close()) },
	}, nil
}

// printDevKey prints the local development key on a line starting "API key:" and a curl line
// under it, in one write (the local platform prints these two lines of the gateway's as they
// are, without its "gateway | " prefix: knative/local/output.go). Never called outside local
// mode.
func printDevKey(ctx context.Context, c *cfg, d runtime.Deps, rdb *redis.Client, keys *auth.KeyStore, stdout io.Writer) {
	var key string
	var err error
	for i := 0; i < 20; i++ { // Redis may still be starting with the platform
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		key, err = gateway.EnsureDevKey(sctx, rdb, keys)
		cancel()
		if err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		d.Log.Warn("no development API key", "err", err)
		return
	}
	host := c.BindAddr
	if host == "" || host == "0.0.0.0" {
		host = "127.0.0.1"
	}
	base := "http://" + host + ":" + strconv.Itoa(c.Port)
	fmt.Fprintf(stdout, "API key: %s  (tenant %s, roles admin,trader; local mode only)\n"+
		"  curl -H 'Authorization: Bearer %s' '%s/api/v1/data/stocks/7203.T?period=1mo&interval=1d'\n",
		key, gateway.DevKeyTenant, key, base)
}
