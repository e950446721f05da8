package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/redis/go-redis/v9"
	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/symbols"
	"github.com/day-trade/platform/shared/trading"
)

// A Friday session: the orders rest from 10:00 JST and expire at the 15:30 close.
var (
	placed = time.Date(2026, 11, 20, 10, 0, 0, 0, market.JST)
	closes = time.Date(2026, 11, 20, 15, 30, 0, 0, market.JST)
)

var limits = trading.Limits{
	MaxPositionPct: decimal.NewFromInt(20), MaxExposurePct: decimal.NewFromInt(100),
	DailyLossLimit: decimal.NewFromInt(500_000), MaxOpenOrders: 10,
}

// bars is a minute-bar tape: 09:59 dips below 2500 (before the order existed), 10:00–10:04
// stay above, 10:05 trades down through 2500, later bars rally.
func bars() []market.Bar {
	var out []market.Bar
	add := func(at time.Time, o, h, l float64) {
		out = append(out, market.Bar{Time: at, Open: o, High: h, Low: l, Close: o, Volume: 1000})
	}
	add(placed.Add(-time.Minute), 2495, 2500, 2480)
	for i := range 5 {
		add(placed.Add(time.Duration(i)*time.Minute), 2510, 2515, 2505)
	}
	add(placed.Add(5*time.Minute), 2503, 2504, 2499)
	for i := 6; i < 30; i++ {
		add(placed.Add(time.Duration(i)*time.Minute), 2520, 2530, 2515)
	}
	return out
}

type fixture struct {
	redis  *redistest.Server
	ledger *ledger.Ledger
	now    atomic.Pointer[time.Time]
	reads  atomic.Int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{redis: redistest.Start(t)}
	f.ledger = ledger.New(f.client(t), store.NewKeys("exec"))
	f.setNow(placed)
	return f
}

