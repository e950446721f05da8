// Package runtime turns a function's http.Handler into a process that honours the Knative
// runtime contract: it listens on $PORT, names itself from K_SERVICE/K_REVISION/
// K_CONFIGURATION in logs and telemetry, serves /health/readiness (running the function's
// checkers) and /health/liveness, exposes /metrics, bounds headers and bodies, and drains
// in-flight requests on SIGTERM within a bounded time. When AWS_LAMBDA_RUNTIME_API is set the
// same handler is handed to a Lambda adapter instead (see Function.Lambda).
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/telemetry"
)

// Checker is a readiness check, e.g. a Redis ping or "model loaded".
type Checker interface {
	CheckHealth(ctx context.Context) error
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(ctx context.Context) error

// CheckHealth calls f.
func (f CheckerFunc) CheckHealth(ctx context.Context) error { return f(ctx) }

// Function is what a function's main hands to the runtime.
type Function struct {
	Handler http.Handler
	// Checks run on every /health/readiness call; all must pass.
	Checks map[string]Checker
	// Stop runs after in-flight requests have drained (close clients, flush).
	Stop func(ctx context.Context) error
	// Lambda serves h as an AWS Lambda function; nil means this binary has no Lambda mode.
	// It is used only when AWS_LAMBDA_RUNTIME_API is set.
	Lambda func(ctx context.Context, h http.Handler) error
	// OwnMetrics says the handler records its own request metrics (the gateway does, per
	// route): the runtime then adds only server spans (telemetry.ServerSpans), not otelhttp's
	// handler with its per-request http.server metrics.
	OwnMetrics bool
}

// Deps are the process-wide dependencies the runtime builds for a function.
type Deps struct {
	Log       *slog.Logger
	Telemetry *telemetry.Telemetry
	Runtime   config.Runtime
}

// RuntimeConfig is implemented by config structs that embed config.Runtime.
type RuntimeConfig interface {
	RuntimeSettings() config.Runtime
}

// Build constructs a function from its loaded config and the runtime's dependencies.
type Build[C any] func(ctx context.Context, cfg *C, deps Deps) (Function, error)

// Main is the whole body of a function's main: load config from the environment, set up
// telemetry and logs, build the function, serve until SIGTERM or Ctrl-C, exit non-zero on error.
func Main[C any, PC interface {
	*C
	RuntimeConfig
}](name string, build Build[C]) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run[C, PC](ctx, name, build); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// Run is Main without the process exit, for tests.
func Run[C any, PC interface {
	*C
	RuntimeConfig
}](ctx context.Context, name string, build Build[C]) error {
	started := time.Now()
	cfg := new(C)
	if err := config.Load(cfg); err != nil {
		return err
	}
	rt := PC(cfg).RuntimeSettings()
	if err := rt.Validate(); err != nil {
		return err
	}
	svc := rt.ServiceName(name)
	log := telemetry.NewLogger(os.Stderr, rt.LogLevel,
		slog.String("service", svc), slog.String("revision", rt.Revision), slog.String("configuration", rt.Configuration))
	tel, err := telemetry.Setup(ctx, telemetry.Options{
		Service: svc, Revision: rt.Revision, Configuration: rt.Configuration,
		Namespace: rt.Namespace, OTLPEndpoint: rt.OTLPEndpoint,
	})
	if err != nil {
		return err
	}
	tel.Install()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = tel.Shutdown(sctx)
	}()
	fn, err := build(ctx, cfg, Deps{Log: log, Telemetry: tel, Runtime: rt})
	if err != nil {
		return fmt.Errorf("build %s: %w", svc, err)
	}
	if rt.InternalTokenPublicKey != "" {
		// Identity reaches a function only as a token the gateway signed for it (audience =
		// this service); a bad token is a 401, a request without one has no principal.
		pub, err := auth.ParsePublicKey(rt.InternalTokenPublicKey)
		if err != nil {
			return fmt.Errorf("INTERNAL_TOKEN_PUBLIC_KEY: %w", err)
		}
		fn.Handler = auth.Middleware(auth.NewVerifier(pub, svc))(fn.Handler)
	}
	if rt.LambdaRuntimeAPI != "" {
		if fn.Lambda == nil {
			fn.Lambda = LambdaServer(LambdaOptions{EventPaths: rt.LambdaEventPaths, Log: log})
		}
		return fn.Lambda(ctx, NewHandler(rt, fn, tel, log, nil))
	}
	return Serve(ctx, rt, fn, tel, log, started)
}

