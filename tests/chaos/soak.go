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
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/idempotency"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
)

// soakSymbols are TOPIX500 names of the starter universe; orders are limit buys of one lot
// at the last close rounded down to the tick, valid at any hour (they fill in session and
// rest outside it).
var soakSymbols = []string{"7203.T", "6758.T", "8306.T", "9984.T", "6861.T"}

// tradeOutcome is what the client saw of one logical trade (one Idempotency-Key).
type tradeOutcome struct {
	tenant, key string
	attempts    int
	statuses    map[string]int
	acked       bool   // 201, or 422 naming a recorded order_id (a recorded risk rejection)
	orderID     string // from the acknowledgement
	replayed    bool   // the acknowledgement was a replay of an earlier attempt's result
	refused     string // a final 4xx that records nothing
	gaveUp      bool
}

// Soak is scenario 1's row.
type Soak struct {
	Trades        int            `json:"trades"`
	Tenants       int            `json:"tenants"`
	Rate          int            `json:"arrival_rate_per_s"`
	Seconds       float64        `json:"seconds"`
	Attempts      int            `json:"http_attempts"`
	AttemptStatus map[string]int `json:"attempts_by_status"`
	Acked         int            `json:"acknowledged"`
	AckedReplayed int            `json:"acknowledged_by_replay"`
	Refused       map[string]int `json:"refused_final_4xx,omitempty"`
	GaveUp        int            `json:"client_gave_up"`
	MaxAttempts   int            `json:"max_attempts_for_one_trade"`
	Faults        []faultEvent   `json:"faults"`
	// Reconciliation against the ledger streams.
	LedgerOrders       int `json:"ledger_orders"`
	AckedMissing       int `json:"acknowledged_but_missing"`
	Duplicated         int `json:"duplicated"`
	WrongOrderID       int `json:"acknowledged_with_wrong_order_id"`
	PlacedUnacked      int `json:"placed_but_never_acknowledged"`
	RefusedButPlaced   int `json:"refused_but_placed"`
	Foreign            int `json:"ledger_orders_from_no_request"`
	RebuildMismatches  int `json:"projection_vs_rebuild_mismatches"`
	TradeLatencyP50ms  float64
	TradeLatencyP99ms  float64
	ExecColdStarts     int `json:"execution_trade_cold_starts"`
	InFlightAtKillsSum int `json:"client_requests_in_flight_at_process_kills"`
}

type faultEvent struct {
	AtS      float64 `json:"at_s"`
	Kind     string  `json:"kind"`
	ForS     float64 `json:"for_s,omitempty"`
	InFlight int     `json:"client_requests_in_flight"`
}

