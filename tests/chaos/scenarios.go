package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/day-trade/platform/knative/local"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/idempotency"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/store"
)

const dataPath = "/api/v1/data/stocks/7203.T?period=1mo&interval=1d"

// Phase is one stretch of a scenario's load with its counts.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
	Route   string  `json:"route"`
	tally
}

// Transition is a breaker state change seen on the gateway's /metrics (polled every 50 ms).
type Transition struct {
	AtS   float64 `json:"at_s"`
	State string  `json:"state"`
}

// trade is one single-attempt trade request of a scenario that checks what was placed.
type trade struct {
	key, tenant string
	sent        time.Time
	code        int
	cause       string
	retryAfter  string
	lat         time.Duration
}

// tradeLoad sends one trade per tick (unique key each, no retries) until stop is closed.
func tradeLoad(ctx context.Context, gw, apiKey, tenant, price string, rate int, stop <-chan struct{}) []trade {
	var (
		mu  sync.Mutex
		out []trade
		wg  sync.WaitGroup
	)
	c := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256}}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	prefix := "t-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	for i := 0; ; i++ {
		select {
		case <-stop:
			wg.Wait()
			return out
		case <-ctx.Done():
			wg.Wait()
			return out
		case <-tick.C:
		}
		key := fmt.Sprintf("%s-%d", prefix, i)
		wg.Go(func() {
			body := fmt.Sprintf(`{"symbol":"7203.T","side":"buy","type":"limit","quantity":100,"limit_price":%q}`, price)
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/api/v1/execution/trade", bytes.NewReader([]byte(body)))
			req.Header.Set("Authorization", "Bearer "+apiKey)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set(idempotency.Header, key)
			t := trade{key: key, tenant: tenant, sent: time.Now()}
			resp, err := c.Do(req)
			t.lat = time.Since(t.sent)
			if err != nil {
				t.cause = "transport error/timeout"
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				t.code, t.retryAfter = resp.StatusCode, resp.Header.Get("Retry-After")
				if t.code >= 300 {
					var p struct {
						Detail string `json:"detail"`
					}
					_ = json.Unmarshal(b, &p)
					t.cause = classify(t.code, p.Detail)
				}
			}
			mu.Lock()
			out = append(out, t)
			mu.Unlock()
		})
	}
}

// TradeCheck is what a scenario's trades did and what the ledger holds for them.
type TradeCheck struct {
	Requests        int            `json:"requests"`
	ByStatus        map[string]int `json:"by_status"`
	Causes          map[string]int `json:"non_2xx_by_cause,omitempty"`
	FailClosed      int            `json:"limiter_503"`
	FailClosedRetry int            `json:"limiter_503_with_retry_after"`
	// PlacedAfterRefusal counts refused requests (any non-2xx) whose order is in the ledger:
	// for the limiter's fail-closed 503 it must be 0 (the request never reached the function).
	PlacedAfterLimiter503 int `json:"placed_after_limiter_503"`
	PlacedAfterOther5xx   int `json:"placed_after_other_5xx_or_timeout"`
	AckedMissing          int `json:"acknowledged_but_missing"`
	Duplicated            int `json:"duplicated"`
}

func checkTrades(ctx context.Context, pl *platform, ts []trade, during func(trade) bool) (TradeCheck, error) {
	tc := TradeCheck{ByStatus: map[string]int{}, Causes: map[string]int{}}
	rdb, err := store.Open(pl.redis.url())
	if err != nil {
		return tc, err
	}
	defer rdb.Close()
	l := ledger.New(rdb, store.NewKeys("exec"))
	decisions := map[string]int{}
	tenants := map[string]bool{}
	for _, t := range ts {
		tenants[t.tenant] = true
	}
	for t := range tenants {
		if err := l.Events(ctx, t, ledger.Start, func(e ledger.Event) error {
			if e.Type == ledger.OrderAccepted || e.Type == ledger.OrderRejected {
				decisions[e.OrderID]++
			}
			return nil
		}); err != nil {
			return tc, err
		}
	}
	for _, c := range decisions {
		if c > 1 {
			tc.Duplicated += c - 1
		}
	}
	for _, t := range ts {
		placed := decisions[ledger.OrderID(t.tenant, t.key)] > 0
		if t.code == http.StatusCreated && !placed {
			tc.AckedMissing++
		}
		if during != nil && !during(t) {
			continue
		}
		tc.Requests++
		code := strconv.Itoa(t.code)
		if t.code == 0 {
			code = "error"
		}
		tc.ByStatus[code]++
		if t.cause != "" {
			tc.Causes[t.cause]++
		}
		switch {
		case t.cause == "gateway limiter (fail-closed)":
			tc.FailClosed++
			if t.retryAfter != "" {
				tc.FailClosedRetry++
			}
			if placed {
				tc.PlacedAfterLimiter503++
			}
		case (t.code >= 500 || t.code == 0) && placed:
			tc.PlacedAfterOther5xx++
		}
	}
	return tc, nil
}

