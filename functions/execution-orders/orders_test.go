package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
)

func TestOrdersNewestFirstByStatusAndTenant(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	l := ledger.New(rdb, store.NewKeys("exec"))
	at := time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC)
	ctx := context.Background()
	last := ledger.Start
	for i, id := range []string{"a", "b", "c"} {
		o := &trading.Order{ID: id, Symbol: "7203.T", Side: trading.Buy, Type: trading.Limit, Quantity: 100, ExpiresAt: at.Add(time.Hour)}
		evs := []ledger.Event{{Type: ledger.OrderAccepted, At: at, OrderID: id, Order: o}}
		if i == 1 {
			evs = append(evs, ledger.Event{Type: ledger.OrderFilled, At: at, OrderID: id, Fill: &trading.Fill{Quantity: 100, Price: decimal.NewFromInt(2500)}})
		}
		if last, err = l.Append(ctx, "acme", id, last, evs...); err != nil {
			t.Fatal(err)
		}
	}
	now := at.Add(2 * time.Hour) // the open orders have expired
	h := newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), l, trading.NewTenants(false), func() time.Time { return now })
	get := func(target, tenant string) (int, ordersResponse) {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", target, nil)
		if tenant != "" {
			r.Header.Set(trading.TenantHeader, tenant)
		}
		h.ServeHTTP(w, r)
		var resp ordersResponse
		_ = json.Unmarshal(w.Body.Bytes(), &resp)
		return w.Code, resp
	}
	code, all := get("/api/v1/execution/orders", "acme")
	if code != 200 || len(all.Orders) != 3 || all.Orders[0].ID != "c" || all.Total != 3 || !all.Orders[0].Expired {
		t.Fatalf("%d %+v", code, all)
	}
	if _, filled := get("/api/v1/execution/orders?status=filled", "acme"); len(filled.Orders) != 1 || filled.Orders[0].ID != "b" {
		t.Fatalf("filled %+v", filled)
	}
	// The sweep's OrderExpired closes "c": it lists as expired, not open.
	if _, err := l.AppendClose(ctx, "acme", "c", last, ledger.Event{Type: ledger.OrderExpired, At: at.Add(time.Hour), OrderID: "c"}); err != nil {
		t.Fatal(err)
	}
	if _, exp := get("/api/v1/execution/orders?status=expired", "acme"); len(exp.Orders) != 1 || exp.Orders[0].ID != "c" || exp.Orders[0].Status != ledger.StatusExpired {
		t.Fatalf("expired %+v", exp)
	}
	if _, open := get("/api/v1/execution/orders?status=open", "acme"); len(open.Orders) != 1 || open.Orders[0].ID != "a" {
		t.Fatalf("open %+v", open)
	}
	if _, one := get("/api/v1/execution/orders?limit=1", "acme"); len(one.Orders) != 1 {
		t.Fatalf("limit %+v", one)
	}
	if _, other := get("/api/v1/execution/orders", "globex"); len(other.Orders) != 0 || other.Tenant != "globex" {
		t.Fatalf("other tenant sees %+v", other)
	}
	for _, bad := range []string{"?status=gone", "?limit=0", "?limit=x", "?limit=5000"} {
		if code, _ := get("/api/v1/execution/orders"+bad, "acme"); code != 400 {
			t.Errorf("%s: %d", bad, code)
		}
	}
	if code, _ := get("/api/v1/execution/orders", "bad tenant!"); code != 400 {
		t.Errorf("bad tenant: %d", code)
	}
}
