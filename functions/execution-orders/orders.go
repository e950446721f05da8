package main

import (
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/trading"
)

// newServer is the function's whole HTTP surface.
func newServer(log *slog.Logger, l *ledger.Ledger, tenants trading.Tenants, now func() time.Time) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodGet, "/api/v1/execution/orders", handleOrders(log, l, tenants, now))
	return r
}

// orderView adds what only the clock knows: whether a resting order has expired (its session
// closed; execution-fills records OrderExpired, status "expired", on its next tick).
type orderView struct {
	*ledger.OrderView
	Expired bool `json:"expired,omitempty"`
}

type ordersResponse struct {
	Tenant string      `json:"tenant"`
	Orders []orderView `json:"orders"`
	Total  int         `json:"total"` // orders in the ledger, any status
	AsOf   string      `json:"as_of"`
}

const (
	defaultLimit = 100
	maxLimit     = 1000
)

func handleOrders(log *slog.Logger, l *ledger.Ledger, tenants trading.Tenants, now func() time.Time) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := tenants.FromRequest(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		q := r.URL.Query()
		status := q.Get("status")
		var fields []httpx.FieldError
		switch status {
		case "", ledger.StatusOpen, ledger.StatusFilled, ledger.StatusRejected, ledger.StatusExpired, ledger.StatusCancelled:
		default:
			fields = append(fields, httpx.FieldError{Field: "status", Reason: "one of open, filled, rejected, expired, cancelled"})
		}
		limit := defaultLimit
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > maxLimit {
				fields = append(fields, httpx.FieldError{Field: "limit", Reason: "an integer from 1 to 1000"})
			}
			limit = n
		}
		if len(fields) > 0 {
			httpx.WriteError(w, r, log, httpx.Invalid("invalid query", fields...))
			return
		}
		p, err := l.Project(r.Context(), tenant)
		if err != nil {
			httpx.WriteError(w, r, log, &httpx.Error{Code: httpx.CodeUnavailable, Message: "order ledger unavailable", RetryAfter: time.Second, Err: err})
			return
		}
		t := now()
		resp := ordersResponse{Tenant: tenant, Orders: []orderView{}, Total: len(p.OrderIDs), AsOf: p.LastID}
		for _, o := range p.List(status, limit) {
			resp.Orders = append(resp.Orders, orderView{OrderView: o, Expired: o.Status == ledger.StatusOpen && !o.Open(t)})
		}
		_ = httpx.Encode(w, http.StatusOK, resp)
	})
}