func (f *fixture) client(t *testing.T) *redis.Client {
	t.Helper()
	rdb, err := store.Open(f.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func (f *fixture) setNow(t time.Time) { f.now.Store(&t) }

// sweeper builds one replica: its own Redis connection, the shared tape, and a relay to pub.
func (f *fixture) sweeper(t *testing.T, pub ledger.Publisher, tape func() []market.Bar) *sweeper {
	t.Helper()
	led := ledger.New(f.client(t), store.NewKeys("exec"))
	return &sweeper{
		log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		ledger: led,
		relay:  ledger.Relay{Ledger: led, Pub: pub},
		bars: BarsFunc(func(ctx context.Context, symbol string) ([]market.Bar, error) {
			f.reads.Add(1)
			return tape(), nil
		}),
		costs:    trading.Costs{SlippageBps: decimal.NewFromInt(5), FeeBps: decimal.NewFromInt(10)},
		limits:   limits,
		universe: symbols.Starter(),
		grace:    30 * time.Second,
		now:      func() time.Time { return *f.now.Load() },
	}
}

// open records a funded account (first call) and a resting limit order, as execution-trade
// does for a limit order the market has not reached.
func (f *fixture) open(t *testing.T, tenant, id string, side trading.Side, limit string, cash int64) {
	t.Helper()
	ctx := context.Background()
	p, err := f.ledger.Project(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	lim := decimal.RequireFromString(limit)
	o := trading.Order{ID: id, Symbol: "7203.T", Side: side, Type: trading.Limit, Quantity: 100, LimitPrice: &lim, ExpiresAt: closes.UTC()}
	var evs []ledger.Event
	if p.Events == 0 {
		amt := decimal.NewFromInt(cash)
		evs = append(evs, ledger.Event{Type: ledger.CashDeposited, At: placed.UTC(), Amount: &amt})
	}
	evs = append(evs, ledger.Event{Type: ledger.OrderAccepted, At: placed.UTC(), OrderID: id, Order: &o})
	if _, err := f.ledger.Append(ctx, tenant, id, p.LastID, evs...); err != nil {
		t.Fatal(err)
	}
}

// receiver is a real CloudEvents receiver (deduplicating by source and id in Redis) on a
// real HTTP server, counting the fills its handler saw.
type receiver struct {
	url     string
	handled atomic.Int64
	mu      sync.Mutex
	fills   []events.OrderFilled
}

func (f *fixture) receiver(t *testing.T) *receiver {
	t.Helper()
	rv, err := events.NewReceiver(f.client(t), store.NewKeys("notif"), events.ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{}
	rv.Handle(events.TypeExecutionOrderFilled, func(ctx context.Context, e cloudevents.Event) error {
		var p events.OrderFilled
		if err := events.DecodeData(e, &p); err != nil {
			return err
		}
		r.handled.Add(1)
		r.mu.Lock()
		r.fills = append(r.fills, p)
		r.mu.Unlock()
		return nil
	})
	srv := httptest.NewServer(rv.HTTPHandler())
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

func publisher(t *testing.T, url string) *events.Publisher {
	t.Helper()
	p, err := events.NewPublisher(url, events.WithRetries(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRestingLimitBuyFillsOnceWhenABarCrosses(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	rcv := f.receiver(t)
	f.open(t, "acme", "ord_1", trading.Buy, "2500", 10_000_000)

	// 10:04:30: only bars above the limit have closed since the order (the 09:59 dip came
	// before it): it rests.
	f.setNow(placed.Add(4*time.Minute + 30*time.Second))
	if res, err := f.sweeper(t, publisher(t, rcv.url), bars).sweep(ctx); err != nil || res != (Result{}) {
		t.Fatalf("early sweep: %+v %v", res, err)
	}
	// 10:07: the 10:05 bar crossed. Eight replicas sweep at once, each twice.
	f.setNow(placed.Add(7 * time.Minute))
	const replicas = 8
	var (
		wg     sync.WaitGroup
		filled atomic.Int64
		start  = make(chan struct{})
	)
	for range replicas {
		s := f.sweeper(t, publisher(t, rcv.url), bars)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for range 2 {
				res, err := s.sweep(ctx)
				if err != nil {
					t.Error(err)
				}
				filled.Add(int64(res.Filled))
			}
		}()
	}
	close(start)
	wg.Wait()
	if n, _ := f.ledger.Fills(ctx, "acme", "ord_1"); n != 1 || filled.Load() != 1 {
		t.Fatalf("%d fills in the ledger, %d reported by the sweeps; want 1 and 1", n, filled.Load())
	}
	if got := rcv.handled.Load(); got != 1 || rcv.fills[0].OrderID != "ord_1" || !rcv.fills[0].Price.Equal(decimal.NewFromInt(2500)) {
		t.Fatalf("receiver handled %d fills: %+v", got, rcv.fills)
	}
	p, err := f.ledger.Project(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	o := p.Orders["ord_1"]
	// The 10:05 bar opened at 2503 (above the limit): the fill is at the limit, slippage
	// capped by it, fee 10 bps of 250,000; stamped at the bar's close.
	if o.Status != ledger.StatusFilled || !o.AveragePrice.Equal(decimal.NewFromInt(2500)) || !o.Fee.Equal(decimal.NewFromInt(250)) ||
		!o.FilledAt.Equal(placed.Add(6*time.Minute)) {
		t.Fatalf("order %+v", o)
	}
	if !p.Cash.Equal(decimal.NewFromInt(10_000_000-250_000-250)) || p.Positions["7203.T"].Quantity != 100 || p.Book(f.now.Load().UTC()).OpenOrders != 0 {
		t.Fatalf("cash %s positions %+v", p.Cash, p.Positions)
	}
	full, _ := f.ledger.Rebuild(ctx, "acme")
	a, _ := json.Marshal(p)
	b, _ := json.Marshal(full)
	if string(a) != string(b) {
		t.Fatalf("projection != replay\n%s\n%s", a, b)
	}
	// The outbox is empty: the relay of a later tick sends nothing more.
	f.setNow(placed.Add(time.Hour))
	if res, err := f.sweeper(t, publisher(t, rcv.url), bars).sweep(ctx); err != nil || res != (Result{}) || rcv.handled.Load() != 1 {
		t.Fatalf("later sweep: %+v %v, receiver %d", res, err, rcv.handled.Load())
	}
}

func TestGapFillsAtTheBetterOpenAndSellsFillOnHighs(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.open(t, "acme", "buy", trading.Buy, "2512", 10_000_000)
	// Opened at 10:00 at 2510 (below the 2512 limit): a gap through the limit fills at the
	// open plus slippage (2511.255 → 2511.5), never above the limit.
	f.setNow(placed.Add(2 * time.Minute))
	s := f.sweeper(t, nil, bars)
	if res, err := s.sweep(ctx); err != nil || res.Filled != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	p, _ := f.ledger.Project(ctx, "acme")
	if v := p.Orders["buy"]; !v.AveragePrice.Equal(decimal.RequireFromString("2511.5")) {
		t.Fatalf("gap fill at %s", v.AveragePrice)
	}
	// A resting sell of that position at 2525 fills when a bar's high reaches it (10:06).
	f.open(t, "acme", "sell", trading.Sell, "2525", 0)
	f.setNow(placed.Add(10 * time.Minute))
	if res, err := s.sweep(ctx); err != nil || res.Filled != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	p, _ = f.ledger.Project(ctx, "acme")
	if v := p.Orders["sell"]; v.Status != ledger.StatusFilled || !v.AveragePrice.Equal(decimal.NewFromInt(2525)) || p.Positions["7203.T"].Quantity != 0 {
		t.Fatalf("sell %+v, position %+v", v, p.Positions["7203.T"])
	}
	// No sink: both fills wait in the outbox for a relay with one.
	if ids, _ := f.ledger.Unpublished(ctx, "acme", time.Now().Add(time.Hour), 10); len(ids) != 2 {
		t.Fatalf("outbox %v", ids)
	}
}

func TestDayOrdersExpireAtTheCloseAndReleaseTheirSlot(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.open(t, "acme", "low", trading.Buy, "2000", 10_000_000)
	s := f.sweeper(t, nil, bars)
	f.setNow(closes.Add(-time.Minute))
	if res, err := s.sweep(ctx); err != nil || res != (Result{}) {
		t.Fatalf("before the close: %+v %v", res, err)
	}
	f.setNow(closes.Add(time.Minute))
	for range 3 { // repeated ticks expire it once
		if _, err := s.sweep(ctx); err != nil {
			t.Fatal(err)
		}
	}
	p, _ := f.ledger.Project(ctx, "acme")
	n := 0
	_ = f.ledger.Events(ctx, "acme", ledger.Start, func(e ledger.Event) error {
		if e.Type == ledger.OrderExpired {
			n++
		}
		return nil
	})
	if v := p.Orders["low"]; n != 1 || v.Status != ledger.StatusExpired || !v.ClosedAt.Equal(closes) || p.Book(closes).OpenOrders != 0 {
		t.Fatalf("%d expiries, order %+v", n, v)
	}
}

func TestRiskIsRecheckedAtTheFill(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	// 300,000 yen covers the resting 250,000 buy when it is placed; a market buy then spends
	// 200,000, so at the cross the buy no longer has the cash and is cancelled.
	f.open(t, "small", "rest", trading.Buy, "2500", 300_000)
	p, _ := f.ledger.Project(ctx, "small")
	mkt := trading.Order{ID: "mkt", Symbol: "6758.T", Side: trading.Buy, Type: trading.Market, Quantity: 100}
	if _, err := f.ledger.Append(ctx, "small", "mkt", p.LastID,
		ledger.Event{Type: ledger.OrderAccepted, At: placed.UTC(), OrderID: "mkt", Order: &mkt},
		ledger.Event{Type: ledger.OrderFilled, At: placed.UTC(), OrderID: "mkt", Fill: &trading.Fill{Quantity: 100, Price: decimal.NewFromInt(2000), Fee: decimal.Zero}}); err != nil {
		t.Fatal(err)
	}
	s := f.sweeper(t, nil, bars)
	s.limits = trading.Limits{}
	f.setNow(placed.Add(7 * time.Minute))
	if res, err := s.sweep(ctx); err != nil || res.Cancelled != 1 || res.Filled != 0 {
		t.Fatalf("%+v %v", res, err)
	}
	p, _ = f.ledger.Project(ctx, "small")
	if v := p.Orders["rest"]; v.Status != ledger.StatusCancelled || v.Rejection == nil || v.Rejection.Rule != trading.RuleBuyingPower || !p.Cash.Equal(decimal.NewFromInt(100_000)) {
		t.Fatalf("order %+v cash %s", v, p.Cash)
	}
}

// TestTickOverHTTP drives the sweep the way the Broker does: a CloudEvent POSTed to the
// function, a redelivery of the same event being a no-op.
func TestTickOverHTTP(t *testing.T) {
	f := newFixture(t)
	f.open(t, "acme", "ord_1", trading.Buy, "2500", 10_000_000)
	f.setNow(placed.Add(7 * time.Minute))
	recv, err := events.NewReceiver(f.client(t), store.NewKeys("exec"), events.ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newServer(f.sweeper(t, nil, bars), recv))
	defer srv.Close()
	pub := publisher(t, srv.URL)
	for range 2 {
		if _, err := pub.PublishID(context.Background(), "tick-1", events.TypeExecutionTick, events.SourceExecutionScheduler, "", events.ExecutionTick{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pub.PublishID(context.Background(), "ping-1", PingEventType, "/apis/v1/namespaces/day-trade/pingsources/tick", "", map[string]string{}); err != nil {
		t.Fatal(err)
	}
	if n, _ := f.ledger.Fills(context.Background(), "acme", "ord_1"); n != 1 {
		t.Fatalf("%d fills", n)
	}
	if f.reads.Load() != 1 { // the first tick; then nothing rests
		t.Fatalf("%d bar reads", f.reads.Load())
	}
}
