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

func TestPositionsFromTheLedger(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	l := ledger.New(rdb, store.NewKeys("exec"))
	ctx := context.Background()
	at := time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC)
	cash := decimal.NewFromInt(1_000_000)
	fill := func(id string, side trading.Side, qty int64, px int64) []ledger.Event {
		return []ledger.Event{
			{Type: ledger.OrderAccepted, At: at, OrderID: id, Order: &trading.Order{ID: id, Symbol: "7203.T", Side: side, Type: trading.Market, Quantity: qty}},
			{Type: ledger.OrderFilled, At: at, OrderID: id, Fill: &trading.Fill{Quantity: qty, Price: decimal.NewFromInt(px), Fee: decimal.NewFromInt(10)}},
		}
	}
	last, err := l.Append(ctx, "acme", "b1", ledger.Start, append([]ledger.Event{{Type: ledger.CashDeposited, At: at, Amount: &cash}}, fill("b1", trading.Buy, 200, 2000)...)...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "acme", "s1", last, fill("s1", trading.Sell, 100, 2100)...); err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/api/v1/execution/positions", nil)
	r.Header.Set(trading.TenantHeader, "acme")
	newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), l, trading.NewTenants(false)).ServeHTTP(w, r)
	var resp struct {
		Tenant      string          `json:"tenant"`
		Cash        decimal.Decimal `json:"cash"`
		Equity      decimal.Decimal `json:"equity"`
		RealizedPnL decimal.Decimal `json:"realized_pnl"`
		Unrealized  decimal.Decimal `json:"unrealized_pnl"`
		NetPnL      decimal.Decimal `json:"net_pnl"`
		Positions   []struct {
			Symbol   string `json:"symbol"`
			Quantity int64  `json:"quantity"`
		} `json:"positions"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	// 1,000,000 − 400,000 − 10 + 210,000 − 10; 100 shares left marked at 2,100.
	want := map[string]decimal.Decimal{
		"cash": decimal.NewFromInt(809_980), "equity": decimal.NewFromInt(1_019_980),
		"realized": decimal.NewFromInt(10_000), "unrealized": decimal.NewFromInt(10_000), "net": decimal.NewFromInt(19_980),
	}
	got := map[string]decimal.Decimal{"cash": resp.Cash, "equity": resp.Equity, "realized": resp.RealizedPnL, "unrealized": resp.Unrealized, "net": resp.NetPnL}
	for k, v := range want {
		if !got[k].Equal(v) {
			t.Errorf("%s = %s, want %s", k, got[k], v)
		}
	}
	if resp.Tenant != "acme" || len(resp.Positions) != 1 || resp.Positions[0].Quantity != 100 {
		t.Fatalf("%s", w.Body)
	}
}
