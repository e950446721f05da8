package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// fixture is one function: a receiver on a chi router behind a real HTTP server, backed by a
// real redis-server.
type fixture struct {
	redis *redistest.Server
	rdb   *redis.Client
	recv  *events.Receiver
	srv   *httptest.Server
	hits  atomic.Int64 // POSTs that reached the server, retries included
}

func newFixture(t *testing.T, opts events.ReceiverOptions) *fixture {
	t.Helper()
	f := &fixture{redis: redistest.Start(t)}
	f.rdb = mustOpen(t, f.redis.URL())
	f.recv = mustReceiver(t, f.rdb, opts)
	f.srv = httptest.NewServer(f.router(f.recv))
	t.Cleanup(f.srv.Close)
	return f
}

func mustOpen(t testing.TB, url string) *redis.Client {
	t.Helper()
	rdb, err := store.Open(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

func mustReceiver(t testing.TB, rdb *redis.Client, opts events.ReceiverOptions) *events.Receiver {
	t.Helper()
	r, err := events.NewReceiver(rdb, store.NewKeys("test"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// router mounts the receiver beside a normal route, as a function does.
func (f *fixture) router(recv *events.Receiver) http.Handler {
	r := chi.NewRouter()
	r.Get("/health/readiness", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	ce := recv.HTTPHandler()
	r.Post("/", func(w http.ResponseWriter, req *http.Request) {
		f.hits.Add(1)
		ce.ServeHTTP(w, req)
	})
	return r
}

func (f *fixture) publisher(t *testing.T, opts ...events.PublisherOption) *events.Publisher {
	t.Helper()
	p, err := events.NewPublisher(f.srv.URL, append([]events.PublisherOption{events.WithRetries(3, time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// binary builds a binary-mode delivery of one event.
func binary(t *testing.T, url, id, typ, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", id)
	req.Header.Set("Ce-Source", events.Source("test"))
	req.Header.Set("Ce-Type", typ)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// structured builds a structured-mode delivery of one event.
func structured(t *testing.T, url, id, typ, data string) *http.Request {
	t.Helper()
	body := `{"specversion":"1.0","id":"` + id + `","source":"` + events.Source("test") + `","type":"` + typ +
		`","datacontenttype":"application/json","data":` + data + `}`
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/cloudevents+json; charset=utf-8")
	return req
}

func do(t *testing.T, req *http.Request) int {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const tickData = `{"schedule":"market-open","at":"2026-01-05T00:00:00Z"}`

func TestReceiverAcceptsBinaryAndStructuredMode(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{})
	got := make(chan events.ExecutionTick, 2)
	f.recv.Handle(events.TypeExecutionTick, func(_ context.Context, e cloudevents.Event) error {
		var tick events.ExecutionTick
		if err := events.DecodeData(e, &tick); err != nil {
			return err
		}
		got <- tick
		return nil
	})
	for name, req := range map[string]*http.Request{
		"binary":     binary(t, f.srv.URL, "b-1", events.TypeExecutionTick, tickData),
		"structured": structured(t, f.srv.URL, "s-1", events.TypeExecutionTick, tickData),
	} {
		t.Run(name, func(t *testing.T) {
			if code := do(t, req); code != http.StatusOK {
				t.Fatalf("status %d, want 200", code)
			}
			tick := <-got
			if tick.Schedule != "market-open" || !tick.At.Equal(time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)) {
				t.Errorf("payload %+v", tick)
			}
		})
	}
	if code := do(t, mustGet(t, f.srv.URL+"/health/readiness")); code != http.StatusNoContent {
		t.Errorf("normal route beside the receiver: status %d", code)
	}
}

func mustGet(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestDuplicateDeliveryProcessesOnce(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{})
	var effects atomic.Int64
	f.recv.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error {
		effects.Add(1)
		return nil
	})
	for i, mk := range []func() *http.Request{
		func() *http.Request { return binary(t, f.srv.URL, "dup-1", events.TypeExecutionTick, tickData) },
		func() *http.Request { return structured(t, f.srv.URL, "dup-1", events.TypeExecutionTick, tickData) },
		func() *http.Request { return binary(t, f.srv.URL, "dup-1", events.TypeExecutionTick, tickData) },
	} {
		if code := do(t, mk()); code != http.StatusOK {
			t.Fatalf("delivery %d: status %d, want 200", i, code)
		}
	}
	if n := effects.Load(); n != 1 {
		t.Fatalf("handler ran %d times for one event, want 1", n)
	}
	// Same id from another source is another event.
	req := binary(t, f.srv.URL, "dup-1", events.TypeExecutionTick, tickData)
	req.Header.Set("Ce-Source", events.Source("other"))
	if code := do(t, req); code != http.StatusOK || effects.Load() != 2 {
		t.Fatalf("other source: status %d, effects %d; want 200, 2", code, effects.Load())
	}
}

func TestDuplicateWhileProcessingIsRetriedLater(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{})
	started, release := make(chan struct{}), make(chan struct{})
	var effects atomic.Int64
	f.recv.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error {
		if effects.Add(1) == 1 {
			close(started)
			<-release
		}
		return nil
	})
	first := make(chan int)
	go func() { first <- do(t, binary(t, f.srv.URL, "slow-1", events.TypeExecutionTick, tickData)) }()
	<-started
	if code := do(t, binary(t, f.srv.URL, "slow-1", events.TypeExecutionTick, tickData)); code != http.StatusTooManyRequests {
		t.Fatalf("duplicate while processing: status %d, want 429", code)
	}
	close(release)
	if code := <-first; code != http.StatusOK {
		t.Fatalf("first delivery: status %d", code)
	}
	if code := do(t, binary(t, f.srv.URL, "slow-1", events.TypeExecutionTick, tickData)); code != http.StatusOK {
		t.Fatalf("duplicate after done: status %d, want 200", code)
	}
	if n := effects.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
}

func TestPoisonIsRejectedAndNotRetried(t *testing.T) {
	cases := map[string]struct {
		err  error
		want int
	}{
		"invalid":       {httpx.Invalid("symbols is empty"), http.StatusBadRequest},
		"unprocessable": {httpx.Errorf(httpx.CodeUnprocessable, "unknown model"), http.StatusUnprocessableEntity},
		"not found":     {httpx.Errorf(httpx.CodeNotFound, "no such job"), http.StatusUnprocessableEntity},
		"bad payload":   {nil, http.StatusBadRequest}, // DecodeData fails on "[]"
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, events.ReceiverOptions{})
			var calls atomic.Int64
			f.recv.Handle(events.TypeMLBatchRequested, func(_ context.Context, e cloudevents.Event) error {
				calls.Add(1)
				if tc.err != nil {
					return tc.err
				}
				var req events.MLBatchRequested
				return events.DecodeData(e, &req)
			})
			var data any = events.MLBatchRequested{JobID: "j1", Tenant: "t1", Symbols: []string{"7203.T"}, Horizon: 5}
			if tc.err == nil {
				data = json.RawMessage(`[]`)
			}
			id, err := f.publisher(t).Publish(context.Background(), events.TypeMLBatchRequested, events.SourceMLBatchPredict, "j1", data)
			if code := httpx.ErrorCode(err); code != httpx.CodeInvalid {
				t.Fatalf("Publish error %v (code %s), want code invalid", err, code)
			}
			if n := f.hits.Load(); n != 1 {
				t.Errorf("publisher sent %d times, want 1 (poison is not retried)", n)
			}
			// A redelivery of the same event (as a Broker would) gets the same answer without work.
			req := binary(t, f.srv.URL, id, events.TypeMLBatchRequested, `{}`)
			req.Header.Set("Ce-Source", events.SourceMLBatchPredict)
			if code := do(t, req); code != tc.want {
				t.Errorf("redelivery: status %d, want %d", code, tc.want)
			}
			if n := calls.Load(); n != 1 {
				t.Errorf("handler ran %d times, want 1", n)
			}
		})
	}
}

func TestTransientFailureIsRetriedUntilSuccess(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{})
	var calls, effects atomic.Int64
	f.recv.Handle(events.TypeDataBatchRequested, func(context.Context, cloudevents.Event) error {
		if calls.Add(1) == 1 {
			return httpx.Errorf(httpx.CodeUnavailable, "provider down")
		}
		effects.Add(1)
		return nil
	})
	_, err := f.publisher(t).Publish(context.Background(), events.TypeDataBatchRequested, events.SourceDataBatchFetch, "",
		events.DataBatchRequested{JobID: "j", Tenant: "t", Symbols: []string{"6758.T"}, Period: "1y", Interval: "1d"})
	if err != nil {
		t.Fatalf("Publish: %v", err)
	}
	if c, e, h := calls.Load(), effects.Load(), f.hits.Load(); c != 2 || e != 1 || h != 2 {
		t.Fatalf("calls %d, effects %d, sends %d; want 2, 1, 2 (503 then success)", c, e, h)
	}
}

func TestTransientFailureAnswers503(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{})
	f.recv.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error {
		return httpx.Errorf(httpx.CodeUnavailable, "down")
	})
	for range 2 { // the processing mark is released, so the redelivery runs again
		if code := do(t, binary(t, f.srv.URL, "t-1", events.TypeExecutionTick, tickData)); code != http.StatusServiceUnavailable {
			t.Fatalf("status %d, want 503", code)
		}
	}
}

func TestPublisherGivesUpOnPersistentFailure(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{})
	f.recv.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error {
		return errors.New("bug") // foreign error: internal, retryable
	})
	_, err := f.publisher(t).Publish(context.Background(), events.TypeExecutionTick, events.SourceExecutionScheduler, "", events.ExecutionTick{})
	if code := httpx.ErrorCode(err); code != httpx.CodeUnavailable {
		t.Fatalf("error %v (code %s), want unavailable", err, code)
	}
	if n := f.hits.Load(); n != 4 {
		t.Fatalf("sent %d times, want 1 + 3 retries", n)
	}
}