func (r *runEnv) soak(ctx context.Context) (*Soak, error) {
	n, rate := r.o.soakN, r.o.soakRate
	nt := max(1, min(200, n/50)) // few orders per tenant: little contention on one ledger
	pl, err := startPlatform(ctx, r, "soak", platformOpts{})
	if err != nil {
		return nil, err
	}
	defer pl.close()
	tenants := make([]string, nt)
	for i := range tenants {
		tenants[i] = fmt.Sprintf("soak-%02d", i)
	}
	keys, err := pl.createKeys(ctx, tenants)
	if err != nil {
		return nil, err
	}
	prices, err := lastCloses(ctx, pl.gw, keys[tenants[0]])
	if err != nil {
		return nil, err
	}
	s := &Soak{Trades: n, Tenants: nt, Rate: rate, AttemptStatus: map[string]int{}, Refused: map[string]int{}}
	client := &http.Client{Timeout: r.o.clientTimeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 512}}
	var inflight atomic.Int64
	runID := strconv.FormatInt(time.Now().UnixNano(), 36)

	// Faults at random times while trades flow: SIGKILL of execution-trade (whatever it is
	// doing: requests are in flight at the rate used) or a SIGKILL of redis-server for 1-3 s.
	start := time.Now()
	loadDone := make(chan struct{})
	faultsDone := make(chan struct{})
	go func() {
		defer close(faultsDone)
		for {
			wait := r.o.faultEvery/2 + rand.N(r.o.faultEvery)
			select {
			case <-loadDone:
				return
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			kill := rand.IntN(2) == 0
			if kill {
				// Mid-request: wait (up to 2 s) for a trade to be in flight, then kill.
				for end := time.Now().Add(2 * time.Second); inflight.Load() == 0 && time.Now().Before(end); {
					time.Sleep(200 * time.Microsecond)
				}
			}
			ev := faultEvent{AtS: time.Since(start).Seconds(), InFlight: int(inflight.Load())}
			if kill {
				ev.Kind = "SIGKILL execution-trade"
				if err := pl.p.Kill("execution-trade"); err != nil {
					ev.Kind += " (not running: " + err.Error() + ")"
				} else {
					s.InFlightAtKillsSum += ev.InFlight
				}
			} else {
				d := time.Second + rand.N(2*time.Second)
				ev.Kind, ev.ForS = "SIGKILL redis-server", d.Seconds()
				pl.redis.kill()
				_ = sleepCtx(ctx, d)
				if err := pl.redis.start(ctx); err != nil {
					fmt.Fprintln(os.Stderr, "soak: redis restart:", err)
				}
			}
			s.Faults = append(s.Faults, ev)
			fmt.Fprintf(os.Stderr, "soak: %.1fs %s (in flight %d)\n", ev.AtS, ev.Kind, ev.InFlight)
		}
	}()

	outcomes := make([]*tradeOutcome, n)
	lat := make([]time.Duration, 0, n)
	var latMu sync.Mutex
	var wg sync.WaitGroup
	tick := time.NewTicker(time.Second / time.Duration(rate))
	for i := range n {
		select {
		case <-ctx.Done():
			tick.Stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
		t := tenants[i%nt]
		sym := soakSymbols[i%len(soakSymbols)]
		o := &tradeOutcome{tenant: t, key: fmt.Sprintf("soak-%s-%06d", runID, i), statuses: map[string]int{}}
		outcomes[i] = o
		body := fmt.Sprintf(`{"symbol":%q,"side":"buy","type":"limit","quantity":100,"limit_price":%q}`, sym, prices[sym])
		wg.Go(func() {
			t0 := time.Now()
			tradeWithRetries(ctx, client, pl.gw, keys[t], o, body, &inflight, r.o.maxAttempts)
			latMu.Lock()
			lat = append(lat, time.Since(t0))
			latMu.Unlock()
		})
		if i > 0 && i%1000 == 0 {
			fmt.Fprintf(os.Stderr, "soak: %d/%d sent, %d in flight\n", i, n, inflight.Load())
		}
	}
	tick.Stop()
	wg.Wait()
	close(loadDone)
	<-faultsDone
	s.Seconds = time.Since(start).Seconds()
	s.ExecColdStarts = len(pl.p.ColdStarts("execution-trade"))
	if len(lat) > 0 {
		sortDur(lat)
		s.TradeLatencyP50ms, s.TradeLatencyP99ms = ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99))
	}
	for _, o := range outcomes {
		s.Attempts += o.attempts
		s.MaxAttempts = max(s.MaxAttempts, o.attempts)
		for k, v := range o.statuses {
			s.AttemptStatus[k] += v
		}
		switch {
		case o.acked:
			s.Acked++
			if o.replayed {
				s.AckedReplayed++
			}
		case o.gaveUp:
			s.GaveUp++
		case o.refused != "":
			s.Refused[o.refused]++
		}
	}
	return s, reconcile(ctx, pl, tenants, outcomes, s)
}

// tradeWithRetries is a careful client: one key per logical trade, and on a timeout, a
// transport error, 409 (the first attempt is still in flight), 429 or 5xx it tries again
// with the same key and body, after Retry-After (capped at 2 s) or a jittered backoff.
func tradeWithRetries(ctx context.Context, c *http.Client, gw, apiKey string, o *tradeOutcome, body string, inflight *atomic.Int64, maxAttempts int) {
	for attempt := 0; ; attempt++ {
		if attempt >= maxAttempts || ctx.Err() != nil {
			o.gaveUp = true
			return
		}
		o.attempts++
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw+"/api/v1/execution/trade", bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(idempotency.Header, o.key)
		inflight.Add(1)
		resp, err := c.Do(req)
		inflight.Add(-1)
		wait := backoff(attempt)
		if err != nil {
			o.statuses["transport error/timeout"]++
		} else {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			code := resp.StatusCode
			o.statuses[strconv.Itoa(code)]++
			var v struct {
				OrderID string `json:"order_id"`
				Rule    string `json:"rule"`
				Detail  string `json:"detail"`
			}
			_ = json.Unmarshal(b, &v)
			switch {
			case code == http.StatusCreated:
				o.acked, o.orderID = true, v.OrderID
				o.replayed = resp.Header.Get(idempotency.ReplayedHeader) == "true"
				return
			case code == http.StatusUnprocessableEntity && v.OrderID != "":
				o.acked, o.orderID = true, v.OrderID // a recorded risk rejection is an answer
				return
			case code == http.StatusConflict || code == http.StatusTooManyRequests || code >= 500:
				if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && ra > 0 {
					wait = min(time.Duration(ra)*time.Second, 2*time.Second) + rand.N(100*time.Millisecond)
				}
			default:
				o.refused = fmt.Sprintf("%d %s%s", code, v.Rule, v.Detail)
				return
			}
		}
		if sleepCtx(ctx, wait) != nil {
			o.gaveUp = true
			return
		}
	}
}