// RedisKill is scenario 2.
type RedisKill struct {
	TargetRate     int        `json:"target_rate"`
	DownS          float64    `json:"redis_down_s"`
	Data           []Phase    `json:"data_route"`
	Limiter5xx     int        `json:"limiter_5xx_on_fail_open_route"`
	DataFirstOKms  float64    `json:"data_first_2xx_after_redis_back_ms"`
	DataLastBadms  float64    `json:"data_last_non_2xx_after_redis_back_ms"`
	TradeRate      int        `json:"trade_rate"`
	TradesOutage   TradeCheck `json:"trades_during_outage"`
	TradesAll      TradeCheck `json:"trades_all"`
	TradeFirstOKms float64    `json:"trade_first_201_after_redis_back_ms"`
}

func (r *runEnv) redisKill(ctx context.Context, rate int) (*RedisKill, error) {
	pl, err := startPlatform(ctx, r, "rediskill", platformOpts{})
	if err != nil {
		return nil, err
	}
	defer pl.close()
	keys, err := pl.createKeys(ctx, []string{"rk"})
	if err != nil {
		return nil, err
	}
	prices, err := lastCloses(ctx, pl.gw, keys["rk"])
	if err != nil {
		return nil, err
	}
	rk := &RedisKill{TargetRate: rate, TradeRate: r.o.tradeRate}
	tr := getTarget(pl.gw+dataPath, keys["rk"])
	attack(ctx, tr, rate, r.o.warmup, "warm-up")

	before, down, after := r.o.before, r.o.downFor, r.o.after
	var tKill, tBack time.Time
	stopTrades := make(chan struct{})
	var trades []trade
	var wg sync.WaitGroup
	wg.Go(func() { trades = tradeLoad(ctx, pl.gw, keys["rk"], "rk", prices["7203.T"], r.o.tradeRate, stopTrades) })
	wg.Go(func() {
		_ = sleepCtx(ctx, before)
		fmt.Fprintf(os.Stderr, "rediskill: SIGKILL redis-server for %s\n", down)
		tKill = time.Now()
		pl.redis.kill()
		_ = sleepCtx(ctx, down)
		if err := pl.redis.start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "rediskill: restart:", err)
		}
		tBack = time.Now()
	})
	start := time.Now()
	res := attack(ctx, tr, rate, before+down+after, "rediskill")
	close(stopTrades)
	wg.Wait()
	if tKill.IsZero() || tBack.IsZero() {
		return nil, fmt.Errorf("rediskill: the outage did not happen")
	}
	rk.DownS = tBack.Sub(tKill).Seconds()
	rk.Data = []Phase{
		{Name: "whole run", Seconds: time.Since(start).Seconds(), tally: count(res, nil)},
		{Name: "before the kill", Seconds: tKill.Sub(start).Seconds(), tally: count(res, between(start, tKill))},
		{Name: "Redis dead", Seconds: rk.DownS, tally: count(res, between(tKill, tBack))},
		{Name: "after Redis is back", Seconds: after.Seconds(), tally: count(res, between(tBack, time.Now().Add(time.Hour)))},
	}
	rk.Limiter5xx = rk.Data[0].Causes["gateway limiter (fail-closed)"]
	fo, lb := recovery(res, tBack, okResult)
	rk.DataFirstOKms, rk.DataLastBadms = ms(fo), ms(lb)
	if rk.TradesOutage, err = checkTrades(ctx, pl, trades, func(t trade) bool { return !t.sent.Before(tKill) && t.sent.Before(tBack) }); err != nil {
		return nil, err
	}
	if rk.TradesAll, err = checkTrades(ctx, pl, trades, nil); err != nil {
		return nil, err
	}
	rk.TradeFirstOKms = -1
	for _, t := range trades {
		if t.code == http.StatusCreated && !t.sent.Before(tBack) {
			if d := t.sent.Add(t.lat).Sub(tBack); rk.TradeFirstOKms < 0 || ms(d) < rk.TradeFirstOKms {
				rk.TradeFirstOKms = ms(d)
			}
		}
	}
	return rk, nil
}

