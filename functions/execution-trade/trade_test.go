package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/idempotency"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/symbols"
	"github.com/day-trade/platform/shared/trading"
	"github.com/day-trade/platform/shared/trading/quotes"
)

// inSession is a Friday morning with the TSE open; lunch is the same day's midday break.
var (
	inSession = time.Date(2026, 11, 20, 10, 0, 0, 0, market.JST)
	lunch     = time.Date(2026, 11, 20, 12, 0, 0, 0, market.JST)
)

type options struct {
	now      time.Time
	limits   trading.Limits
	lockTTL  time.Duration
	provider market.Provider
	hook     func(string)
	pub      ledger.Publisher
	// quoter replaces the bar quotes over provider (a deterministic quote board).
	quoter trading.Quoter
	log    *slog.Logger
}

func defaults() options {
	return options{
		now: inSession,
		limits: trading.Limits{
			MaxPositionPct: decimal.NewFromInt(20), MaxExposurePct: decimal.NewFromInt(100),
			DailyLossLimit: decimal.NewFromInt(500_000), MaxOpenOrders: 10,
		},
		lockTTL: 40 * time.Second,
	}
}

// countingQuoter counts quote requests: a request that reaches it has got past the
// idempotency gate.
type countingQuoter struct {
	trading.Quoter
	n *atomic.Int64
}

func (c countingQuoter) Quote(ctx context.Context, s string) (trading.Quote, error) {
	c.n.Add(1)
	return c.Quoter.Quote(ctx, s)
}

type fixture struct {
	srv    *httptest.Server
	redis  *redistest.Server
	ledger *ledger.Ledger
	quotes *atomic.Int64
	deps   deps
}

func buildDeps(t testing.TB, redisURL string, o options) deps {
	t.Helper()
	rdb, err := store.Open(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	now := func() time.Time { return o.now }
	p := o.provider
	if p == nil {
		p = market.NewSynthetic(market.Options{Now: now})
	}
	keys := store.NewKeys("exec")
	led := ledger.New(rdb, keys)
	var q trading.Quoter = quotes.Bars{Cache: marketcache.New(rdb, keys, p, "test"), Now: now}
	if o.quoter != nil {
		q = o.quoter
	}
	log := o.log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return deps{
		log:    log,
		ledger: led,
		relay:  ledger.Relay{Ledger: led, Pub: o.pub},
		idem:   idempotency.NewStore(rdb, keys, idempotency.Options{LockTTL: o.lockTTL}),
		quotes: q,
		settings: Settings{
			InitialCash: decimal.NewFromInt(10_000_000),
			Limits:      o.limits,
			Costs:       trading.Costs{SlippageBps: decimal.NewFromInt(5), FeeBps: decimal.NewFromInt(10)},
			Universe:    symbols.Starter(),
			MarkTimeout: 2 * time.Second,
		},
		now:         now,
		afterAppend: o.hook,
		tenants:     trading.NewTenants(false), // X-Tenant: no runtime verifies tokens here
	}
}

func newFixture(t *testing.T, o options) *fixture {
	t.Helper()
	rs := redistest.Start(t)
	d := buildDeps(t, rs.URL(), o)
	n := &atomic.Int64{}
	d.quotes = countingQuoter{Quoter: d.quotes, n: n}
	srv := httptest.NewServer(newServer(d))
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, redis: rs, ledger: d.ledger, quotes: n, deps: d}
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) order(t *testing.T) ledger.OrderView {
	t.Helper()
	var v ledger.OrderView
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("%d %s: %v", a.status, a.body, err)
	}
	return v
}

func (a answer) problem(t *testing.T) map[string]any {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal(a.body, &p); err != nil {
		t.Fatalf("%d %s: %v", a.status, a.body, err)
	}
	return p
}

func post(t testing.TB, base, tenant, key, body string) answer {
	t.Helper()
	a, err := tryPost(base, tenant, key, body)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tryPost(base, tenant, key, body string) (answer, error) {
	req, _ := http.NewRequest("POST", base+"/api/v1/execution/trade", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set(idempotency.Header, key)
	}
	if tenant != "" {
		req.Header.Set(trading.TenantHeader, tenant)
	}
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: b}, err
}

func marketBuy(sym string, qty int) string {
	return fmt.Sprintf(`{"symbol":%q,"side":"buy","type":"market","quantity":%d}`, sym, qty)
}

