package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/idempotency"
	"github.com/day-trade/platform/shared/trading"
)

// callFunction sends one request straight to a function through the activator (by its
// Knative host name), as a caller inside the mesh would: without the gateway, so without an
// identity token.
func (e env) callFunction(t *testing.T, method, fn, path string, hdr map[string]string, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.p.ActivatorURL()+path, strings.NewReader(body))
	req.Host = fn + ".day-trade.svc.cluster.local"
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// callGateway sends one request through the gateway with the development key (tenant
// gateway.DevKeyTenant), which mints the identity token the execution functions require.
func (e env) callGateway(t *testing.T, method, path string, hdr map[string]string, body string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.p.GatewayURL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+e.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

// TestPaperTradeIsPlacedOnceAcrossABurstAndAKilledProcess runs the real execution-trade
// binary behind the real gateway: a burst of identical requests places one order, the
// process is then killed, and the retry (served by a new process after a cold start)
// replays the same answer. The functions verify the gateway's identity tokens, so a direct
// call naming a tenant in X-Tenant is refused.
func TestPaperTradeIsPlacedOnceAcrossABurstAndAKilledProcess(t *testing.T) {
	e := startPlatform(t, time.Minute)
	// A limit buy at the last close is valid at any hour: it fills in session, rests outside.
	var s stocks
	if code, _, b := e.callFunction(t, "GET", "data-stocks", "/api/v1/data/stocks/7203.T?period=5d&interval=1d", nil, ""); code != 200 || json.Unmarshal(b, &s) != nil || len(s.DataPoints) == 0 {
		t.Fatalf("quote: %d %s", code, b)
	}
	px := trading.RoundToTick(decimal.NewFromFloat(s.DataPoints[len(s.DataPoints)-1].Close), true, trading.RoundDown)
	body := fmt.Sprintf(`{"symbol":"7203.T","side":"buy","type":"limit","quantity":100,"limit_price":%q}`, px)
	hdr := map[string]string{idempotency.Header: "e2e-1"}

	const n = 20
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		counts = map[string]int{}
		first  []byte
	)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, h, b := e.callGateway(t, "POST", "/api/v1/execution/trade", hdr, body)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case code == 201 && h.Get(idempotency.ReplayedHeader) == "true":
				counts["replayed"]++
			case code == 201:
				counts["created"]++
				first = b
			case code == 409:
				counts["in flight"]++
			default:
				counts[fmt.Sprintf("%d %s", code, b)]++
			}
		}()
	}
	wg.Wait()
	t.Logf("%d identical requests: %v", n, counts)
	if counts["created"] != 1 || counts["created"]+counts["replayed"]+counts["in flight"] != n {
		t.Fatalf("burst: %v", counts)
	}
	var order struct {
		ID     string `json:"order_id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(first, &order); err != nil || order.ID == "" {
		t.Fatalf("order %s", first)
	}

	if err := e.p.Kill("execution-trade"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "execution-trade gone", func() bool { return !e.p.Running("execution-trade") })
	code, h, again := e.callGateway(t, "POST", "/api/v1/execution/trade", hdr, body)
	if code != 201 || h.Get(idempotency.ReplayedHeader) != "true" || !bytes.Equal(again, first) {
		t.Fatalf("retry after the kill: %d %s\nfirst: %s", code, again, first)
	}
	if n := len(e.p.ColdStarts("execution-trade")); n < 2 {
		t.Fatalf("%d cold starts of execution-trade, want a restart", n)
	}

	var orders struct {
		Orders []struct {
			ID string `json:"order_id"`
		} `json:"orders"`
	}
	if code, _, b := e.callGateway(t, "GET", "/api/v1/execution/orders", nil, ""); code != 200 || json.Unmarshal(b, &orders) != nil || len(orders.Orders) != 1 || orders.Orders[0].ID != order.ID {
		t.Fatalf("orders: %d %s", code, b)
	}
	if code, _, b := e.callGateway(t, "GET", "/api/v1/execution/positions", nil, ""); code != 200 || !strings.Contains(string(b), `"tenant":"`+gateway.DevKeyTenant+`"`) {
		t.Fatalf("positions: %d %s", code, b)
	}
	// Inside the mesh, X-Tenant without the gateway's token reaches no account.
	victim := map[string]string{trading.TenantHeader: gateway.DevKeyTenant}
	for fn, path := range map[string]string{"execution-orders": "/api/v1/execution/orders", "execution-positions": "/api/v1/execution/positions"} {
		if code, _, b := e.callFunction(t, "GET", fn, path, victim, ""); code != 401 || strings.Contains(string(b), order.ID) {
			t.Fatalf("%s with X-Tenant and no token: %d %s", fn, code, b)
		}
	}
	// Bad input from the real binary: an odd lot is a 400 naming the rule.
	bad := map[string]string{idempotency.Header: "e2e-bad"}
	if code, _, b := e.callGateway(t, "POST", "/api/v1/execution/trade", bad, `{"symbol":"7203.T","side":"buy","type":"market","quantity":150}`); code != 400 || !strings.Contains(string(b), `"rule":"lot_size"`) {
		t.Fatalf("odd lot: %d %s", code, b)
	}
}

// TestTradingRestingOrderAndFillSweepOnThePlatform runs execution-fills as the catalog
// declares it: a limit buy far below the market rests (at any hour), execution ticks sent
// to the function as the Broker sends them are acknowledged, a redelivered tick is a no-op,
// and the order is neither filled nor expired by them (no bar reached it, the session has
// not closed). The fill of a crossed order, exactly once under parallel sweeps, is proven
// in functions/execution-fills against real Redis with a fixed tape and clock.
func TestTradingRestingOrderAndFillSweepOnThePlatform(t *testing.T) {
	e := startPlatform(t, time.Minute)
	var s stocks
	if code, _, b := e.callFunction(t, "GET", "data-stocks", "/api/v1/data/stocks/6758.T?period=5d&interval=1d", nil, ""); code != 200 || json.Unmarshal(b, &s) != nil || len(s.DataPoints) == 0 {
		t.Fatalf("quote: %d %s", code, b)
	}
	// 7% under the last close: inside the daily band at every price level, far from the tape.
	last := decimal.NewFromFloat(s.DataPoints[len(s.DataPoints)-1].Close)
	px := trading.RoundToTick(last.Mul(decimal.RequireFromString("0.93")), true, trading.RoundUp)
	body := fmt.Sprintf(`{"symbol":"6758.T","side":"buy","type":"limit","quantity":100,"limit_price":%q}`, px)
	hdr := map[string]string{idempotency.Header: "e2e-rest"}
	code, _, b := e.callGateway(t, "POST", "/api/v1/execution/trade", hdr, body)
	var placed struct {
		ID        string    `json:"order_id"`
		Status    string    `json:"status"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if code != 201 || json.Unmarshal(b, &placed) != nil || placed.Status != "open" || placed.ExpiresAt.IsZero() {
		t.Fatalf("resting order: %d %s", code, b)
	}
	tick := func(id string) {
		t.Helper()
		h := map[string]string{"Ce-Specversion": "1.0", "Ce-Id": id, "Ce-Type": "com.daytrade.execution.tick",
			"Ce-Source": "//day-trade/execution-scheduler", "Ce-Time": time.Now().UTC().Format(time.RFC3339)}
		if code, _, b := e.callFunction(t, "POST", "execution-fills", "/", h, `{}`); code/100 != 2 {
			t.Fatalf("tick %s: %d %s", id, code, b)
		}
	}
	tick("e2e-tick-1")
	tick("e2e-tick-1") // redelivered
	tick("e2e-tick-2")
	var orders struct {
		Orders []struct {
			ID             string `json:"order_id"`
			Status         string `json:"status"`
			FilledQuantity int64  `json:"filled_quantity"`
		} `json:"orders"`
	}
	if code, _, b := e.callGateway(t, "GET", "/api/v1/execution/orders", nil, ""); code != 200 || json.Unmarshal(b, &orders) != nil ||
		len(orders.Orders) != 1 || orders.Orders[0].ID != placed.ID || orders.Orders[0].Status != "open" || orders.Orders[0].FilledQuantity != 0 {
		t.Fatalf("after the ticks: %d %s", code, b)
	}
	if n := len(e.p.ColdStarts("execution-fills")); n < 1 {
		t.Fatalf("execution-fills never started")
	}
}
