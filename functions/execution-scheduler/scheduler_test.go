package main

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/schedule"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/workflow"
	"github.com/day-trade/platform/shared/workflow/builtin"
)

func jst(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04:05", s, market.JST)
	if err != nil {
		panic(err)
	}
	return t
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(s string)   { c.mu.Lock(); defer c.mu.Unlock(); c.t = jst(s) }

// fakes plays the other functions behind a fake activator that routes by Host, as the local
// platform's does: real HTTP through gateway.NewTransport.
type fakes struct {
	mu      sync.Mutex
	calls   map[string]int    // function name → calls
	tenants map[string]bool   // X-Tenant values seen
	orders  map[string]string // Idempotency-Key → "side symbol qty"
	sells   int
	absent  map[string]bool                  // functions not deployed
	fail    map[string]int                   // function → status to answer
	block   func(fn string, r *http.Request) // optional hook, may block
	// verifyKey, when set, makes every fake a function with INTERNAL_TOKEN_PUBLIC_KEY: it
	// verifies the identity token for its own name (401 without a valid one) and records the
	// principal.
	verifyKey  ed25519.PublicKey
	principals []auth.Principal
}

func (f *fakes) count(fn string) int { f.mu.Lock(); defer f.mu.Unlock(); return f.calls[fn] }

func (f *fakes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, _ := strings.Cut(r.Host, ":")
	fn, ok := strings.CutSuffix(host, ".day-trade.svc.cluster.local")
	f.mu.Lock()
	if f.calls == nil {
		f.calls, f.tenants, f.orders = map[string]int{}, map[string]bool{}, map[string]string{}
	}
	f.calls[fn]++
	f.tenants[r.Header.Get(builtin.TenantHeader)] = true
	status, absent, hook, key := f.fail[fn], f.absent[fn], f.block, f.verifyKey
	f.mu.Unlock()
	if key != nil {
		p, err := auth.NewVerifier(key, fn).Verify(r.Header.Get(auth.InternalTokenHeader))
		if err != nil {
			httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeUnauthenticated, "authentication required"))
			return
		}
		f.mu.Lock()
		f.principals = append(f.principals, *p)
		f.mu.Unlock()
	}
	if !ok || absent {
		httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeNotFound, "no function serves host %q", r.Host))
		return
	}
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body) // read first: the server notices a hang-up only then
	if hook != nil {
		hook(fn, r)
	}
	if status != 0 {
		httpx.WriteError(w, r, nil, &httpx.Error{Code: httpx.CodeUnavailable, Message: fn + " is down"})
		return
	}
	switch fn {
	case "symbols-select":
		_ = httpx.Encode(w, 200, map[string]any{"symbols": []map[string]string{{"ticker": "7203.T"}, {"ticker": "6758.T"}}})
	case "data-stocks":
		_ = httpx.Encode(w, 200, map[string]any{"total_points": 60})
	case "ml-predict":
		_ = httpx.Encode(w, 200, map[string]any{"symbol": body["symbol"], "prediction": "up", "probability": 0.61, "confidence": 0.22})
	case "ml-batch-predict":
		_ = httpx.Encode(w, 202, map[string]any{"job_id": "job-1", "status": "queued", "status_url": "/api/v1/execution/jobs/job-1"})
	case "execution-jobs":
		_ = httpx.Encode(w, 200, jobs.Job{ID: "job-1", Kind: "ml.batch", Status: jobs.StatusSucceeded, Done: 2, Total: 2, Result: json.RawMessage(`{"ok":2}`)})
	case "notifications-send":
		_ = httpx.Encode(w, 202, map[string]any{"notification_id": "n-1", "status": "queued"})
	case "execution-trade":
		key := r.Header.Get("Idempotency-Key")
		f.mu.Lock()
		if _, seen := f.orders[key]; !seen {
			f.orders[key] = fmt.Sprintf("%v %v %v", body["side"], body["symbol"], body["quantity"])
			if body["side"] == "sell" {
				f.sells++
			}
		}
		f.mu.Unlock()
		_ = httpx.Encode(w, 201, map[string]any{"order_id": "o-" + key, "status": "filled", "filled_quantity": body["quantity"]})
	default:
		httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeNotFound, "no function serves host %q", r.Host))
	}
}

type env struct {
	t     *testing.T
	rdb   *redis.Client
	keys  store.Keys
	st    *schedule.Store
	js    *jobs.Store
	clock *clock
	fakes *fakes
	act   *httptest.Server
	// signer, when set, is the scheduler's INTERNAL_TOKEN_KEY.
	signer *auth.Signer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	e := &env{t: t, rdb: rdb, keys: store.NewKeys("exec"), clock: &clock{}, fakes: &fakes{}}
	e.st = schedule.NewStore(rdb, e.keys, 10, e.clock.now)
	e.js = jobs.NewStore(rdb, jobs.Options{})
	e.act = httptest.NewServer(e.fakes)
	t.Cleanup(e.act.Close)
	return e
}

