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

// TestCloseIsOncePerOrderAndFillsEnterTheOutbox: a resting order closes at most once
// (whatever the stream position), its fill is in the outbox exactly until it is marked
// published, and expired and cancelled orders stop counting as open.
func TestCloseIsOncePerOrderAndFillsEnterTheOutbox(t *testing.T) {
	l := newLedger(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC)
	cash := decimal.NewFromInt(1_000_000)
	lim := decimal.NewFromInt(2500)
	resting := func(id string) *trading.Order {
		o := order(id, "7203.T", trading.Buy, 100)
		o.Type, o.LimitPrice, o.ExpiresAt = trading.Limit, &lim, at.Add(6*time.Hour)
		return o
	}
	last, err := l.Append(ctx, "t1", "o1", Start,
		Event{Type: CashDeposited, At: at, Amount: &cash},
		Event{Type: OrderAccepted, At: at, OrderID: "o1", Order: resting("o1")})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"o2", "o3"} {
		if last, err = l.Append(ctx, "t1", id, last, Event{Type: OrderAccepted, At: at, OrderID: id, Order: resting(id)}); err != nil {
			t.Fatal(err)
		}
	}
	if ids, _ := l.Unpublished(ctx, "t1", at.Add(100*365*24*time.Hour), 10); len(ids) != 0 {
		t.Fatalf("outbox before any fill: %v", ids)
	}
	p, _ := l.Project(ctx, "t1")
	if b := p.Book(at); b.OpenOrders != 3 || len(p.Resting()) != 3 {
		t.Fatalf("open %d resting %d", b.OpenOrders, len(p.Resting()))
	}
	fill := Event{Type: OrderFilled, At: at.Add(time.Hour), OrderID: "o1", Fill: &trading.Fill{Quantity: 100, Price: lim, Fee: decimal.NewFromInt(25)}}
	if _, err := l.AppendClose(ctx, "t1", "o1", Start, fill); !errors.Is(err, ErrConflict) {
		t.Fatalf("close from a stale position: %v", err)
	}
	fillID, err := l.AppendClose(ctx, "t1", "o1", last, fill)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AppendClose(ctx, "t1", "o1", fillID, Event{Type: OrderExpired, At: at, OrderID: "o1"}); !errors.Is(err, ErrExists) {
		t.Fatalf("second close of o1: %v", err)
	}
	if _, err := l.AppendClose(ctx, "t1", "o2", fillID, Event{Type: OrderAccepted, OrderID: "o2"}); err == nil {
		t.Fatal("an OrderAccepted closed an order")
	}
	last, err = l.AppendClose(ctx, "t1", "o2", fillID, Event{Type: OrderExpired, At: at.Add(6 * time.Hour), OrderID: "o2"})
	if err != nil {
		t.Fatal(err)
	}
	rej := &trading.Rejection{Rule: trading.RuleBuyingPower, Message: "x"}
	if _, err = l.AppendClose(ctx, "t1", "o3", last, Event{Type: OrderCancelled, At: at.Add(2 * time.Hour), OrderID: "o3", Rejection: rej}); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.Fills(ctx, "t1", "o1"); n != 1 {
		t.Fatalf("%d fills of o1", n)
	}
	// The outbox holds the fill (and only it) until it is marked published; entries newer
	// than before are left for their own publisher.
	if ids, _ := l.Unpublished(ctx, "t1", time.Now().Add(time.Minute), 10); len(ids) != 1 || ids[0] != fillID {
		t.Fatalf("outbox %v, want [%s]", ids, fillID)
	}
	if ids, _ := l.Unpublished(ctx, "t1", time.Now().Add(-time.Hour), 10); len(ids) != 0 {
		t.Fatalf("outbox before the grace %v", ids)
	}
	if e, err := l.Entry(ctx, "t1", fillID); err != nil || e.Type != OrderFilled || e.OrderID != "o1" || e.ID != fillID {
		t.Fatalf("entry %+v %v", e, err)
	}
	if err := l.MarkPublished(ctx, "t1", fillID); err != nil {
		t.Fatal(err)
	}
	if ids, _ := l.Unpublished(ctx, "t1", time.Now().Add(time.Minute), 10); len(ids) != 0 {
		t.Fatalf("outbox after publishing %v", ids)
	}
	p, _ = l.Project(ctx, "t1")
	full, _ := l.Rebuild(ctx, "t1")
	a, _ := json.Marshal(p)
	b, _ := json.Marshal(full)
	if string(a) != string(b) {
		t.Fatalf("incremental != rebuilt\n%s\n%s", a, b)
	}
	if p.Orders["o1"].Status != StatusFilled || p.Orders["o2"].Status != StatusExpired || p.Orders["o3"].Status != StatusCancelled || p.Orders["o3"].Rejection.Rule != trading.RuleBuyingPower {
		t.Fatalf("statuses %s %s %s", p.Orders["o1"].Status, p.Orders["o2"].Status, p.Orders["o3"].Status)
	}
	if bk := p.Book(at); bk.OpenOrders != 0 || !p.Cash.Equal(decimal.NewFromInt(1_000_000-250_000-25)) || bk.Holdings["7203.T"].Quantity != 100 {
		t.Fatalf("book %+v cash %s", bk, p.Cash)
	}
	if ts, _ := l.Tenants(ctx); len(ts) != 1 || ts[0] != "t1" {
		t.Fatalf("tenants %v", ts)
	}
}
