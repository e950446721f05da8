// Package gateway is the platform's one public entry under /api/v1. It matches a request
// against the route table (built from the function catalog), and proxies it to the function
// by its Knative host name. The chain is a list of middleware in the order of
// ARCHITECTURE.md §8, so later capabilities (authentication, rate limits, caching,
// resilience) slot in at their place without touching the proxy.
package gateway

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/httpx"
)

// Route sends one method and path to one function.
type Route struct {
	Method     string
	Path       string // chi pattern, served unchanged by the function
	Function   string // the function's catalog name
	Roles      []string
	Idempotent bool
}

// RoutesFromCatalog is the default route table: every HTTP route of every function.
func RoutesFromCatalog(fs []functions.Function) []Route {
	var rs []Route
	for _, f := range fs {
		for _, r := range f.Routes {
			rs = append(rs, Route{Method: r.Method, Path: r.Path, Function: f.Name, Roles: r.Roles, Idempotent: r.Idempotent})
		}
	}
	return rs
}

// Config is what the gateway needs to know about its surroundings.
type Config struct {
	// Namespace is the Knative namespace of the functions (hosts are <fn>.<ns>.svc.cluster.local).
	Namespace string
	// UpstreamTimeout bounds one upstream call, headers and body.
	UpstreamTimeout time.Duration
}

// New returns the gateway's handler for routes.
func New(cfg Config, log *slog.Logger, routes []Route, tr http.RoundTripper) http.Handler {
	r := chi.NewRouter()
	r.Use(accessLog(log))
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)

	proxies := map[string]http.Handler{}
	for _, rt := range routes {
		p, ok := proxies[rt.Function]
		if !ok {
			p = newProxy(log, host(rt.Function, cfg.Namespace), cfg.UpstreamTimeout, tr)
			proxies[rt.Function] = p
		}
		r.Method(rt.Method, rt.Path, p)
	}
	return r
}

func host(function, ns string) string { return function + "." + ns + ".svc.cluster.local" }

// accessLog writes one structured line per request, after it is answered.
func accessLog(log *slog.Logger) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			m := httpsnoop.CaptureMetrics(next, w, r)
			lv := slog.LevelInfo
			if m.Code >= 500 {
				lv = slog.LevelWarn
			}
			log.Log(r.Context(), lv, "access",
				"method", r.Method, "path", r.URL.Path, "status", m.Code,
				"bytes", m.Written, "ms", float64(m.Duration.Microseconds())/1000,
				"request_id", httpx.RequestIDFromContext(r.Context()), "route", chi.RouteContext(r.Context()).RoutePattern())
		})
	}
}