// start builds a fresh scheduler process (nothing shared with earlier ones but Redis) and
// returns its URL.
func (e *env) start() (*scheduler, string) {
	e.t.Helper()
	recv, err := events.NewReceiver(e.rdb, e.keys, events.ReceiverOptions{Lease: time.Minute})
	if err != nil {
		e.t.Fatal(err)
	}
	caller := &builtin.Caller{
		Client:    &http.Client{Transport: gateway.NewTransport(strings.TrimPrefix(e.act.URL, "http://"))},
		Namespace: "day-trade", Timeout: 10 * time.Second,
	}
	if e.signer != nil {
		caller.Signer = e.signer
	}
	s := &scheduler{
		log: slog.New(slog.DiscardHandler), rdb: e.rdb, keys: e.keys, jobs: e.js, schedules: e.st,
		runner:    workflow.NewRunner(e.rdb, e.keys, e.js, workflow.Options{Lease: 50 * time.Second}),
		workflows: builtin.Workflows(caller),
		set:       settings{CatchUp: 15 * time.Minute, MaxPerSchedule: 5, Concurrency: 4, ClaimTTL: 24 * time.Hour},
		now:       e.clock.now,
	}
	hs := httptest.NewServer(newServer(s, recv))
	e.t.Cleanup(hs.Close)
	return s, hs.URL
}

func (e *env) schedule(tenant, wf, expr, config, createdJST string) schedule.Schedule {
	e.t.Helper()
	sc, err := e.st.Create(context.Background(), schedule.Schedule{ID: schedule.NewID(), Tenant: tenant, Workflow: wf,
		Expr: expr, Config: json.RawMessage(config), CreatedAt: jst(createdJST).UTC()})
	if err != nil {
		e.t.Fatal(err)
	}
	return sc
}

// tick sends a PingSource tick with id, as the Broker would, and fails unless it is ACKed.
func (e *env) tick(url, id, typ string, at time.Time) {
	e.t.Helper()
	c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(url))
	if err != nil {
		e.t.Fatal(err)
	}
	ev := cloudevents.NewEvent()
	ev.SetID(id)
	ev.SetType(typ)
	ev.SetSource("/apis/v1/namespaces/day-trade/pingsources/execution-tick")
	ev.SetTime(at)
	_ = ev.SetData(cloudevents.ApplicationJSON, map[string]string{"schedule": "execution-tick"})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if res := c.Send(ctx, ev); !cloudevents.IsACK(res) {
		e.t.Fatalf("tick %s not acknowledged: %v", id, res)
	}
}

func (e *env) job(tenant, id string) jobs.Job {
	e.t.Helper()
	j, err := e.js.Get(context.Background(), tenant, id)
	if err != nil {
		e.t.Fatalf("job %s: %v", id, err)
	}
	return j
}

// TestDuplicateAndLateTicksStartEachDueRunOnce: the same tick three times, a copy of it with
// another id (a second PingSource delivery) and a late tick start each due run once.
func TestDuplicateAndLateTicksStartEachDueRunOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := e.schedule("acme", builtin.DailyPredict, "*/5 * * * *", `{"count":2}`, "2026-03-19 09:50:10")
	_, url := e.start()

	e.clock.set("2026-03-19 10:00:02")
	for range 3 {
		e.tick(url, "tick-1000", PingEventType, jst("2026-03-19 10:00:00"))
	}
	e.tick(url, "tick-1000-copy", events.TypeExecutionTick, jst("2026-03-19 10:00:00"))
	e.clock.set("2026-03-19 10:03:40") // delivered late by the Broker's retries
	e.tick(url, "tick-1000-late", PingEventType, jst("2026-03-19 10:00:00"))
	e.tick(url, "tick-0955-late", PingEventType, jst("2026-03-19 09:55:00"))

	// Due: 09:55 (missed, inside the catch-up window) and 10:00; each ran once.
	if n := e.fakes.count("symbols-select"); n != 2 {
		t.Errorf("runs started %d times, want 2 (09:55 and 10:00)", n)
	}
	if n := e.fakes.count("notifications-send"); n != 2 {
		t.Errorf("runs notified %d times, want 2", n)
	}
	for _, due := range []string{"2026-03-19 09:55:00", "2026-03-19 10:00:00"} {
		j := e.job("acme", schedule.RunID(sc.ID, jst(due)))
		if j.Status != jobs.StatusSucceeded || j.Done != 4 || j.Total != 4 || j.Kind != "workflow.daily-predict" {
			t.Errorf("run due %s: %+v", due, j)
		}
		var res map[string]any
		if err := json.Unmarshal(j.Result, &res); err != nil || res["notification_id"] != "n-1" {
			t.Errorf("run due %s result %s", due, j.Result)
		}
	}
	ctx := context.Background()
	if claims, err := e.rdb.Keys(ctx, e.keys.Key("sched-fire", "*")).Result(); err != nil || len(claims) != 2 {
		t.Errorf("claims %v, %v; want 2", claims, err)
	}
	if n, err := e.rdb.ZCard(ctx, e.keys.Key("sched-pending")).Result(); err != nil || n != 0 {
		t.Errorf("%d runs still pending, %v", n, err)
	}
	if !e.fakes.tenants["acme"] || len(e.fakes.tenants) != 1 {
		t.Errorf("calls made for tenants %v, want only the schedule's (acme)", e.fakes.tenants)
	}
}