func okResult(r vegeta.Result) bool { return r.Code >= 200 && r.Code < 300 }

// SlowRedis is scenario 3.
type SlowRedis struct {
	LatencyMs    int        `json:"added_latency_ms"`
	Rate         int        `json:"rate"`
	Data         []Phase    `json:"data_route"`
	TradeRate    int        `json:"trade_rate"`
	TradesSlow   TradeCheck `json:"trades_while_slow"`
	TradesAll    TradeCheck `json:"trades_all"`
	RecoveredMs  float64    `json:"back_to_baseline_after_heal_ms"`
	RecoveryRule string     `json:"recovery_rule"`
}

func (r *runEnv) slowRedis(ctx context.Context) (*SlowRedis, error) {
	pl, err := startPlatform(ctx, r, "slowredis", platformOpts{slowRedis: true})
	if err != nil {
		return nil, err
	}
	defer pl.close()
	keys, err := pl.createKeys(ctx, []string{"slow"})
	if err != nil {
		return nil, err
	}
	prices, err := lastCloses(ctx, pl.gw, keys["slow"])
	if err != nil {
		return nil, err
	}
	s := &SlowRedis{LatencyMs: 500, Rate: r.o.slowRate, TradeRate: r.o.tradeRate}
	tr := getTarget(pl.gw+dataPath, keys["slow"])
	attack(ctx, tr, r.o.slowRate, r.o.warmup, "warm-up")
	stopTrades := make(chan struct{})
	var trades []trade
	var wg sync.WaitGroup
	wg.Go(func() {
		trades = tradeLoad(ctx, pl.gw, keys["slow"], "slow", prices["7203.T"], r.o.tradeRate, stopTrades)
	})
	var tSlow, tHeal time.Time
	wg.Go(func() {
		_ = sleepCtx(ctx, r.o.before)
		tSlow = time.Now()
		if err := pl.proxy.setLatency(500 * time.Millisecond); err != nil {
			fmt.Fprintln(os.Stderr, "slowredis:", err)
		}
		_ = sleepCtx(ctx, r.o.downFor)
		_ = pl.proxy.setLatency(0)
		tHeal = time.Now()
	})
	start := time.Now()
	res := attack(ctx, tr, r.o.slowRate, r.o.before+r.o.downFor+2*r.o.after, "slowredis")
	close(stopTrades)
	wg.Wait()
	base := count(res, between(start, tSlow))
	s.Data = []Phase{
		{Name: "baseline (no latency)", Seconds: tSlow.Sub(start).Seconds(), tally: base},
		{Name: "Redis +500 ms", Seconds: tHeal.Sub(tSlow).Seconds(), tally: count(res, between(tSlow, tHeal))},
		{Name: "after the latency is removed", Seconds: 2 * r.o.after.Seconds(), tally: count(res, between(tHeal, time.Now().Add(time.Hour)))},
	}
	limit := time.Duration(max(2*base.P99ms, 5) * float64(time.Millisecond))
	s.RecoveryRule = fmt.Sprintf("after removing the latency, the last answer that was non-2xx or slower than max(2× baseline p99, 5 ms) = %.1f ms", ms(limit))
	_, lb := recovery(res, tHeal, func(r vegeta.Result) bool { return okResult(r) && r.Latency <= limit })
	s.RecoveredMs = ms(lb)
	if s.TradesSlow, err = checkTrades(ctx, pl, trades, func(t trade) bool { return !t.sent.Before(tSlow) && t.sent.Before(tHeal) }); err != nil {
		return nil, err
	}
	if s.TradesAll, err = checkTrades(ctx, pl, trades, nil); err != nil {
		return nil, err
	}
	return s, nil
}