func TestPublisherUndelivered(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	p, err := events.NewPublisher(url, events.WithRetries(1, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Publish(context.Background(), events.TypeExecutionTick, events.SourceExecutionScheduler, "", nil)
	if code := httpx.ErrorCode(err); code != httpx.CodeUnavailable {
		t.Fatalf("error %v (code %s), want unavailable", err, code)
	}
}

func TestNewPublisherRejectsBadTarget(t *testing.T) {
	for _, target := range []string{"", "localhost:8080", "ftp://x/", "http://"} {
		if _, err := events.NewPublisher(target); err == nil {
			t.Errorf("NewPublisher(%q) accepted", target)
		}
	}
}

func TestPublishRejectsInvalidEvent(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{})
	_, err := f.publisher(t).Publish(context.Background(), "", events.SourceExecutionScheduler, "", nil)
	if code := httpx.ErrorCode(err); code != httpx.CodeInvalid {
		t.Fatalf("empty type: error %v, want invalid", err)
	}
	if f.hits.Load() != 0 {
		t.Fatal("an invalid event was sent")
	}
}

func TestCrashedWorkerLeaseExpires(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{Lease: 200 * time.Millisecond})
	// Pod A takes the lease and never answers, as a crashed or hung worker.
	hung, unblock := make(chan struct{}), make(chan struct{})
	a := mustReceiver(t, f.rdb, events.ReceiverOptions{Lease: 200 * time.Millisecond})
	a.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error {
		close(hung)
		<-unblock // ignores ctx: it is stuck
		return errors.New("too late")
	})
	aSrv := httptest.NewServer(a.HTTPHandler())
	defer aSrv.Close()
	defer close(unblock)
	go func() {
		resp, err := http.DefaultClient.Do(binary(t, aSrv.URL, "crash-1", events.TypeExecutionTick, tickData))
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-hung

	// Pod B receives the Broker's redeliveries.
	var effects atomic.Int64
	f.recv.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error {
		effects.Add(1)
		return nil
	})
	if code := do(t, binary(t, f.srv.URL, "crash-1", events.TypeExecutionTick, tickData)); code != http.StatusTooManyRequests {
		t.Fatalf("while A holds the lease: status %d, want 429", code)
	}
	deadline := time.Now().Add(30 * time.Second) // a bound against hanging, not a timing assertion
	for {
		code := do(t, binary(t, f.srv.URL, "crash-1", events.TypeExecutionTick, tickData))
		if code == http.StatusOK {
			break
		}
		if code != http.StatusTooManyRequests || time.Now().After(deadline) {
			t.Fatalf("redelivery: status %d", code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if n := effects.Load(); n != 1 {
		t.Fatalf("B ran %d times, want 1", n)
	}
}

func TestRedisDownAnswers503(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{})
	var calls atomic.Int64
	f.recv.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error {
		calls.Add(1)
		return nil
	})
	f.redis.Kill()
	if code := do(t, binary(t, f.srv.URL, "r-1", events.TypeExecutionTick, tickData)); code != http.StatusServiceUnavailable {
		t.Fatalf("redis down: status %d, want 503", code)
	}
	if calls.Load() != 0 {
		t.Fatal("handler ran without dedup")
	}
	f.redis.Restart()
	if code := do(t, binary(t, f.srv.URL, "r-1", events.TypeExecutionTick, tickData)); code != http.StatusOK {
		t.Fatalf("redis back: status %d, want 200", code)
	}
	if calls.Load() != 1 {
		t.Fatalf("handler ran %d times, want 1", calls.Load())
	}
}