func TestMarketOrderFillsOnTheGridAndMovesTheAccount(t *testing.T) {
	f := newFixture(t, defaults())
	a := post(t, f.srv.URL, "acme", "k1", marketBuy("7203.T", 300))
	if a.status != 201 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	v := a.order(t)
	q, err := f.deps.quotes.Quote(context.Background(), "7203.T")
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != ledger.StatusFilled || v.FilledQuantity != 300 || v.AveragePrice == nil || v.ID != ledger.OrderID("acme", "k1") {
		t.Fatalf("order %+v", v)
	}
	// Slippage moves a buy up, onto the TOPIX 500 grid (Toyota is a constituent).
	if px := *v.AveragePrice; px.LessThan(q.Last) || !trading.OnTick(px, true) {
		t.Fatalf("fill %s against last %s", px, q.Last)
	}
	wantFee := v.AveragePrice.Mul(decimal.NewFromInt(300)).Mul(decimal.NewFromInt(10)).Div(decimal.NewFromInt(10_000)).Ceil()
	if !v.Fee.Equal(wantFee) {
		t.Fatalf("fee %s, want %s", v.Fee, wantFee)
	}
	p, err := f.ledger.Project(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	wantCash := decimal.NewFromInt(10_000_000).Sub(v.Notional).Sub(v.Fee)
	if !p.Cash.Equal(wantCash) || p.Positions["7203.T"].Quantity != 300 {
		t.Fatalf("cash %s (want %s), positions %+v", p.Cash, wantCash, p.Positions)
	}
	// Another tenant with the same key has its own account and its own order.
	b := post(t, f.srv.URL, "globex", "k1", marketBuy("7203.T", 100))
	if b.status != 201 || b.order(t).ID == v.ID {
		t.Fatalf("other tenant: %d %s", b.status, b.body)
	}
}

func TestIdempotencyProtocol(t *testing.T) {
	f := newFixture(t, defaults())
	first := post(t, f.srv.URL, "acme", "same", marketBuy("6758.T", 100))
	if first.status != 201 || first.header.Get(idempotency.ReplayedHeader) != "" {
		t.Fatalf("first: %d %v %s", first.status, first.header, first.body)
	}
	again := post(t, f.srv.URL, "acme", "same", marketBuy("6758.T", 100))
	if again.status != 201 || again.header.Get(idempotency.ReplayedHeader) != "true" || !bytes.Equal(again.body, first.body) {
		t.Fatalf("replay: %d %v\n%s\n%s", again.status, again.header, again.body, first.body)
	}
	other := post(t, f.srv.URL, "acme", "same", marketBuy("6758.T", 200))
	if other.status != 422 || other.problem(t)["rule"] != "idempotency_key_reuse" {
		t.Fatalf("different body: %d %s", other.status, other.body)
	}
	missing := post(t, f.srv.URL, "acme", "", marketBuy("6758.T", 100))
	if missing.status != 400 || missing.header.Get("Content-Type") != httpx.ProblemContentType {
		t.Fatalf("no key: %d %s", missing.status, missing.body)
	}
	long := post(t, f.srv.URL, "acme", strings.Repeat("k", 256), marketBuy("6758.T", 100))
	if long.status != 400 {
		t.Fatalf("256-char key: %d %s", long.status, long.body)
	}
	if n, _ := f.ledger.Fills(context.Background(), "acme", ""); n != 1 {
		t.Fatalf("%d fills in the ledger, want 1", n)
	}
}

func TestFiftyConcurrentIdenticalRequestsPlaceOneOrder(t *testing.T) {
	f := newFixture(t, defaults())
	const n = 50
	body := marketBuy("8306.T", 100)
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		answers = make([]answer, n)
		errs    = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			answers[i], errs[i] = tryPost(f.srv.URL, "acme", "burst", body)
		}()
	}
	close(start)
	wg.Wait()
	var created, replayed, conflicts int
	var firstBody []byte
	for i, a := range answers {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		switch {
		case a.status == 201 && a.header.Get(idempotency.ReplayedHeader) == "true":
			replayed++
		case a.status == 201:
			created++
			firstBody = a.body
		case a.status == 409:
			conflicts++
			if a.header.Get("Retry-After") == "" {
				t.Errorf("409 without Retry-After")
			}
		default:
			t.Errorf("request %d: %d %s", i, a.status, a.body)
		}
	}
	t.Logf("50 concurrent: %d created, %d replayed, %d in-flight conflicts", created, replayed, conflicts)
	if created != 1 || created+replayed+conflicts != n {
		t.Fatalf("created %d replayed %d conflicts %d", created, replayed, conflicts)
	}
	p, err := f.ledger.Rebuild(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	if fills, _ := f.ledger.Fills(context.Background(), "acme", ""); len(p.Orders) != 1 || fills != 1 {
		t.Fatalf("%d orders, %d fills in the ledger", len(p.Orders), fills)
	}
	retry := post(t, f.srv.URL, "acme", "burst", body)
	if !bytes.Equal(retry.body, firstBody) || retry.status != 201 {
		t.Fatalf("retry after completion differs:\n%s\n%s", retry.body, firstBody)
	}
}