// watchBreaker polls the gateway's breaker state for upstream every 50 ms until stop.
func watchBreaker(pl *platform, upstream string, start time.Time, stop <-chan struct{}) <-chan []Transition {
	out := make(chan []Transition, 1)
	go func() {
		names := map[int]string{0: "closed", 1: "half-open", 2: "open", -1: "unreadable"}
		var tr []Transition
		last := -2
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if s := pl.breakerState(upstream); s != last {
				tr = append(tr, Transition{AtS: time.Since(start).Seconds(), State: names[s]})
				last = s
			}
			select {
			case <-stop:
				out <- tr
				return
			case <-t.C:
			}
		}
	}()
	return out
}

// Breaker is scenario 4.
type Breaker struct {
	Rate             int          `json:"rate"`
	FailS            float64      `json:"failing_s"`
	Phases           []Phase      `json:"phases"`
	UpstreamAttempts int64        `json:"upstream_attempts_while_failing"`
	Transitions      []Transition `json:"breaker_transitions"`
	OpenedAfterMs    float64      `json:"opened_after_failure_began_ms"`
	HalfOpens        int          `json:"half_open_periods_while_failing"`
	FirstOKms        float64      `json:"first_2xx_after_heal_ms"`
	ClosedAfterMs    float64      `json:"breaker_closed_after_heal_ms"`
	LastBadms        float64      `json:"last_non_2xx_after_heal_ms"`
	HealS            float64      `json:"healed_at_s"`
	FailAtS          float64      `json:"failure_began_at_s"`
}

const victim = "ml-models" // GET /api/v1/ml/models: idempotent, no cache, one function

func (r *runEnv) breaker(ctx context.Context) (*Breaker, error) {
	pl, err := startPlatform(ctx, r, "breaker", platformOpts{victims: []string{victim}, env: []string{"LOG_LEVEL=info"}})
	if err != nil {
		return nil, err
	}
	defer pl.close()
	keys, err := pl.createKeys(ctx, []string{"brk"})
	if err != nil {
		return nil, err
	}
	tr := getTarget(pl.gw+"/api/v1/ml/models", keys["brk"])
	attack(ctx, tr, r.o.faultRate, r.o.warmup, "warm-up")
	b := &Breaker{Rate: r.o.faultRate, FailS: r.o.downFor.Seconds()}
	start := time.Now()
	stop := make(chan struct{})
	trC := watchBreaker(pl, victim, start, stop)
	var tPre, tFail, tHeal time.Time
	var attempts int64
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = sleepCtx(ctx, r.o.before)
		_, _ = pl.fault(victim, http.MethodPost, "/_fault/reset")
		tPre = time.Now()
		_, _ = pl.fault(victim, http.MethodPost, "/_fault/mode?m=fail")
		tFail = time.Now() // requests sent while the switch was under way count in neither phase
		_ = sleepCtx(ctx, r.o.downFor)
		st, _ := pl.faultStats(victim)
		attempts = st.ByStatus["Service Unavailable"]
		tHeal = time.Now()
		_, _ = pl.fault(victim, http.MethodPost, "/_fault/mode?m=ok")
	})
	res := attack(ctx, tr, r.o.faultRate, r.o.before+r.o.downFor+r.o.after, "breaker")
	wg.Wait()
	close(stop)
	<-trC
	time.Sleep(200 * time.Millisecond) // the last log lines reach the file
	b.Transitions = pl.breakerLog(victim, start)
	b.UpstreamAttempts = attempts
	b.FailAtS, b.HealS = tFail.Sub(start).Seconds(), tHeal.Sub(start).Seconds()
	b.Phases = []Phase{
		{Name: "healthy", Seconds: tPre.Sub(start).Seconds(), tally: count(res, between(start, tPre))},
		{Name: "100% 503", Seconds: tHeal.Sub(tFail).Seconds(), tally: count(res, between(tFail, tHeal))},
		{Name: "healed", Seconds: r.o.after.Seconds(), tally: count(res, between(tHeal, time.Now().Add(time.Hour)))},
	}
	b.OpenedAfterMs, b.ClosedAfterMs = -1, -1
	for _, t := range b.Transitions {
		at := start.Add(time.Duration(t.AtS * float64(time.Second)))
		switch {
		case t.State == "open" && b.OpenedAfterMs < 0 && !at.Before(tFail):
			b.OpenedAfterMs = ms(at.Sub(tFail))
		case t.State == "half-open" && !at.Before(tFail) && at.Before(tHeal):
			b.HalfOpens++
		case t.State == "closed" && !at.Before(tHeal) && b.ClosedAfterMs < 0:
			b.ClosedAfterMs = ms(at.Sub(tHeal))
		}
	}
	fo, lb := recovery(res, tHeal, okResult)
	b.FirstOKms, b.LastBadms = ms(fo), ms(lb)
	return b, nil
}

