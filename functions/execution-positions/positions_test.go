package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
	"github.com/day-trade/platform/shared/trading/quotes"
)

// at is a Friday morning in session; the fills happen then and the account is read 30
// minutes later, the same JST day.
var (
	at  = time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC)
	now = at.Add(30 * time.Minute)
)

// board is a deterministic quote source: Last and PrevClose per symbol, or down.
type board struct {
	mu     sync.Mutex
	quotes map[string]trading.Quote
	down   bool
}

func (b *board) set(sym string, last, prevClose int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.quotes[sym] = trading.Quote{Symbol: sym, Last: decimal.NewFromInt(last), PrevClose: decimal.NewFromInt(prevClose), At: now.Add(-time.Minute)}
}

func (b *board) Quote(_ context.Context, sym string) (trading.Quote, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q, ok := b.quotes[sym]
	if b.down || !ok {
		return trading.Quote{}, fmt.Errorf("%s: %w", sym, market.ErrUnavailable)
	}
	return q, nil
}

type positionJSON struct {
	Symbol        string          `json:"symbol"`
	Quantity      int64           `json:"quantity"`
	AvgCost       decimal.Decimal `json:"average_cost"`
	Mark          decimal.Decimal `json:"mark"`
	MarkSource    string          `json:"mark_source"`
	MarkAsOf      time.Time       `json:"mark_as_of"`
	LastFillPrice decimal.Decimal `json:"last_fill_price"`
	MarketValue   decimal.Decimal `json:"market_value"`
	Unrealized    decimal.Decimal `json:"unrealized_pnl"`
}

type summaryJSON struct {
	Tenant      string           `json:"tenant"`
	Cash        decimal.Decimal  `json:"cash"`
	MarketValue decimal.Decimal  `json:"market_value"`
	Equity      decimal.Decimal  `json:"equity"`
	RealizedPnL decimal.Decimal  `json:"realized_pnl"`
	Unrealized  decimal.Decimal  `json:"unrealized_pnl"`
	NetPnL      decimal.Decimal  `json:"net_pnl"`
	DayPnL      decimal.Decimal  `json:"day_pnl"`
	ExposurePct *decimal.Decimal `json:"exposure_pct"`
	ValuedAt    time.Time        `json:"valued_at"`
	Positions   []positionJSON   `json:"positions"`
}

// account records, for tenant acme: ¥1,000,000 deposited; 200 7203.T bought at 2,000 and
// 100 sold at 2,100 (fee 10 each); 100 6758.T bought at 3,000 (fee 10). Cash 509,970.
func account(t *testing.T) *ledger.Ledger {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	l := ledger.New(rdb, store.NewKeys("exec"))
	ctx := context.Background()
	cash := decimal.NewFromInt(1_000_000)
	fill := func(id, sym string, side trading.Side, qty int64, px int64) []ledger.Event {
		return []ledger.Event{
			{Type: ledger.OrderAccepted, At: at, OrderID: id, Order: &trading.Order{ID: id, Symbol: sym, Side: side, Type: trading.Market, Quantity: qty}},
			{Type: ledger.OrderFilled, At: at, OrderID: id, Fill: &trading.Fill{Quantity: qty, Price: decimal.NewFromInt(px), Fee: decimal.NewFromInt(10)}},
		}
	}
	last, err := l.Append(ctx, "acme", "b1", ledger.Start, append([]ledger.Event{{Type: ledger.CashDeposited, At: at, Amount: &cash}}, fill("b1", "7203.T", trading.Buy, 200, 2000)...)...)
	if err != nil {
		t.Fatal(err)
	}
	if last, err = l.Append(ctx, "acme", "s1", last, fill("s1", "7203.T", trading.Sell, 100, 2100)...); err != nil {
		t.Fatal(err)
	}
	if _, err = l.Append(ctx, "acme", "b2", last, fill("b2", "6758.T", trading.Buy, 100, 3000)...); err != nil {
		t.Fatal(err)
	}
	return l
}

func read(t *testing.T, d deps) (summaryJSON, string) {
	t.Helper()
	w := httptest.NewRecorder()
	r := httptest.NewRequest("GET", "/api/v1/execution/positions", nil)
	r.Header.Set(trading.TenantHeader, "acme")
	newServer(d).ServeHTTP(w, r)
	var s summaryJSON
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil || w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	return s, w.Body.String()
}

func testDeps(l *ledger.Ledger, q trading.Quoter, log io.Writer) deps {
	return deps{
		log: slog.New(slog.NewTextHandler(log, nil)), ledger: l, quotes: q,
		now: func() time.Time { return now }, tenants: trading.NewTenants(false), markTimeout: 2 * time.Second,
	}
}

func dec(i int64) decimal.Decimal { return decimal.NewFromInt(i) }

