package main

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/trading"
)

// deps is everything the handler needs.
type deps struct {
	log     *slog.Logger
	ledger  *ledger.Ledger
	quotes  trading.Quoter
	now     func() time.Time
	tenants trading.Tenants // the zero value trusts verified tokens alone
	// markTimeout bounds the quotes of one response (within the request's deadline).
	markTimeout time.Duration
}

// newServer is the function's whole HTTP surface.
func newServer(d deps) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodGet, "/api/v1/execution/positions", handlePositions(d))
	return r
}

type positionsResponse struct {
	Tenant string `json:"tenant"`
	ledger.Summary
}

// handlePositions values the account at read time. Marks are a view, not ledger events:
// the projection is read as folded, then each open position (and each symbol traded today,
// for the day's P&L) is quoted; a symbol without a quote is shown at its last fill price
// with mark_source "last_fill", and the answer is still a 200.
func handlePositions(d deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		tenant, err := d.tenants.FromRequest(r)
		if err != nil {
			httpx.WriteError(w, r, d.log, err)
			return
		}
		p, err := d.ledger.Project(ctx, tenant)
		if err != nil {
			httpx.WriteError(w, r, d.log, &httpx.Error{Code: httpx.CodeUnavailable, Message: "order ledger unavailable", RetryAfter: time.Second, Err: err})
			return
		}
		now := d.now()
		var quotes map[string]trading.Quote
		if syms := p.MarkSymbols(now); len(syms) > 0 {
			mctx, cancel := context.WithTimeout(ctx, d.markTimeout)
			got, failed := trading.QuoteAll(mctx, d.quotes, syms)
			cancel()
			for s, err := range failed {
				d.log.WarnContext(ctx, "no quote to mark a position; shown at its last fill price", "symbol", s, "err", err)
			}
			quotes = got
		}
		_ = httpx.Encode(w, http.StatusOK, positionsResponse{Tenant: tenant, Summary: p.Summary(now, quotes)})
	})
}
