package local

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/redistest"
)

const (
	typeA      = "com.daytrade.test.a.happened"
	typeB      = "com.daytrade.test.b.happened"
	typePoison = "com.daytrade.test.poison.happened"
	typeFlaky  = "com.daytrade.test.flaky.happened"
	typeOwn    = "com.daytrade.test.own.happened"
	typeTick   = "com.daytrade.test.tick.happened"
	ns         = "day-trade"
)

// received is one delivery a subscriber saw.
type received struct {
	fn     string
	binary bool
	e      cloudevents.Event
}

// subscribers stands in for the activator: it routes by Host to per-function behaviour and
// records every delivery in order.
type subscribers struct {
	mu     sync.Mutex
	log    []received
	answer map[string]func(e cloudevents.Event, n int) int // function -> status for its n-th delivery
	count  map[string]int
}

func (s *subscribers) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fn, _, _ := strings.Cut(r.Host, ".")
	e, err := binding.ToEvent(r.Context(), cehttp.NewMessageFromHttpRequest(r))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.count[fn]++
	n := s.count[fn]
	s.log = append(s.log, received{fn: fn, binary: r.Header.Get("Ce-Id") != "", e: *e})
	answer := s.answer[fn]
	s.mu.Unlock()
	status := http.StatusOK
	if answer != nil {
		status = answer(*e, n)
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, "answer from "+fn)
}

func (s *subscribers) deliveries(fn string) []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []received
	for _, r := range s.log {
		if r.fn == fn {
			out = append(out, r)
		}
	}
	return out
}

func (s *subscribers) setAnswer(fn string, f func(e cloudevents.Event, n int) int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.answer[fn] = f
}

func brokerCatalog() []functions.Function {
	fn := func(name string, subs ...functions.Subscription) functions.Function {
		return functions.Function{Name: name, Kind: functions.KindFunction, Timeout: 10 * time.Second, Events: subs}
	}
	return []functions.Function{
		fn("sub-a", functions.Subscription{Type: typeA, Path: "/events/a"}),
		fn("sub-a-from-x", functions.Subscription{Type: typeA, Source: "/x"}),
		fn("sub-b", functions.Subscription{Type: typeB}),
		fn("sub-poison", functions.Subscription{Type: typePoison}),
		fn("sub-flaky", functions.Subscription{Type: typeFlaky}),
		// Its own catalog delivery: one retry, a fast backoff and another sink.
		fn("sub-own", functions.Subscription{Type: typeOwn, Delivery: functions.Delivery{Retry: 1, BackoffDelay: 10 * time.Millisecond, DeadLetterSink: "sub-own-sink"}}),
		fn("sub-own-sink"),
		fn("sub-tick", functions.Subscription{Type: typeTick}),
		fn(functions.DeadLetterFunction),
	}
}

type brokerFixture struct {
	redis *redistest.Server
	rdb   *redis.Client
	subs  *subscribers
	srv   *httptest.Server
	opts  BrokerOptions
}

func newBrokerFixture(t *testing.T, opts BrokerOptions) *brokerFixture {
	t.Helper()
	f := &brokerFixture{
		redis: redistest.Start(t),
		subs:  &subscribers{answer: map[string]func(cloudevents.Event, int) int{}, count: map[string]int{}},
		opts:  opts,
	}
	f.srv = httptest.NewServer(f.subs)
	t.Cleanup(f.srv.Close)
	f.rdb = redis.NewClient(&redis.Options{Addr: f.redis.Addr()})
	t.Cleanup(func() { f.rdb.Close() })
	return f
}