func TestHandlerPanicIsRetryable(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{})
	var calls atomic.Int64
	f.recv.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error {
		if calls.Add(1) == 1 {
			panic("boom")
		}
		return nil
	})
	for i, want := range []int{http.StatusInternalServerError, http.StatusOK} {
		if code := do(t, binary(t, f.srv.URL, "p-1", events.TypeExecutionTick, tickData)); code != want {
			t.Fatalf("delivery %d: status %d, want %d", i, code, want)
		}
	}
}

func TestReceiverRejectsMalformedRequests(t *testing.T) {
	f := newFixture(t, events.ReceiverOptions{MaxBodyBytes: 1024})
	var calls atomic.Int64
	f.recv.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error {
		calls.Add(1)
		return nil
	})
	raw := func(ct, body string, hdr ...string) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL, strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		return req
	}
	withHeader := func(req *http.Request, k, v string) *http.Request { req.Header.Set(k, v); return req }
	cases := map[string]struct {
		req  *http.Request
		want int
	}{
		"unknown type":          {binary(t, f.srv.URL, "m-1", "com.daytrade.nope", `{}`), http.StatusBadRequest},
		"no ce headers":         {raw("application/json", `{"a":1}`), http.StatusBadRequest},
		"structured bad json":   {raw("application/cloudevents+json", `{"specversion":`), http.StatusBadRequest},
		"structured missing id": {raw("application/cloudevents+json", `{"specversion":"1.0","source":"/x","type":"com.daytrade.execution.tick"}`), http.StatusBadRequest},
		"binary missing id":     {withHeader(binary(t, f.srv.URL, "", events.TypeExecutionTick, tickData), "Ce-Id", ""), http.StatusBadRequest},
		"binary bad time":       {withHeader(binary(t, f.srv.URL, "m-2", events.TypeExecutionTick, tickData), "Ce-Time", "yesterday"), http.StatusBadRequest},
		"bad specversion":       {withHeader(binary(t, f.srv.URL, "m-3", events.TypeExecutionTick, tickData), "Ce-Specversion", "9.9"), http.StatusBadRequest},
		"batch":                 {raw("application/cloudevents-batch+json", `[]`), http.StatusBadRequest},
		"too large":             {binary(t, f.srv.URL, "m-4", events.TypeExecutionTick, `"`+strings.Repeat("x", 2048)+`"`), http.StatusRequestEntityTooLarge},
		"get":                   {mustGet(t, f.srv.URL), http.StatusMethodNotAllowed},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if code := do(t, tc.req); code != tc.want {
				t.Errorf("status %d, want %d", code, tc.want)
			}
		})
	}
	if calls.Load() != 0 {
		t.Fatalf("handler ran %d times for malformed input", calls.Load())
	}
}

