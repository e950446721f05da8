package main

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/trading"
)

// newServer is the function's whole HTTP surface.
func newServer(log *slog.Logger, l *ledger.Ledger, tenants trading.Tenants) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodGet, "/api/v1/execution/positions", handlePositions(log, l, tenants))
	return r
}

type positionsResponse struct {
	Tenant string `json:"tenant"`
	ledger.Summary
}

func handlePositions(log *slog.Logger, l *ledger.Ledger, tenants trading.Tenants) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := tenants.FromRequest(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		p, err := l.Project(r.Context(), tenant)
		if err != nil {
			httpx.WriteError(w, r, log, &httpx.Error{Code: httpx.CodeUnavailable, Message: "order ledger unavailable", RetryAfter: time.Second, Err: err})
			return
		}
		_ = httpx.Encode(w, http.StatusOK, positionsResponse{Tenant: tenant, Summary: p.Summary()})
	})
}