// TestRestartBetweenTicksDoesNotDoubleStart: a second scheduler process (same Redis, nothing
// else shared) given the same minute's ticks again starts nothing new, and the next due time
// once.
func TestRestartBetweenTicksDoesNotDoubleStart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.schedule("acme", builtin.DailyPredict, "*/5 * * * *", "", "2026-03-19 09:58:00")
	_, url1 := e.start()
	e.clock.set("2026-03-19 10:00:01")
	e.tick(url1, "tick-a", PingEventType, jst("2026-03-19 10:00:00"))

	_, url2 := e.start()                                                   // "restarted"
	e.tick(url2, "tick-a", PingEventType, jst("2026-03-19 10:00:00"))      // redelivered
	e.tick(url2, "tick-a-copy", PingEventType, jst("2026-03-19 10:00:00")) // new id, same minute
	e.clock.set("2026-03-19 10:05:00")
	e.tick(url2, "tick-b", PingEventType, jst("2026-03-19 10:05:00"))
	_, url3 := e.start()
	e.tick(url3, "tick-b-copy", PingEventType, jst("2026-03-19 10:05:00"))

	if n := e.fakes.count("symbols-select"); n != 2 {
		t.Errorf("runs started %d times, want 2 (10:00 and 10:05)", n)
	}
}

// TestCrashMidRunResumesWithoutRestart: the executor dies inside the predict step, waiting
// for its batch job; the next tick, on a new process, resumes the run at that step, waits
// for the same job and starts no second run.
func TestCrashMidRunResumesWithoutRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := e.schedule("acme", builtin.DailyPredict, "0 10 * * *", "", "2026-03-19 09:00:00")
	s1, _ := e.start()
	ctx, crash := context.WithCancel(context.Background())
	var once sync.Once
	e.fakes.block = func(fn string, r *http.Request) {
		if fn == "execution-jobs" {
			once.Do(func() { crash(); <-r.Context().Done() })
		}
	}
	e.clock.set("2026-03-19 10:00:01")
	if _, _, err := s1.tick(ctx); err == nil {
		t.Fatal("interrupted tick reported success")
	}
	run := schedule.RunID(sc.ID, jst("2026-03-19 10:00:00"))
	if j := e.job("acme", run); j.Status != jobs.StatusRunning || j.Done != 2 {
		t.Fatalf("after the crash: %+v", j)
	}
	_, url := e.start()
	e.clock.set("2026-03-19 10:01:00")
	e.tick(url, "tick-1001", PingEventType, jst("2026-03-19 10:01:00"))
	if j := e.job("acme", run); j.Status != jobs.StatusSucceeded {
		t.Fatalf("resumed run: %+v", j)
	}
	if n, m := e.fakes.count("symbols-select"), e.fakes.count("data-stocks"); n != 1 || m != 2 {
		t.Errorf("select ran %d times, fetch %d calls; want 1 and 2 (not redone)", n, m)
	}
	if n, m := e.fakes.count("ml-batch-predict"), e.fakes.count("ml-predict"); n != 1 || m != 0 {
		t.Errorf("batch queued %d times, ml-predict called %d times; want 1 and 0", n, m)
	}
}

