package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/idempotency"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/trading"
)

func limitOrder(sym, side string, qty int, px decimal.Decimal) string {
	return fmt.Sprintf(`{"symbol":%q,"side":%q,"type":"limit","quantity":%d,"limit_price":%q}`, sym, side, qty, px.String())
}

func TestBadInputNamesTheRule(t *testing.T) {
	o := defaults()
	o.provider = market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		if q.Symbol == "2702.T" { // listed, but this provider has no data for it
			return nil, market.ErrUnknownSymbol
		}
		return market.NewSynthetic(market.Options{Now: func() time.Time { return inSession }}).Bars(ctx, q)
	})
	f := newFixture(t, o)
	q, err := f.deps.quotes.Quote(context.Background(), "6501.T")
	if err != nil {
		t.Fatal(err)
	}
	lower, upper := trading.PriceBand(q.PrevClose, true)
	tick := trading.TickSize(upper, true)
	onGrid := trading.RoundToTick(q.Last, true, trading.RoundNearest)
	tests := map[string]struct {
		body   string
		status int
		rule   string
	}{
		"odd lot":            {`{"symbol":"6501.T","side":"buy","type":"market","quantity":150}`, 400, "lot_size"},
		"zero quantity":      {`{"symbol":"6501.T","side":"buy","type":"market","quantity":0}`, 400, "quantity"},
		"negative quantity":  {`{"symbol":"6501.T","side":"buy","type":"market","quantity":-100}`, 400, "quantity"},
		"huge quantity":      {`{"symbol":"6501.T","side":"buy","type":"market","quantity":9223372036854775800}`, 400, "quantity"},
		"overflow quantity":  {`{"symbol":"6501.T","side":"buy","type":"market","quantity":1e30}`, 400, "quantity"},
		"fraction quantity":  {`{"symbol":"6501.T","side":"buy","type":"market","quantity":100.5}`, 400, "quantity"},
		"off the tick grid":  {limitOrder("6501.T", "buy", 100, onGrid.Add(decimal.RequireFromString("0.3"))), 400, "tick_size"},
		"negative price":     {`{"symbol":"6501.T","side":"buy","type":"limit","quantity":100,"limit_price":"-5"}`, 400, "price"},
		"huge price":         {`{"symbol":"6501.T","side":"buy","type":"limit","quantity":100,"limit_price":"1e15"}`, 400, "price"},
		"tiny exponent":      {`{"symbol":"6501.T","side":"buy","type":"limit","quantity":100,"limit_price":"1e-999999999"}`, 400, ""},
		"limit without px":   {`{"symbol":"6501.T","side":"buy","type":"limit","quantity":100}`, 400, "price"},
		"market with px":     {`{"symbol":"6501.T","side":"buy","type":"market","quantity":100,"limit_price":"100"}`, 400, "price"},
		"above the band":     {limitOrder("6501.T", "buy", 100, upper.Add(tick)), 422, "daily_price_limit"},
		"below the band":     {limitOrder("6501.T", "sell", 100, lower.Sub(trading.TickSize(lower, true))), 422, "daily_price_limit"},
		"not a TSE code":     {`{"symbol":"AAPL","side":"buy","type":"market","quantity":100}`, 400, "symbol"},
		"index":              {`{"symbol":"^N225","side":"buy","type":"market","quantity":100}`, 400, "symbol"},
		"unknown symbol":     {`{"symbol":"9999.T","side":"buy","type":"market","quantity":100}`, 422, "unknown_symbol"},
		"unknown to data":    {`{"symbol":"2702.T","side":"buy","type":"market","quantity":100}`, 422, "unknown_symbol"},
		"bad side":           {`{"symbol":"6501.T","side":"hold","type":"market","quantity":100}`, 400, "side"},
		"bad type":           {`{"symbol":"6501.T","side":"buy","type":"stop","quantity":100}`, 400, "order_type"},
		"unknown field":      {`{"symbol":"6501.T","side":"buy","type":"market","quantity":100,"leverage":5}`, 400, ""},
		"malformed":          {`{"symbol":`, 400, ""},
		"two values":         {marketBuy("6501.T", 100) + marketBuy("6501.T", 100), 400, ""},
		"string as quantity": {`{"symbol":"6501.T","side":"buy","type":"market","quantity":"100"}`, 400, ""},
	}
	i := 0
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			i++
			a := post(t, f.srv.URL, "acme", fmt.Sprintf("bad-%d", i), tc.body)
			if a.status != tc.status {
				t.Fatalf("%d %s", a.status, a.body)
			}
			p := a.problem(t)
			if tc.rule != "" && p["rule"] != tc.rule {
				t.Fatalf("rule %v, want %s: %s", p["rule"], tc.rule, a.body)
			}
		})
	}
	if n, _ := f.ledger.Fills(context.Background(), "acme", ""); n != 0 {
		t.Fatalf("%d fills from bad input", n)
	}
}