func TestTraceContextTravelsWithTheEvent(t *testing.T) {
	for name, recvTP := range map[string]trace.TracerProvider{
		"no receiver tracer": nil,
		"receiver span":      sdktrace.NewTracerProvider(),
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, events.ReceiverOptions{TracerProvider: recvTP})
			var mu sync.Mutex
			var got trace.SpanContext
			f.recv.Handle(events.TypeNotificationRequested, func(ctx context.Context, _ cloudevents.Event) error {
				mu.Lock()
				defer mu.Unlock()
				got = trace.SpanContextFromContext(ctx)
				return nil
			})
			tp := sdktrace.NewTracerProvider()
			ctx, span := tp.Tracer("test").Start(context.Background(), "caller")
			defer span.End()
			_, err := f.publisher(t, events.WithTracerProvider(tp)).Publish(ctx, events.TypeNotificationRequested,
				events.SourceNotificationsSend, "", events.NotificationRequested{Tenant: "t", Channel: "email", Title: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if !got.IsValid() || got.TraceID() != span.SpanContext().TraceID() {
				t.Fatalf("receiver trace %v, want trace id %v", got.TraceID(), span.SpanContext().TraceID())
			}
			if got.SpanID() == span.SpanContext().SpanID() {
				t.Error("receiver reused the caller's span id; want the producer span or a child")
			}
		})
	}
}

func TestDecodeData(t *testing.T) {
	mk := func(ct string, data []byte) cloudevents.Event {
		e := cloudevents.NewEvent()
		e.SetType(events.TypeExecutionTick)
		e.SetDataContentType(ct)
		e.DataEncoded = data
		return e
	}
	cases := map[string]struct {
		e       cloudevents.Event
		wantErr bool
	}{
		"json":              {mk("application/json", []byte(tickData)), false},
		"json with charset": {mk("application/json; charset=utf-8", []byte(tickData)), false},
		"unknown field":     {mk("application/json", []byte(`{"schedule":"x","new_field":1}`)), false},
		"xml":               {mk("application/xml", []byte(`<a/>`)), true},
		"broken":            {mk("application/json", []byte(`{`)), true},
		"empty":             {mk("application/json", nil), true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var tick events.ExecutionTick
			err := events.DecodeData(tc.e, &tick)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tc.wantErr)
			}
			if err != nil && httpx.ErrorCode(err) != httpx.CodeInvalid {
				t.Errorf("code %s, want invalid", httpx.ErrorCode(err))
			}
		})
	}
}
