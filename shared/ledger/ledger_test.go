package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
)

func newLedger(t *testing.T) *Ledger {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return New(rdb, store.NewKeys("exec"))
}

func order(id, sym string, side trading.Side, qty int64) *trading.Order {
	return &trading.Order{ID: id, Symbol: sym, Side: side, Type: trading.Market, Quantity: qty}
}

func TestAppendIsOncePerOrderAndOptimistic(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC)
	cash := decimal.NewFromInt(1_000_000)
	last, err := l.Append(ctx, "t1", "o1", Start,
		Event{Type: CashDeposited, At: at, Amount: &cash},
		Event{Type: OrderAccepted, At: at, OrderID: "o1", Order: order("o1", "7203.T", trading.Buy, 100)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append(ctx, "t1", "o1", last, Event{Type: OrderAccepted, At: at, OrderID: "o1"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second append of o1: %v", err)
	}
	if _, err := l.Append(ctx, "t1", "o2", Start, Event{Type: OrderAccepted, At: at, OrderID: "o2"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("append from a stale position: %v", err)
	}
	if _, err := l.Append(ctx, "t2", "o2", Start, Event{Type: OrderAccepted, At: at, OrderID: "o2"}); err != nil {
		t.Fatalf("another tenant's ledger is its own: %v", err)
	}
	if _, err := l.Append(ctx, "bad tenant", "o", Start, Event{}); err == nil {
		t.Fatal("invalid tenant accepted")
	}
}

// TestReplayEqualsIncremental appends a trading history in many small steps, projecting
// after each (so the snapshot is caught up incrementally), and compares the result with a
// projection rebuilt from the stream in one pass.
func TestReplayEqualsIncremental(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 19, 1, 0, 0, 0, time.UTC)
	cash := decimal.NewFromInt(50_000_000)
	last, err := l.Append(ctx, "acme", "dep", Start, Event{Type: CashDeposited, At: at, Amount: &cash})
	if err != nil {
		t.Fatal(err)
	}
	syms := []string{"7203.T", "6758.T", "9984.T"}
	for i := range 60 {
		sym := syms[i%3]
		side := trading.Buy
		if i%4 == 3 {
			side = trading.Sell
		}
		id := fmt.Sprintf("o%d", i)
		px := decimal.NewFromInt(int64(1000 + (i*37)%200)).Add(decimal.RequireFromString("0.5"))
		evs := []Event{{Type: OrderAccepted, At: at, OrderID: id, Order: order(id, sym, side, 100)}}
		if i%7 == 5 {
			evs = []Event{{Type: OrderRejected, At: at, OrderID: id, Order: order(id, sym, side, 100), Rejection: &trading.Rejection{Rule: trading.RuleMaxPosition, Message: "x"}}}
		} else if side == trading.Buy || i > 8 {
			evs = append(evs, Event{Type: OrderFilled, At: at, OrderID: id, Fill: &trading.Fill{Quantity: 100, Price: px, Fee: decimal.NewFromInt(int64(i % 5))}})
		}
		if last, err = l.Append(ctx, "acme", id, last, evs...); err != nil {
			t.Fatal(err)
		}
		if i%5 == 0 {
			if _, err := l.Project(ctx, "acme"); err != nil {
				t.Fatal(err)
			}
		}
		at = at.Add(7 * time.Hour)
	}
	inc, err := l.Project(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	full, err := l.Rebuild(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(inc)
	b, _ := json.Marshal(full)
	if string(a) != string(b) {
		t.Fatalf("incremental != rebuilt\n%s\n%s", a, b)
	}
	if full.Events < 100 || len(full.Days) < 10 || !full.RealizedPnL.IsPositive() && !full.RealizedPnL.IsNegative() {
		t.Fatalf("history too thin to prove anything: %d events, %d days, pnl %s", full.Events, len(full.Days), full.RealizedPnL)
	}
	// Cash is conserved: deposits − buys − fees + sells.
	want := cash
	for _, o := range full.Orders {
		if o.FilledQuantity == 0 {
			continue
		}
		if o.Side == trading.Buy {
			want = want.Sub(o.Notional)
		} else {
			want = want.Add(o.Notional)
		}
		want = want.Sub(o.Fee)
	}
	if !want.Equal(full.Cash) {
		t.Fatalf("cash %s, want %s", full.Cash, want)
	}
	// A dropped snapshot is rebuilt to the same state.
	if err := l.DropSnapshot(ctx, "acme"); err != nil {
		t.Fatal(err)
	}
	again, _ := l.Project(ctx, "acme")
	if c, _ := json.Marshal(again); string(c) != string(a) {
		t.Fatal("projection after dropping the snapshot differs")
	}
}