func TestRedisDownFailsClosed(t *testing.T) {
	f := newFixture(t, defaults())
	f.redis.Kill()
	a := post(t, f.srv.URL, "acme", "k", marketBuy("7203.T", 100))
	if a.status != 503 || a.header.Get("Retry-After") == "" || a.header.Get("Content-Type") != httpx.ProblemContentType {
		t.Fatalf("Redis down: %d %v %s", a.status, a.header, a.body)
	}
	if n := f.quotes.Load(); n != 0 {
		t.Fatalf("the order was priced %d times with the idempotency store down", n)
	}
	f.redis.Restart()
	waitFor(t, "Redis back", func() bool {
		return post(t, f.srv.URL, "acme", "k", marketBuy("7203.T", 100)).status == 201
	})
	if n, _ := f.ledger.Fills(context.Background(), "acme", ""); n != 1 {
		t.Fatalf("%d fills", n)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second) // only stops a hang
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCrashBetweenFillAndResponse runs the function in a child process (this test binary,
// re-executed) that exits the moment the order's events are in the ledger, before the
// idempotent response is stored. The retry, served by a fresh process once the orphaned
// lock has expired, must answer with that same order, and the ledger must hold one fill.
func TestCrashBetweenFillAndResponse(t *testing.T) {
	rs := redistest.Start(t)
	port := redistest.FreePort(t)
	const lockTTL = 300 * time.Millisecond
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashingProcess$")
	cmd.Env = append(os.Environ(), "TRADE_CRASH_REDIS="+rs.URL(), "TRADE_CRASH_PORT="+strconv.Itoa(port), "TRADE_CRASH_LOCK_TTL="+lockTTL.String())
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	waitFor(t, "child listening", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	body := marketBuy("9984.T", 100)
	if a, err := tryPost(base, "acme", "crash", body); err == nil {
		t.Fatalf("the child answered %d %s; it should have died", a.status, a.body)
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("child exit: %v", err)
	}

	// The child died after the append, before publishing: the fill is in the outbox only.
	rcv := startFillReceiver(t, rs.URL())
	o := defaults()
	o.lockTTL = lockTTL
	o.pub = rcv.publisher(t)
	d := buildDeps(t, rs.URL(), o)
	srv := httptest.NewServer(newServer(d))
	defer srv.Close()
	var a answer
	waitFor(t, "orphaned lock to expire", func() bool {
		a = post(t, srv.URL, "acme", "crash", body)
		return a.status != 409
	})
	id := ledger.OrderID("acme", "crash")
	if a.status != 201 || a.order(t).ID != id || a.order(t).Status != ledger.StatusFilled {
		t.Fatalf("retry after crash: %d %s", a.status, a.body)
	}
	if n, err := d.ledger.Fills(context.Background(), "acme", ""); err != nil || n != 1 {
		t.Fatalf("%d fills (err %v), want 1", n, err)
	}
	if again := post(t, srv.URL, "acme", "crash", body); !bytes.Equal(again.body, a.body) || again.header.Get(idempotency.ReplayedHeader) != "true" {
		t.Fatalf("second retry: %d %s", again.status, again.body)
	}
	if other := post(t, srv.URL, "acme", "crash", marketBuy("9984.T", 200)); other.status != 422 {
		t.Fatalf("crashed key with another body: %d %s", other.status, other.body)
	}
	// The retries answered from the ledger and published nothing; the relay (what
	// execution-fills runs on every tick) finds the fill in the outbox and sends it, once.
	if got := rcv.handled.Load(); got != 0 {
		t.Fatalf("%d fill events before the relay ran, want 0", got)
	}
	relay := ledger.Relay{Ledger: d.ledger, Pub: o.pub}
	for i := range 3 {
		n, err := relay.FlushAll(context.Background(), time.Now().Add(time.Hour))
		if err != nil || n != map[bool]int{true: 1, false: 0}[i == 0] {
			t.Fatalf("relay pass %d: published %d, err %v", i, n, err)
		}
	}
	rcv.wantOnce(t, "acme", id)
}

// fillReceiver is a real CloudEvents receiver (events.Receiver, deduplicating by source
// and id in Redis) on a real HTTP server, counting the fills it handled.
type fillReceiver struct {
	srv     *httptest.Server
	handled atomic.Int64
	mu      sync.Mutex
	got     []events.OrderFilled
	ids     []string
}

func startFillReceiver(t *testing.T, redisURL string) *fillReceiver {
	t.Helper()
	rdb, err := store.Open(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	rv, err := events.NewReceiver(rdb, store.NewKeys("notif"), events.ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fr := &fillReceiver{}
	rv.Handle(events.TypeExecutionOrderFilled, func(ctx context.Context, e cloudevents.Event) error {
		var p events.OrderFilled
		if err := events.DecodeData(e, &p); err != nil {
			return err
		}
		fr.handled.Add(1)
		fr.mu.Lock()
		fr.got, fr.ids = append(fr.got, p), append(fr.ids, e.ID())
		fr.mu.Unlock()
		return nil
	})
	fr.srv = httptest.NewServer(rv.HTTPHandler())
	t.Cleanup(fr.srv.Close)
	return fr
}

func (fr *fillReceiver) publisher(t *testing.T) *events.Publisher {
	t.Helper()
	p, err := events.NewPublisher(fr.srv.URL, events.WithRetries(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// wantOnce checks that exactly one fill event of order id reached the handler.
func (fr *fillReceiver) wantOnce(t *testing.T, tenant, id string) {
	t.Helper()
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if len(fr.got) != 1 || fr.got[0].OrderID != id || fr.got[0].Tenant != tenant || !strings.HasPrefix(fr.ids[0], "fill."+tenant+".") {
		t.Fatalf("fill events handled: %+v ids %v, want one for %s", fr.got, fr.ids, id)
	}
}

// TestFillIsPublishedOnceByTheRequestAndNotAgainByTheRelay: a fill published straight after
// its append leaves the outbox, so the relay's pass sends nothing more; with the receiver
// down, the fill waits in the outbox and the relay delivers it once the receiver is back.
func TestFillIsPublishedOnceByTheRequestAndNotAgainByTheRelay(t *testing.T) {
	rs := redistest.Start(t)
	rcv := startFillReceiver(t, rs.URL())
	o := defaults()
	o.pub = rcv.publisher(t)
	d := buildDeps(t, rs.URL(), o)
	srv := httptest.NewServer(newServer(d))
	defer srv.Close()
	if a := post(t, srv.URL, "acme", "k1", marketBuy("7203.T", 100)); a.status != 201 {
		t.Fatalf("%d %s", a.status, a.body)
	}
	relay := ledger.Relay{Ledger: d.ledger, Pub: o.pub}
	if n, err := relay.FlushAll(context.Background(), time.Now().Add(time.Hour)); n != 0 || err != nil {
		t.Fatalf("relay re-published %d (err %v)", n, err)
	}
	rcv.wantOnce(t, "acme", ledger.OrderID("acme", "k1"))

	// The receiver's port closes: the order still fills (the ledger is the truth) and its
	// event stays in the outbox until a relay pass finds the receiver again.
	down := startFillReceiver(t, rs.URL())
	url := down.srv.URL
	down.srv.Close()
	pub, _ := events.NewPublisher(url, events.WithRetries(0, 0))
	d.relay.Pub = pub
	srv2 := httptest.NewServer(newServer(d))
	defer srv2.Close()
	if a := post(t, srv2.URL, "acme", "k2", marketBuy("7203.T", 100)); a.status != 201 {
		t.Fatalf("fill with the sink down: %d %s", a.status, a.body)
	}
	if n, err := (ledger.Relay{Ledger: d.ledger, Pub: pub}).FlushAll(context.Background(), time.Now().Add(time.Hour)); n != 0 || err == nil {
		t.Fatalf("relay with the sink down: %d %v", n, err)
	}
	back := startFillReceiver(t, rs.URL())
	if n, err := (ledger.Relay{Ledger: d.ledger, Pub: back.publisher(t)}).FlushAll(context.Background(), time.Now().Add(time.Hour)); n != 1 || err != nil {
		t.Fatalf("relay after the sink came back: %d %v", n, err)
	}
	back.wantOnce(t, "acme", ledger.OrderID("acme", "k2"))
}

// TestCrashingProcess is the child of TestCrashBetweenFillAndResponse.
func TestCrashingProcess(t *testing.T) {
	url := os.Getenv("TRADE_CRASH_REDIS")
	if url == "" {
		t.Skip("runs only as the child of TestCrashBetweenFillAndResponse")
	}
	ttl, _ := time.ParseDuration(os.Getenv("TRADE_CRASH_LOCK_TTL"))
	o := defaults()
	o.lockTTL = ttl
	o.hook = func(string) { os.Exit(3) }
	srv := &http.Server{Addr: "127.0.0.1:" + os.Getenv("TRADE_CRASH_PORT"), Handler: newServer(buildDeps(t, url, o)), ReadHeaderTimeout: time.Second}
	_ = srv.ListenAndServe()
}