// TestOnlyListedSymbolsTrade: the synthetic provider has bars for any well-formed code, so
// the symbol universe alone keeps unlisted codes out, before any quote or ledger write.
func TestOnlyListedSymbolsTrade(t *testing.T) {
	f := newFixture(t, defaults())
	ctx := context.Background()
	for i, body := range []string{
		marketBuy("9999.T", 100),
		marketBuy("1111.T", 100),
		`{"symbol":"1111.t","side":"sell","type":"market","quantity":100}`,
		limitOrder("9999.T", "buy", 100, decimal.RequireFromString("2500.5")), // no tick table: unlisted first
	} {
		a := post(t, f.srv.URL, "acme", fmt.Sprintf("u-%d", i), body)
		p := a.problem(t)
		if a.status != 422 || p["rule"] != "unknown_symbol" || !strings.Contains(fmt.Sprint(p["detail"]), "symbol universe") {
			t.Fatalf("%s: %d %s", body, a.status, a.body)
		}
	}
	if n := f.quotes.Load(); n != 0 {
		t.Fatalf("%d quotes for unlisted symbols", n)
	}
	if p, err := f.ledger.Project(ctx, "acme"); err != nil || p.Events != 0 || len(p.Orders) != 0 {
		t.Fatalf("ledger after unlisted orders: %+v %v", p, err)
	}
	// A listed issue outside the TOPIX 500 trades, on the coarser tick table.
	a := post(t, f.srv.URL, "acme", "listed", marketBuy("2702.T", 100))
	if a.status != 201 || a.order(t).Status != ledger.StatusFilled {
		t.Fatalf("listed symbol: %d %s", a.status, a.body)
	}
	if px := a.order(t).AveragePrice; px == nil || !trading.OnTick(*px, false) {
		t.Fatalf("fill price %s is not on the other-issues grid", px)
	}
}

func TestMarketOrderOutsideHours(t *testing.T) {
	o := defaults()
	o.now = lunch
	f := newFixture(t, o)
	a := post(t, f.srv.URL, "acme", "k", marketBuy("7203.T", 100))
	if a.status != 422 || a.problem(t)["rule"] != "market_hours" {
		t.Fatalf("%d %s", a.status, a.body)
	}
	// A limit order is taken at lunch and rests until the close.
	q, _ := f.deps.quotes.Quote(context.Background(), "7203.T")
	b := post(t, f.srv.URL, "acme", "k2", limitOrder("7203.T", "buy", 100, trading.RoundToTick(q.Last, true, trading.RoundDown)))
	if b.status != 201 || b.order(t).Status != ledger.StatusOpen || b.order(t).ExpiresAt.IsZero() {
		t.Fatalf("limit at lunch: %d %s", b.status, b.body)
	}
}