// TestPaperTradeNotifyFailureUnwindsOrdersOnce: paper-trade buys, then its notify step fails;
// the trade step is compensated with one sell per buy, once, however many ticks follow.
func TestPaperTradeNotifyFailureUnwindsOrdersOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := e.schedule("acme", builtin.PaperTrade, "market_hours/30m", `{"max_orders":2,"lots":2}`, "2026-03-19 09:59:00")
	e.fakes.fail = map[string]int{"notifications-send": 503}
	_, url := e.start()
	e.clock.set("2026-03-19 10:00:03")
	for i := range 3 {
		e.tick(url, fmt.Sprintf("t-%d", i), PingEventType, jst("2026-03-19 10:00:00"))
	}
	j := e.job("acme", schedule.RunID(sc.ID, jst("2026-03-19 10:00:00")))
	if j.Status != jobs.StatusFailed || !strings.Contains(j.Error, "step notify failed: notifications-send answered 503") ||
		!strings.Contains(j.Error, "compensated: trade") {
		t.Fatalf("run: %s %q", j.Status, j.Error)
	}
	e.fakes.mu.Lock()
	defer e.fakes.mu.Unlock()
	if e.fakes.sells != 2 || len(e.fakes.orders) != 4 {
		t.Errorf("orders %v: want 2 buys and 2 sells", e.fakes.orders)
	}
	for k, v := range e.fakes.orders {
		if strings.Contains(k, ".unwind.") && !strings.HasSuffix(v, " 200") {
			t.Errorf("unwind %s = %s, want the 200 shares bought", k, v)
		}
	}
}

// TestWorkflowCallsCarrySignedIdentity: callees that verify identity tokens (as every function
// does with INTERNAL_TOKEN_PUBLIC_KEY) refuse a scheduler without INTERNAL_TOKEN_KEY, and serve
// one with it, seeing the schedule's tenant as a verified principal in every call.
func TestWorkflowCallsCarrySignedIdentity(t *testing.T) {
	t.Parallel()
	priv, _ := auth.GenerateInternalKey()
	key, err := auth.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key)
	for _, signed := range []bool{false, true} {
		e := newEnv(t)
		e.fakes.verifyKey = signer.PublicKey()
		if signed {
			e.signer = signer
		}
		sc := e.schedule("acme", builtin.PaperTrade, "market_hours/30m", `{"max_orders":2,"lots":1}`, "2026-03-19 09:59:00")
		_, url := e.start()
		e.clock.set("2026-03-19 10:00:03")
		e.tick(url, "t-1", PingEventType, jst("2026-03-19 10:00:00"))
		j := e.job("acme", schedule.RunID(sc.ID, jst("2026-03-19 10:00:00")))
		e.fakes.mu.Lock()
		principals := e.fakes.principals
		e.fakes.mu.Unlock()
		if !signed {
			if j.Status != jobs.StatusFailed || !strings.Contains(j.Error, "answered 401") || len(principals) != 0 {
				t.Fatalf("unsigned run: %s %q, %d principals", j.Status, j.Error, len(principals))
			}
			continue
		}
		if j.Status != jobs.StatusSucceeded || len(principals) < 4 {
			t.Fatalf("signed run: %s %q, %d principals", j.Status, j.Error, len(principals))
		}
		for _, p := range principals {
			if p.Tenant != "acme" || p.Subject != builtin.WorkflowSubject || !p.HasAnyRole([]string{"trader"}) {
				t.Fatalf("principal %+v", p)
			}
		}
	}
}

// TestMissingFunctionFailsStepClearly: a callee that is not deployed fails its step with a
// reason naming it.
func TestMissingFunctionFailsStepClearly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := e.schedule("acme", builtin.DailyPredict, "* * * * *", "", "2026-03-19 09:59:30")
	e.fakes.absent = map[string]bool{"data-stocks": true}
	_, url := e.start()
	e.clock.set("2026-03-19 10:00:00")
	e.tick(url, "t", PingEventType, jst("2026-03-19 10:00:00"))
	j := e.job("acme", schedule.RunID(sc.ID, jst("2026-03-19 10:00:00")))
	if j.Status != jobs.StatusFailed || !strings.Contains(j.Error, "step fetch failed") || !strings.Contains(j.Error, "data-stocks is not deployed") {
		t.Fatalf("run: %s %q", j.Status, j.Error)
	}
}

// TestCancelledScheduleStartsNothing and the market-hours gate at the scheduler level.
func TestCancelledAndOutOfSessionSchedules(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.schedule("acme", builtin.DailyPredict, "* * * * *", "", "2026-03-19 09:00:00")
	e.schedule("acme", builtin.DailyPredict, schedule.MarketHours, "", "2026-03-19 11:29:30")
	if _, err := e.st.Cancel(context.Background(), "acme", a.ID); err != nil {
		t.Fatal(err)
	}
	_, url := e.start()
	e.clock.set("2026-03-19 12:00:00") // lunch break: market_hours is not due since 11:29
	e.tick(url, "t1", PingEventType, jst("2026-03-19 12:00:00"))
	if n := e.fakes.count("symbols-select"); n != 0 {
		t.Errorf("%d runs at lunch and for a cancelled schedule, want 0", n)
	}
	e.clock.set("2026-03-19 12:30:00")
	e.tick(url, "t2", PingEventType, jst("2026-03-19 12:30:00"))
	if n := e.fakes.count("symbols-select"); n != 1 {
		t.Errorf("%d runs at 12:30, want 1", n)
	}
}
