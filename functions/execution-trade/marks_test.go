package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/trading"
)

// board is a deterministic quote source: the test sets each symbol's last price (the
// previous close stays where the symbol opened) or makes its provider fail.
type board struct {
	mu     sync.Mutex
	quotes map[string]trading.Quote
	down   map[string]bool
}

func newBoard(prices map[string]int64) *board {
	b := &board{quotes: map[string]trading.Quote{}, down: map[string]bool{}}
	for s, p := range prices {
		px := decimal.NewFromInt(p)
		b.quotes[s] = trading.Quote{Symbol: s, Last: px, PrevClose: px, At: inSession.Add(-time.Minute)}
	}
	return b
}

func (b *board) set(sym string, last int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.quotes[sym]
	q.Last = decimal.NewFromInt(last)
	b.quotes[sym] = q
}

func (b *board) fail(sym string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.down[sym] = true
}

func (b *board) Quote(_ context.Context, sym string) (trading.Quote, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.down[sym] {
		return trading.Quote{}, fmt.Errorf("%s: %w", sym, market.ErrUnavailable)
	}
	q, ok := b.quotes[sym]
	if !ok {
		return trading.Quote{}, market.ErrUnknownSymbol
	}
	return q, nil
}

// TestRiskChecksMarkEveryPositionToMarket: the account holds 7203.T, bought this morning at
// about ¥2,001; its market price then moves and an order in another symbol, 6758.T, is
// checked. Marked to market, the move decides the order; at the last fill price (the
// behaviour before marking) every one of these orders would have been taken.
func TestRiskChecksMarkEveryPositionToMarket(t *testing.T) {
	const held = "7203.T"
	off := decimal.Zero
	tests := map[string]struct {
		limits   trading.Limits
		buy      int    // shares of 7203.T bought first, at ¥2,000 + slippage
		move     int64  // 7203.T's last price when the second order comes
		down     bool   // 7203.T's quotes fail instead: valued at its last fill
		order    string // the second order
		status   int
		rule     string
		dayBelow int64 // the marked day's P&L must be below this (a loss), 0: not checked
	}{
		"a drop in the held symbol reaches the daily loss limit": {
			limits: trading.Limits{MaxPositionPct: off, MaxExposurePct: off, DailyLossLimit: decimal.NewFromInt(100_000)},
			buy:    1000, move: 1800, order: marketBuy("6758.T", 100), status: 422, rule: "daily_loss_limit", dayBelow: -200_000,
		},
		"a drop in the held symbol shrinks equity below the max position": {
			limits: trading.Limits{MaxPositionPct: decimal.NewFromInt(50), MaxExposurePct: off, DailyLossLimit: off},
			buy:    2400, move: 1000, order: marketBuy("6758.T", 1500), status: 422, rule: "max_position",
		},
		"a rise in the held symbol lifts gross exposure past the max": {
			limits: trading.Limits{MaxPositionPct: off, MaxExposurePct: decimal.NewFromInt(80), DailyLossLimit: off},
			buy:    2400, move: 3000, order: marketBuy("6758.T", 1000), status: 422, rule: "max_exposure",
		},
		"a small drop stays inside the daily loss limit": {
			limits: trading.Limits{MaxPositionPct: off, MaxExposurePct: off, DailyLossLimit: decimal.NewFromInt(100_000)},
			buy:    1000, move: 1950, order: marketBuy("6758.T", 100), status: 201,
		},
		"provider down for the held symbol: its last fill price, logged": {
			limits: trading.Limits{MaxPositionPct: off, MaxExposurePct: off, DailyLossLimit: decimal.NewFromInt(100_000)},
			buy:    1000, down: true, order: marketBuy("6758.T", 100), status: 201,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var logs bytes.Buffer
			quotes := newBoard(map[string]int64{held: 2000, "6758.T": 3000})
			o := defaults()
			o.limits, o.quoter = tc.limits, quotes
			o.log = slog.New(slog.NewTextHandler(&logs, nil))
			f := newFixture(t, o)
			if a := post(t, f.srv.URL, "acme", "first", marketBuy(held, tc.buy)); a.status != 201 || a.order(t).Status != ledger.StatusFilled {
				t.Fatalf("first order: %d %s", a.status, a.body)
			}
			if tc.down {
				quotes.fail(held)
			} else {
				quotes.set(held, tc.move)
			}
			a := post(t, f.srv.URL, "acme", "second", tc.order)
			if a.status != tc.status {
				t.Fatalf("second order: %d %s, want %d %s", a.status, a.body, tc.status, tc.rule)
			}
			if tc.rule != "" && a.problem(t)["rule"] != tc.rule {
				t.Fatalf("rule %v, want %s: %s", a.problem(t)["rule"], tc.rule, a.body)
			}
			p, err := f.ledger.Project(context.Background(), "acme")
			if err != nil {
				t.Fatal(err)
			}
			// The account as the checks read it before marking (every holding at its last
			// fill, the day's P&L without the move) takes the same order: the move alone
			// decides it.
			req, err := trading.DecodeOrder([]byte(tc.order), f.deps.settings.Universe)
			if err != nil {
				t.Fatal(err)
			}
			order := trading.Order{Symbol: req.Symbol, Side: req.Side, Type: req.Type, Quantity: req.Quantity}
			q, _ := quotes.Quote(context.Background(), order.Symbol)
			topix := f.deps.settings.Universe.TOPIX500(order.Symbol)
			est := trading.EstimatePrice(order, q, topix, f.deps.settings.Costs)
			fee := est.Mul(decimal.NewFromInt(order.Quantity)).Mul(f.deps.settings.Costs.FeeBps).Div(decimal.NewFromInt(10_000)).Ceil()
			if rej := trading.CheckRisk(tc.limits, p.Book(inSession), order, est, fee, false); rej != nil && tc.status != 201 {
				// p now also holds the second order's rejection, which changes nothing.
				t.Fatalf("the unmarked book refuses the order too (%v): the case proves nothing", rej)
			}
			if tc.dayBelow != 0 {
				got, _ := quotes.Quote(context.Background(), held)
				day := p.MarkedBook(inSession, map[string]trading.Quote{held: got}).DayPnL
				if !day.LessThan(decimal.NewFromInt(tc.dayBelow)) {
					t.Fatalf("marked day P&L %s, want below %d", day, tc.dayBelow)
				}
			}
			if tc.down && !strings.Contains(logs.String(), "valued at its last fill price") {
				t.Fatalf("no log line for the fallback: %s", logs.String())
			}
		})
	}
}