// Flaky is scenario 5.
type Flaky struct {
	Rate             int          `json:"rate"`
	Seconds          float64      `json:"seconds"`
	Client           tally        `json:"client"`
	UpstreamAttempts int64        `json:"upstream_attempts"`
	Upstream503      int64        `json:"upstream_503"`
	Amplification    float64      `json:"amplification"`
	BudgetRatio      float64      `json:"retry_budget_ratio"`
	BudgetBound      float64      `json:"amplification_bound"`
	Transitions      []Transition `json:"breaker_transitions"`
}

func (r *runEnv) flaky(ctx context.Context) (*Flaky, error) {
	pl, err := startPlatform(ctx, r, "flaky", platformOpts{victims: []string{victim}, env: []string{"LOG_LEVEL=info"}})
	if err != nil {
		return nil, err
	}
	defer pl.close()
	keys, err := pl.createKeys(ctx, []string{"flaky"})
	if err != nil {
		return nil, err
	}
	tr := getTarget(pl.gw+"/api/v1/ml/models", keys["flaky"])
	attack(ctx, tr, r.o.faultRate, r.o.warmup, "warm-up")
	if _, err := pl.fault(victim, http.MethodPost, "/_fault/mode?m=flaky"); err != nil {
		return nil, err
	}
	if _, err := pl.fault(victim, http.MethodPost, "/_fault/reset"); err != nil {
		return nil, err
	}
	d := r.o.before + r.o.downFor
	f := &Flaky{Rate: r.o.faultRate, Seconds: d.Seconds(), BudgetRatio: 0.2}
	start := time.Now()
	stop := make(chan struct{})
	trC := watchBreaker(pl, victim, start, stop)
	res := attack(ctx, tr, r.o.faultRate, d, "flaky")
	close(stop)
	<-trC
	time.Sleep(200 * time.Millisecond)
	f.Transitions = pl.breakerLog(victim, start)
	st, err := pl.faultStats(victim)
	if err != nil {
		return nil, err
	}
	f.Client = count(res, nil)
	f.UpstreamAttempts, f.Upstream503 = st.Requests, st.ByStatus["Service Unavailable"]
	if f.Client.Requests > 0 {
		n := float64(f.Client.Requests)
		f.Amplification = float64(f.UpstreamAttempts) / n
		// The gateway's budget (resilience.NewBudget(RETRY_BUDGET=0.2, 5/s)): 0.2 retries per
		// request, plus 5 per second, plus the 50 tokens a full bucket starts with.
		f.BudgetBound = 1 + (0.2*n+5*f.Seconds+50)/n
	}
	return f, nil
}

// Hang is scenario 6.
type Hang struct {
	HangRate      int          `json:"hanging_route_rate"`
	OtherRate     int          `json:"other_route_rate"`
	RouteTimeout  string       `json:"route_timeout"`
	Hanging       []Phase      `json:"hanging_route"`
	Other         []Phase      `json:"other_route"`
	P99Ratio      float64      `json:"other_p99_fault_over_baseline"`
	MaxInFlight   int64        `json:"max_requests_held_by_the_hanging_function"`
	Transitions   []Transition `json:"breaker_transitions"`
	FirstOKms     float64      `json:"first_2xx_after_heal_ms"`
	LastBadms     float64      `json:"last_non_2xx_after_heal_ms"`
	BulkheadLimit int          `json:"bulkhead_limit"`
}