// Serve listens on rt's port and serves fn until ctx ends, then drains.
func Serve(ctx context.Context, rt config.Runtime, fn Function, tel *telemetry.Telemetry, log *slog.Logger, started time.Time) error {
	addr := net.JoinHostPort(rt.BindAddr, strconv.Itoa(rt.Port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	var draining atomic.Bool
	srv := &http.Server{
		Handler:           NewHandler(rt, fn, tel, log, &draining),
		ReadHeaderTimeout: 5 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "startup_ms", float64(time.Since(started).Microseconds())/1000)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Knative sends SIGTERM and keeps routing for a moment; fail readiness first, then drain.
	draining.Store(true)
	log.Info("draining", "timeout", rt.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), rt.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	if fn.Stop != nil {
		err = errors.Join(err, fn.Stop(sctx))
	}
	log.Info("stopped", "err", err)
	return err
}

// NewHandler wraps fn's handler with the health endpoints, metrics, request ids, panic
// recovery, body limits and OTel server spans. draining may be nil.
func NewHandler(rt config.Runtime, fn Function, tel *telemetry.Telemetry, log *slog.Logger, draining *atomic.Bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /health/liveness", liveness(rt.ServiceName("")))
	mux.Handle("GET /health/readiness", readiness(fn.Checks, draining))
	if tel != nil {
		mux.Handle("GET /metrics", tel.MetricsHandler())
	}
	app := recoverer(log, limitBody(rt.MaxBodyBytes, fn.Handler))
	switch {
	case tel != nil && fn.OwnMetrics:
		app = telemetry.ServerSpans(app, tel.TracerProvider, tel.Propagator)
	case tel != nil:
		app = otelhttp.NewHandler(app, "http.server",
			otelhttp.WithTracerProvider(tel.TracerProvider),
			otelhttp.WithMeterProvider(tel.MeterProvider),
			otelhttp.WithPropagators(tel.Propagator),
			otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
	}
	mux.Handle("/", app)
	return httpx.RequestID(mux)
}

// liveness answers 200 with this process's id and service name, so that a platform that
// picked the port (knative/local) can tell its own child from another process that took the
// port between the pick and the child's bind. The body is built once: probes are frequent.
func liveness(service string) http.Handler {
	body, _ := json.Marshal(struct {
		Status  string `json:"status"`
		PID     int    `json:"pid"`
		Service string `json:"service,omitempty"`
	}{"alive", os.Getpid(), service})
	body = append(body, '\n')
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

func readiness(checks map[string]Checker, draining *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining != nil && draining.Load() {
			httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeUnavailable, "shutting down"))
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		type result struct {
			name string
			err  error
		}
		results := make(chan result, len(checks))
		for name, c := range checks {
			go func() { results <- result{name, c.CheckHealth(ctx)} }()
		}
		failed := map[string]string{}
		for range checks {
			res := <-results
			if res.err != nil {
				failed[res.name] = res.err.Error()
			}
		}
		if len(failed) > 0 {
			httpx.WriteError(w, r, nil, &httpx.Error{Code: httpx.CodeUnavailable, Message: "not ready",
				Extra: map[string]any{"checks": failed}})
			return
		}
		_ = httpx.Encode(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

func limitBody(n int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			httpx.WriteError(w, r, nil, &httpx.Error{Code: httpx.CodeTooLarge, Message: fmt.Sprintf("request body exceeds %d bytes", n)})
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, n)
		}
		next.ServeHTTP(w, r)
	})
}

func recoverer(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				httpx.WriteError(w, r, log, &httpx.Error{Code: httpx.CodeInternal, Err: fmt.Errorf("panic: %v", v)})
			}
		}()
		next.ServeHTTP(w, r)
	})
}