// TestPositionsAreMarkedToMarket: each open position is valued at its quote at read time,
// so unrealised P&L is (mark − cost) × quantity and equity moves with the mark; the ledger
// is not written.
func TestPositionsAreMarkedToMarket(t *testing.T) {
	l := account(t)
	q := &board{quotes: map[string]trading.Quote{}}
	q.set("7203.T", 2300, 2000)
	q.set("6758.T", 2900, 3000)
	d := testDeps(l, q, io.Discard)

	s, body := read(t, d)
	pos := map[string]positionJSON{}
	for _, p := range s.Positions {
		pos[p.Symbol] = p
	}
	toyota, sony := pos["7203.T"], pos["6758.T"]
	if len(pos) != 2 || toyota.Quantity != 100 || sony.Quantity != 100 {
		t.Fatalf("%s", body)
	}
	for name, c := range map[string]struct{ got, want decimal.Decimal }{
		"7203 mark":             {toyota.Mark, dec(2300)},
		"7203 last fill":        {toyota.LastFillPrice, dec(2100)},
		"7203 unrealised":       {toyota.Unrealized, dec(300 * 100)},
		"6758 unrealised":       {sony.Unrealized, dec(-100 * 100)},
		"6758 market value":     {sony.MarketValue, dec(290_000)},
		"cash":                  {s.Cash, dec(509_970)},
		"market value":          {s.MarketValue, dec(520_000)},
		"equity":                {s.Equity, dec(1_029_970)},
		"unrealised":            {s.Unrealized, dec(20_000)},
		"net":                   {s.NetPnL, dec(29_970)},
		"day (all fills today)": {s.DayPnL, dec(29_970)},
	} {
		if !c.got.Equal(c.want) {
			t.Errorf("%s = %s, want %s", name, c.got, c.want)
		}
	}
	if toyota.MarkSource != ledger.MarkMarket || sony.MarkSource != ledger.MarkMarket || !toyota.MarkAsOf.Equal(now.Add(-time.Minute)) || !s.ValuedAt.Equal(now) {
		t.Fatalf("marks: %s", body)
	}
	if s.ExposurePct == nil || !s.ExposurePct.Equal(decimal.RequireFromString("50.49")) {
		t.Fatalf("exposure %v: %s", s.ExposurePct, body)
	}

	// The mark moves, equity and unrealised P&L with it, one for one.
	q.set("7203.T", 1900, 2000)
	s2, body := read(t, d)
	if !s2.Equity.Sub(s.Equity).Equal(dec(-400*100)) || !s2.Unrealized.Equal(dec(-10_000-10_000)) || !s2.DayPnL.Equal(dec(-10_030)) {
		t.Fatalf("after 7203.T fell to 1,900: %s", body)
	}

	// Marking is a view: the stream holds the same events, and the projection still has
	// the last fill price.
	p, err := l.Rebuild(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if p.Events != 7 || !p.Positions["7203.T"].Mark.Equal(dec(2100)) {
		t.Fatalf("ledger changed by reads: %d events, mark %s", p.Events, p.Positions["7203.T"].Mark)
	}
}

// TestProviderDownFallsBackToTheLastFill: with the market-data provider failing (the real
// bar quotes over a provider that is down), the account is still a 200, each position at
// its last fill price with mark_source "last_fill", and a log line says why. With one
// symbol down, only that one falls back.
func TestProviderDownFallsBackToTheLastFill(t *testing.T) {
	l := account(t)
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	down := market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		return nil, fmt.Errorf("provider: %w", market.ErrUnavailable)
	})
	var logs strings.Builder
	d := testDeps(l, quotes.Bars{Cache: marketcache.New(rdb, store.NewKeys("exec"), down, "down"), Now: func() time.Time { return now }}, &logs)
	s, body := read(t, d)
	if len(s.Positions) != 2 {
		t.Fatalf("%s", body)
	}
	for _, p := range s.Positions {
		if p.MarkSource != ledger.MarkLastFill || !p.Mark.Equal(p.LastFillPrice) || !p.MarkAsOf.Equal(at) {
			t.Errorf("%s: %+v", p.Symbol, p)
		}
	}
	// At the last fills (2,100 and 3,000): the numbers the ledger alone gives.
	if !s.Equity.Equal(dec(509_970+210_000+300_000)) || !s.Unrealized.Equal(dec(10_000)) {
		t.Fatalf("%s", body)
	}
	if n := strings.Count(logs.String(), "shown at its last fill price"); n != 2 {
		t.Fatalf("%d fallback log lines: %s", n, logs.String())
	}

	q := &board{quotes: map[string]trading.Quote{}}
	q.set("6758.T", 3100, 3000) // 7203.T has no quote
	s, body = read(t, testDeps(l, q, io.Discard))
	src := map[string]string{}
	for _, p := range s.Positions {
		src[p.Symbol] = p.MarkSource
	}
	if src["7203.T"] != ledger.MarkLastFill || src["6758.T"] != ledger.MarkMarket || !s.Equity.Equal(dec(509_970+210_000+310_000)) {
		t.Fatalf("one symbol down: %s", body)
	}
}