func backoff(attempt int) time.Duration {
	d := 100 * time.Millisecond << min(attempt, 5)
	return min(d, 2*time.Second)/2 + rand.N(min(d, 2*time.Second)/2+1)
}

// reconcile reads every tenant's ledger stream (the only truth) and compares it with what
// the clients were told.
func reconcile(ctx context.Context, pl *platform, tenants []string, outcomes []*tradeOutcome, s *Soak) error {
	rdb, err := store.Open(pl.redis.url())
	if err != nil {
		return err
	}
	defer rdb.Close()
	l := ledger.New(rdb, store.NewKeys("exec"))
	decisions := map[string]int{} // order id -> OrderAccepted + OrderRejected events
	fills := map[string]int{}
	for _, t := range tenants {
		err := l.Events(ctx, t, ledger.Start, func(e ledger.Event) error {
			switch e.Type {
			case ledger.OrderAccepted, ledger.OrderRejected:
				decisions[e.OrderID]++
			case ledger.OrderFilled:
				fills[e.OrderID]++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", t, err)
		}
		// The projection the function serves must equal a rebuild from the stream.
		p, err1 := l.Project(ctx, t)
		rb, err2 := l.Rebuild(ctx, t)
		if err1 != nil || err2 != nil {
			return fmt.Errorf("reconcile %s: %v %v", t, err1, err2)
		}
		if len(p.Orders) != len(rb.Orders) || !p.Book(time.Now()).Cash.Equal(rb.Book(time.Now()).Cash) {
			s.RebuildMismatches++
		}
	}
	s.LedgerOrders = len(decisions)
	expected := map[string]bool{}
	for _, o := range outcomes {
		id := ledger.OrderID(o.tenant, o.key)
		expected[id] = true
		placed := decisions[id] > 0
		switch {
		case o.acked && !placed:
			s.AckedMissing++
		case o.acked && o.orderID != id:
			s.WrongOrderID++
		case !o.acked && o.refused != "" && placed:
			s.RefusedButPlaced++
		case !o.acked && placed:
			s.PlacedUnacked++
		}
	}
	for id, c := range decisions {
		if c > 1 {
			s.Duplicated += c - 1
		}
		if !expected[id] {
			s.Foreign++
		}
	}
	for _, c := range fills {
		if c > 1 {
			s.Duplicated += c - 1
		}
	}
	return nil
}

// lastCloses prices each soak symbol at its last daily close, on the tick grid, through the
// gateway (the same synthetic provider execution-trade quotes from).
func lastCloses(ctx context.Context, gw, key string) (map[string]string, error) {
	out := map[string]string{}
	for _, sym := range soakSymbols {
		var body struct {
			DataPoints []struct {
				Close float64 `json:"close"`
			} `json:"data_points"`
		}
		var last error
		for range 20 {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, gw+"/api/v1/data/stocks/"+sym+"?period=5d&interval=1d", nil)
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := ctlClient.Do(req)
			if err != nil {
				last = err
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 && json.Unmarshal(b, &body) == nil && len(body.DataPoints) > 0 {
					last = nil
					break
				}
				last = fmt.Errorf("quote %s: %d %s", sym, resp.StatusCode, b)
			}
			_ = sleepCtx(ctx, 250*time.Millisecond)
		}
		if last != nil {
			return nil, last
		}
		c := body.DataPoints[len(body.DataPoints)-1].Close
		out[sym] = trading.RoundToTick(decimal.NewFromFloat(c), true, trading.RoundDown).String()
	}
	return out, nil
}