func (r *runEnv) hang(ctx context.Context) (*Hang, error) {
	rf, err := os.CreateTemp(r.dir, "routes-*.yaml")
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(rf, "routes:\n  - method: GET\n    path: /api/v1/ml/models\n    timeout: %s\n", r.o.hangTimeout)
	rf.Close()
	pl, err := startPlatform(ctx, r, "hang", platformOpts{victims: []string{victim}, env: []string{"GATEWAY_ROUTES_FILE=" + rf.Name(), "LOG_LEVEL=info"}})
	if err != nil {
		return nil, err
	}
	defer pl.close()
	keys, err := pl.createKeys(ctx, []string{"hang"})
	if err != nil {
		return nil, err
	}
	h := &Hang{HangRate: r.o.hangRate, OtherRate: r.o.slowRate, RouteTimeout: r.o.hangTimeout.String(), BulkheadLimit: 512}
	hangTr := getTarget(pl.gw+"/api/v1/ml/models", keys["hang"])
	otherTr := getTarget(pl.gw+dataPath, keys["hang"])
	attack(ctx, otherTr, r.o.slowRate, r.o.warmup, "warm-up")
	attack(ctx, hangTr, r.o.hangRate, r.o.warmup, "warm-up")

	start := time.Now()
	stop := make(chan struct{})
	trC := watchBreaker(pl, victim, start, stop)
	var tPre, tHang, tHeal time.Time
	var wg sync.WaitGroup
	var hangRes, otherRes []vegeta.Result
	total := r.o.before + r.o.downFor + r.o.after
	wg.Go(func() { hangRes = attack(ctx, hangTr, r.o.hangRate, total, "hang") })
	wg.Go(func() { otherRes = attack(ctx, otherTr, r.o.slowRate, total, "other") })
	wg.Go(func() {
		_ = sleepCtx(ctx, r.o.before)
		tPre = time.Now()
		_, _ = pl.fault(victim, http.MethodPost, "/_fault/mode?m=hang")
		tHang = time.Now() // requests sent while the switch was under way count in neither phase
		for end := time.Now().Add(r.o.downFor); time.Now().Before(end); _ = sleepCtx(ctx, 100*time.Millisecond) {
			if st, err := pl.faultStats(victim); err == nil {
				h.MaxInFlight = max(h.MaxInFlight, st.InFlight)
			}
		}
		tHeal = time.Now()
		_, _ = pl.fault(victim, http.MethodPost, "/_fault/mode?m=ok")
	})
	wg.Wait()
	close(stop)
	<-trC
	time.Sleep(200 * time.Millisecond)
	h.Transitions = pl.breakerLog(victim, start)
	end := time.Now().Add(time.Hour)
	// A request sent just before the heal can still be on its way through the gateway and the
	// activator when the mode flips back to ok, and then it is answered 200. Requests sent in
	// the last inTransit before the heal count in neither phase, as those sent during the
	// switch on do.
	const inTransit = 250 * time.Millisecond
	hangEnd := tHeal.Add(-inTransit)
	if hangEnd.Before(tHang) {
		hangEnd = tHang
	}
	h.Hanging = []Phase{
		{Name: "baseline", Seconds: tPre.Sub(start).Seconds(), tally: count(hangRes, between(start, tPre))},
		{Name: "hanging", Seconds: hangEnd.Sub(tHang).Seconds(), tally: count(hangRes, between(tHang, hangEnd))},
		{Name: "healed", Seconds: r.o.after.Seconds(), tally: count(hangRes, between(tHeal, end))},
	}
	h.Other = []Phase{
		{Name: "baseline", Seconds: tPre.Sub(start).Seconds(), tally: count(otherRes, between(start, tPre))},
		{Name: "while the other function hangs", Seconds: hangEnd.Sub(tHang).Seconds(), tally: count(otherRes, between(tHang, hangEnd))},
	}
	if b := h.Other[0].P99ms; b > 0 {
		h.P99Ratio = h.Other[1].P99ms / b
	}
	fo, lb := recovery(hangRes, tHeal, okResult)
	h.FirstOKms, h.LastBadms = ms(fo), ms(lb)
	return h, nil
}