// TestRiskRulesAndLedgerReplay walks one account through every risk rule, then checks that
// rebuilding the projection from the stream gives what the incremental snapshots gave.
func TestRiskRulesAndLedgerReplay(t *testing.T) {
	o := defaults()
	o.limits = trading.Limits{
		MaxPositionPct: decimal.NewFromInt(30), MaxExposurePct: decimal.NewFromInt(50),
		DailyLossLimit: decimal.NewFromInt(5_000), MaxOpenOrders: 2,
	}
	f := newFixture(t, o)
	ctx := context.Background()
	key := 0
	send := func(body string) answer {
		key++
		return post(t, f.srv.URL, "acme", fmt.Sprintf("r-%d", key), body)
	}
	quote := func(sym string) trading.Quote {
		q, err := f.deps.quotes.Quote(ctx, sym)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	// Size orders in lots to a fraction of the ¥10M equity.
	lots := func(sym string, yen int64) int {
		n := decimal.NewFromInt(yen).Div(quote(sym).Last.Mul(decimal.NewFromInt(100))).IntPart()
		return int(max(n, 1)) * 100
	}
	expect := func(a answer, status int, rule string) {
		t.Helper()
		if a.status != status {
			t.Fatalf("want %d %s, got %d %s", status, rule, a.status, a.body)
		}
		if rule != "" && a.problem(t)["rule"] != rule {
			t.Fatalf("want rule %s: %s", rule, a.body)
		}
	}

	expect(send(marketBuy("7203.T", lots("7203.T", 4_000_000))), 422, "max_position")
	expect(send(marketBuy("7203.T", lots("7203.T", 2_500_000))), 201, "")
	expect(send(marketBuy("9432.T", lots("9432.T", 2_900_000))), 422, "max_exposure")
	expect(send(`{"symbol":"6758.T","side":"sell","type":"market","quantity":100}`), 422, "short_selling")

	// Two resting buys below the market fill the open-order book; a third is refused.
	for i := range 3 {
		q := quote("8306.T")
		px := trading.RoundToTick(q.Last.Mul(decimal.RequireFromString("0.97")), true, trading.RoundDown)
		a := send(limitOrder("8306.T", "buy", 100, px))
		if i < 2 {
			expect(a, 201, "")
			if a.order(t).Status != ledger.StatusOpen {
				t.Fatalf("resting order: %s", a.body)
			}
		} else {
			expect(a, 422, "max_open_orders")
		}
	}

	// A round trip loses slippage and fees; past the ¥5,000 daily limit only sells go in.
	p, _ := f.ledger.Project(ctx, "acme")
	held := p.Positions["7203.T"].Quantity
	expect(send(fmt.Sprintf(`{"symbol":"7203.T","side":"sell","type":"market","quantity":%d}`, held)), 201, "")
	p, _ = f.ledger.Project(ctx, "acme")
	if day := p.Book(inSession).DayPnL; !day.LessThan(decimal.NewFromInt(-5_000)) {
		t.Fatalf("round trip P&L %s; the test needs a loss beyond the limit", day)
	}
	expect(send(marketBuy("6758.T", 100)), 422, "daily_loss_limit")

	// A rejected order is in the ledger and its retry says the same.
	key = 0
	again := send(marketBuy("7203.T", lots("7203.T", 4_000_000)))
	expect(again, 422, "max_position")

	inc, err := f.ledger.Project(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	rebuilt, err := f.ledger.Rebuild(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(inc)
	b, _ := json.Marshal(rebuilt)
	if string(a) != string(b) {
		t.Fatalf("incremental projection\n%s\n!= rebuilt\n%s", a, b)
	}
	var rejected int
	for _, o := range rebuilt.Orders {
		if o.Status == ledger.StatusRejected {
			rejected++
		}
	}
	if rejected != 5 || len(rebuilt.Orders) != 9 {
		t.Fatalf("%d orders, %d rejected: %s", len(rebuilt.Orders), rejected, strings.Join(rebuilt.OrderIDs, ","))
	}
	s := rebuilt.Summary(inSession, nil)
	if !s.Equity.Equal(s.Cash.Add(s.MarketValue)) || !s.RealizedPnL.IsNegative() || len(s.Positions) != 0 {
		t.Fatalf("summary %+v", s)
	}
}

// TestNonJSONIsUnsupported: the trade body is read by the idempotency middleware, not by
// httpx.Decode, so the media type is checked in front of it: a non-JSON Content-Type is a 415
// problem and nothing is priced or stored, not even the idempotency key.
func TestNonJSONIsUnsupported(t *testing.T) {
	f := newFixture(t, defaults())
	for i, ct := range []string{"text/plain", "application/x-www-form-urlencoded", "application/xml", "json;;"} {
		req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/execution/trade", strings.NewReader(marketBuy("6501.T", 100)))
		req.Header.Set("Content-Type", ct)
		req.Header.Set(idempotency.Header, fmt.Sprintf("ct-%d", i))
		req.Header.Set(trading.TenantHeader, "acme")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnsupportedMediaType || resp.Header.Get("Content-Type") != "application/problem+json" {
			t.Fatalf("%s: %d %s %s", ct, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		// The same key with JSON is a fresh request, not a replay of the refusal.
		if a := post(t, f.srv.URL, "acme", fmt.Sprintf("ct-%d", i), marketBuy("6501.T", 100)); a.status != 201 {
			t.Fatalf("after %s: %d %s", ct, a.status, a.body)
		}
	}
	if n := f.quotes.Load(); n != 4 {
		t.Fatalf("%d quotes, want 4 (one per JSON order)", n)
	}
}