// start runs a broker until the returned stop is called (or the test ends).
func (f *brokerFixture) start(t *testing.T) (*broker, func()) {
	t.Helper()
	b, err := newBroker(brokerConfig{
		Opts: f.opts, Functions: brokerCatalog(), Namespace: ns,
		RedisURL: f.redis.URL(), ActivatorURL: f.srv.URL, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	spawn := func(fn func()) bool { wg.Go(fn); return true }
	if err := b.run(ctx, spawn); err != nil {
		cancel()
		t.Fatal(err)
	}
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return b, stop
}

func publish(t *testing.T, b *broker, id, typ, source string) {
	t.Helper()
	pub, err := events.NewPublisher(b.url, events.WithRetries(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pub.PublishID(t.Context(), id, typ, source, "", map[string]string{"id": id}); err != nil {
		t.Fatalf("publish %s: %v", id, err)
	}
}

func eventuallyTrue(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(rs []received) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.e.ID()
	}
	return out
}

func TestBrokerDeliversByExactFilter(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, BrokerOptions{Retry: 2, BackoffDelay: 10 * time.Millisecond})
	b, _ := f.start(t)

	publish(t, b, "a-from-y", typeA, "/y")
	publish(t, b, "a-from-x", typeA, "/x")
	publish(t, b, "b-1", typeB, "/y")
	publish(t, b, "unrouted", "com.daytrade.test.nobody.listens", "/y")
	// Structured mode at the ingress, too.
	e := cloudevents.NewEvent()
	e.SetID("b-structured")
	e.SetType(typeB)
	e.SetSource("/z")
	_ = e.SetData(cloudevents.ApplicationJSON, map[string]int{"n": 1})
	c, err := cloudevents.NewClientHTTP(cehttp.WithTarget(b.url))
	if err != nil {
		t.Fatal(err)
	}
	if res := c.Send(cloudevents.WithEncodingStructured(t.Context()), e); !cloudevents.IsACK(res) {
		t.Fatalf("structured send: %v", res)
	}

	eventuallyTrue(t, "all deliveries", func() bool {
		return len(f.subs.deliveries("sub-a")) == 2 && len(f.subs.deliveries("sub-a-from-x")) == 1 && len(f.subs.deliveries("sub-b")) == 2
	})
	if got := ids(f.subs.deliveries("sub-a-from-x")); got[0] != "a-from-x" {
		t.Errorf("source filter let through %v", got)
	}
	for _, r := range f.subs.log {
		if !r.binary {
			t.Errorf("%s got %s in structured mode; the broker delivers binary", r.fn, r.e.ID())
		}
	}
	// Every entry of every group is acked once delivered or filtered out.
	eventuallyTrue(t, "nothing pending", func() bool { return pending(t, f.rdb, b) == 0 })
	if n := len(f.subs.deliveries(functions.DeadLetterFunction)); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

func pending(t *testing.T, rdb *redis.Client, b *broker) int64 {
	var total int64
	for _, tr := range b.triggers {
		p, err := rdb.XPending(t.Context(), b.opts.Stream, tr.group).Result()
		if err != nil {
			t.Fatal(err)
		}
		total += p.Count
	}
	return total
}

// TestBrokerUsesTheCatalogDelivery runs without broker overrides: the subscription's own
// catalog Delivery decides the attempts and the sink, as it decides its Knative Trigger's.
func TestBrokerUsesTheCatalogDelivery(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, BrokerOptions{})
	f.subs.setAnswer("sub-own", func(cloudevents.Event, int) int { return http.StatusServiceUnavailable })
	b, _ := f.start(t)
	for _, tr := range b.triggers {
		if want := brokerSubscription(t, tr.fn.Name, tr.typ).Policy(tr.fn.Name); tr.delivery != want {
			t.Errorf("trigger %s: delivery %+v, want the catalog's %+v", tr.name, tr.delivery, want)
		}
	}
	publish(t, b, "own-503", typeOwn, "/y")
	eventuallyTrue(t, "dead letter in the subscription's own sink", func() bool { return len(f.subs.deliveries("sub-own-sink")) == 1 })
	if n := len(f.subs.deliveries("sub-own")); n != 2 {
		t.Errorf("sub-own got %d attempts, want 1 + its catalog Retry 1", n)
	}
	if n := len(f.subs.deliveries(functions.DeadLetterFunction)); n != 0 {
		t.Errorf("the default sink got %d dead letters; sub-own names another", n)
	}
	if got := f.subs.deliveries("sub-own-sink")[0].e.Extensions()[ExtErrorCode]; fmt.Sprint(got) != "503" {
		t.Errorf("dead letter's %s = %v, want 503", ExtErrorCode, got)
	}
}

func brokerSubscription(t *testing.T, fn, typ string) functions.Subscription {
	t.Helper()
	for _, f := range brokerCatalog() {
		for _, s := range f.Events {
			if f.Name == fn && s.Type == typ {
				return s
			}
		}
	}
	t.Fatalf("no subscription %s of %s", typ, fn)
	return functions.Subscription{}
}

func TestBrokerRetriesWithBackoffThenDeadLetters(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, BrokerOptions{Retry: 3, BackoffDelay: 50 * time.Millisecond})
	f.subs.setAnswer("sub-flaky", func(cloudevents.Event, int) int { return http.StatusServiceUnavailable })
	f.subs.setAnswer("sub-poison", func(cloudevents.Event, int) int { return http.StatusBadRequest })
	b, _ := f.start(t)

	publish(t, b, "always-503", typeFlaky, "/y")
	publish(t, b, "poison", typePoison, "/y")
	for _, id := range []string{"b-1", "b-2", "b-3", "b-4", "b-5"} {
		publish(t, b, id, typeB, "/y")
	}

	eventuallyTrue(t, "two dead letters", func() bool { return len(f.subs.deliveries(functions.DeadLetterFunction)) == 2 })
	// The 503 was tried 1 + Retry times, the 400 once: a poison event is not retried.
	if n := len(f.subs.deliveries("sub-flaky")); n != 4 {
		t.Errorf("flaky subscriber got %d attempts, want 4", n)
	}
	if n := len(f.subs.deliveries("sub-poison")); n != 1 {
		t.Errorf("poison subscriber got %d attempts, want 1", n)
	}
	byID := map[string]cloudevents.Event{}
	for _, r := range f.subs.deliveries(functions.DeadLetterFunction) {
		byID[r.e.ID()] = r.e
	}
	for id, want := range map[string]struct {
		code string
		dest string
	}{
		"always-503": {"503", "http://sub-flaky.day-trade.svc.cluster.local/"},
		"poison":     {"400", "http://sub-poison.day-trade.svc.cluster.local/"},
	} {
		e, ok := byID[id]
		if !ok {
			t.Errorf("%s not dead-lettered under its original id; got %v", id, byID)
			continue
		}
		ext := e.Extensions()
		// Binary mode carries extensions as strings, whatever type they were set with.
		if fmt.Sprint(ext[ExtErrorCode]) != want.code || fmt.Sprint(ext[ExtErrorDest]) != want.dest {
			t.Errorf("%s: extensions %v, want code %s dest %s", id, ext, want.code, want.dest)
		}
		data, _ := base64.StdEncoding.DecodeString(ext[ExtErrorData].(string))
		if !strings.Contains(string(data), "answer from") {
			t.Errorf("%s: knativeerrordata %q", id, data)
		}
	}
	// Nothing stalled behind the failing events: every b event arrived before the retried
	// one was given up.
	var order []string
	for _, r := range f.subs.log {
		if r.fn == "sub-b" || r.fn == functions.DeadLetterFunction && r.e.ID() == "always-503" {
			order = append(order, r.e.ID())
		}
	}
	if len(order) != 6 || order[5] != "always-503" {
		t.Errorf("delivery order %v: the b events waited for the failing one", order)
	}
	eventuallyTrue(t, "nothing pending", func() bool { return pending(t, f.rdb, b) == 0 })
}

func TestBrokerRedeliversPendingAfterRestart(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, BrokerOptions{Retry: 20, BackoffDelay: 20 * time.Millisecond})
	var down sync.Mutex
	isDown := true
	f.subs.setAnswer("sub-b", func(cloudevents.Event, int) int {
		down.Lock()
		defer down.Unlock()
		if isDown {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	b, stop := f.start(t)
	publish(t, b, "survives", typeB, "/y")
	eventuallyTrue(t, "a first failed attempt", func() bool { return len(f.subs.deliveries("sub-b")) >= 1 })
	// The other triggers read the entry too and ack it as not theirs; wait for that, or a
	// stop between their read and their ack leaves it pending with them as well (and they
	// would rightly see it again after the restart).
	eventuallyTrue(t, "only sub-b holds the entry", func() bool { return pending(t, f.rdb, b) == 1 })
	stop() // the platform goes away mid-retry
	if n := pending(t, f.rdb, b); n != 1 {
		t.Fatalf("%d entries pending after the stop, want 1", n)
	}

	down.Lock()
	isDown = false
	down.Unlock()
	before := len(f.subs.deliveries("sub-b"))
	b2, _ := f.start(t)
	eventuallyTrue(t, "redelivery", func() bool {
		d := f.subs.deliveries("sub-b")
		return len(d) > before && d[len(d)-1].e.ID() == "survives"
	})
	eventuallyTrue(t, "acked", func() bool { return pending(t, f.rdb, b2) == 0 })
	if n := len(f.subs.deliveries(functions.DeadLetterFunction)); n != 0 {
		t.Errorf("%d dead letters, want 0", n)
	}
}

func TestBrokerKeepsEventsWhenTheDeadLetterSinkIsDown(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, BrokerOptions{Retry: 1, BackoffDelay: 10 * time.Millisecond, RedeliverAfter: 50 * time.Millisecond})
	f.subs.setAnswer("sub-poison", func(cloudevents.Event, int) int { return http.StatusBadRequest })
	f.subs.setAnswer(functions.DeadLetterFunction, func(_ cloudevents.Event, n int) int {
		if n <= 4 { // down for the first delivery and its retry, and one sweep
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	b, _ := f.start(t)
	publish(t, b, "poison", typePoison, "/y")
	eventuallyTrue(t, "parked at last", func() bool { return len(f.subs.deliveries(functions.DeadLetterFunction)) >= 5 })
	eventuallyTrue(t, "acked", func() bool { return pending(t, f.rdb, b) == 0 })
}

func TestBrokerIngressRejectsBadRequests(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, BrokerOptions{})
	b, _ := f.start(t)
	post := func(header map[string]string, body string) int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, b.url, strings.NewReader(body))
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tests := map[string]struct {
		header map[string]string
		body   string
		want   int
	}{
		"not an event":           {map[string]string{"Content-Type": "application/json"}, `{"x":1}`, 400},
		"structured broken json": {map[string]string{"Content-Type": "application/cloudevents+json"}, `{"specversion":`, 400},
		"binary without id":      {map[string]string{"Ce-Specversion": "1.0", "Ce-Type": typeB, "Ce-Source": "/y"}, `{}`, 400},
		"too large":              {map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Type": typeB, "Ce-Source": "/y"}, strings.Repeat("x", maxEventBytes+1), 413},
		"binary ok":              {map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "1", "Ce-Type": typeB, "Ce-Source": "/y"}, `{}`, 202},
	}
	for name, tc := range tests {
		if got := post(tc.header, tc.body); got != tc.want {
			t.Errorf("%s: status %d, want %d", name, got, tc.want)
		}
	}
	resp, err := http.Get(b.url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}

	// With Redis gone the ingress refuses rather than accepting what it cannot keep.
	f.redis.Kill()
	ok := map[string]string{"Ce-Specversion": "1.0", "Ce-Id": "2", "Ce-Type": typeB, "Ce-Source": "/y"}
	if got := post(ok, `{}`); got != http.StatusServiceUnavailable {
		t.Errorf("redis down: status %d, want 503", got)
	}
}

// FuzzParseEvent feeds the ingress's parser arbitrary binary-mode headers and bodies: it
// must never panic, and what it accepts must be a valid event.
func FuzzParseEvent(f *testing.F) {
	f.Add("1.0", "id-1", typeB, "/y", "application/json", `{"a":1}`)
	f.Add("", "", "", "", "application/cloudevents+json", `{"specversion":"1.0","id":"x","type":"t","source":"/s"}`)
	f.Add("0.3", "x", "t", "%zz", "text/plain", "\x00")
	f.Fuzz(func(t *testing.T, spec, id, typ, source, ct, body string) {
		h := http.Header{}
		for k, v := range map[string]string{"Ce-Specversion": spec, "Ce-Id": id, "Ce-Type": typ, "Ce-Source": source, "Content-Type": ct} {
			if v != "" {
				h.Set(k, v)
			}
		}
		e, err := parseEvent(context.Background(), h, []byte(body))
		if err == nil {
			if verr := e.Validate(); verr != nil {
				t.Fatalf("accepted an invalid event: %v", verr)
			}
		}
	})
}