// MidJob is scenario 7.
type MidJob struct {
	Jobs        int      `json:"jobs"`
	Symbols     int      `json:"symbols_per_job"`
	KilledMid   int      `json:"worker_killed_mid_job"`
	Succeeded   int      `json:"succeeded"`
	Lost        int      `json:"symbols_lost"`
	Doubled     int      `json:"symbols_written_twice"`
	JobSeconds  []string `json:"job_seconds"`
	ResumeMs    []string `json:"progress_resumed_after_kill_ms"`
	ColdStarts  int      `json:"worker_cold_starts"`
	Failures    []string `json:"failures,omitempty"`
	EventLeaseS float64  `json:"event_lease_s"`
}

func (r *runEnv) midJob(ctx context.Context) (*MidJob, error) {
	pl, err := startPlatform(ctx, r, "midjob", platformOpts{
		env:    []string{"EVENT_LEASE=2s", "BATCH_CHUNK=5", "BATCH_PARALLEL=1"},
		broker: local.BrokerOptions{Retry: 8, BackoffDelay: 50 * time.Millisecond},
	})
	if err != nil {
		return nil, err
	}
	defer pl.close()
	keys, err := pl.createKeys(ctx, []string{"jobs"})
	if err != nil {
		return nil, err
	}
	rdb, err := store.Open(pl.redis.url())
	if err != nil {
		return nil, err
	}
	defer rdb.Close()
	st := jobs.NewStore(rdb, jobs.Options{WatchResync: time.Second})
	const nsym = 50
	m := &MidJob{Jobs: r.o.jobs, Symbols: nsym, EventLeaseS: 2}
	base := 1000 + rand.IntN(5000)
	for i := range r.o.jobs {
		syms := make([]string, nsym)
		for k := range syms {
			syms[k] = fmt.Sprintf("%d.T", base+i*nsym+k)
		}
		body, _ := json.Marshal(map[string]any{"symbols": syms, "period": "3mo", "interval": "1d"})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, pl.gw+"/api/v1/data/batch-fetch", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+keys["jobs"])
		req.Header.Set("Content-Type", "application/json")
		resp, err := ctlClient.Do(req)
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var acc batch.Accepted
		if resp.StatusCode != http.StatusAccepted || json.Unmarshal(b, &acc) != nil {
			return nil, fmt.Errorf("batch-fetch: %d %s", resp.StatusCode, b)
		}
		t0 := time.Now()
		killAt := int64(5 + rand.IntN(nsym-15))
		wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		updates, err := st.Watch(wctx, "jobs", acc.JobID)
		if err != nil {
			cancel()
			return nil, err
		}
		var last jobs.Job
		var killedAt time.Time
		var doneAtKill int64
		resumed := ""
		for j := range updates {
			last = j
			if killedAt.IsZero() && j.Status == jobs.StatusRunning && j.Done >= killAt {
				if pl.p.Kill("data-batch-worker") == nil {
					killedAt, doneAtKill = time.Now(), j.Done
					m.KilledMid++
				}
			} else if !killedAt.IsZero() && resumed == "" && j.Done > doneAtKill {
				resumed = fmt.Sprintf("%.0f", ms(time.Since(killedAt)))
			}
		}
		cancel()
		m.JobSeconds = append(m.JobSeconds, fmt.Sprintf("%.1f", time.Since(t0).Seconds()))
		if resumed != "" {
			m.ResumeMs = append(m.ResumeMs, resumed)
		}
		if last.Status == jobs.StatusSucceeded && last.Done == nsym {
			m.Succeeded++
		} else {
			m.Failures = append(m.Failures, fmt.Sprintf("job %s ended %s with %d/%d", acc.JobID, last.Status, last.Done, nsym))
		}
		writes, err := batch.NewResults(rdb, store.NewKeys("data"), 0).Writes(ctx, acc.JobID)
		if err != nil {
			return nil, err
		}
		seen := map[string]int{}
		for _, s := range writes {
			seen[s]++
		}
		for _, s := range syms {
			switch {
			case seen[s] == 0:
				m.Lost++
			case seen[s] > 1:
				m.Doubled += seen[s] - 1
			}
		}
	}
	m.ColdStarts = len(pl.p.ColdStarts("data-batch-worker"))
	return m, nil
}

func sortDur(d []time.Duration) { slices.Sort(d) }
