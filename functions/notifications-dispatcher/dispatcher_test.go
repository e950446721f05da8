package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/notify"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

type fixture struct {
	url   string
	store *notify.Store
	hooks *receiver
}

// receiver is a webhook endpoint that fails its first `fail` calls.
type receiver struct {
	fail  int32
	calls atomic.Int32
	mu    sync.Mutex
	got   []string
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	if r.calls.Add(1) <= r.fail {
		w.WriteHeader(503)
		return
	}
	if notify.Verify([]byte("s3cret"), b, req.Header.Get(notify.HeaderSignature), time.Now(), time.Minute) != nil {
		w.WriteHeader(401)
		return
	}
	r.mu.Lock()
	r.got = append(r.got, string(b))
	r.mu.Unlock()
}

func newFixture(t *testing.T, fail int32) fixture {
	t.Helper()
	hooks := &receiver{fail: fail}
	hs := httptest.NewServer(hooks)
	t.Cleanup(hs.Close)
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	log := slog.New(slog.DiscardHandler)
	keys := store.NewKeys("notif")
	st := notify.NewStore(rdb, keys, 0)
	c := notify.Config{WebhookURL: hs.URL + "/ops", WebhookSecret: "s3cret", AllowCIDRs: "127.0.0.0/8", Timeout: 5 * time.Second}
	disp := &notify.Dispatcher{Store: st, Senders: c.Senders(log), Log: log,
		Policy: notify.Policy{Attempts: map[notify.Priority]int{notify.PriorityNormal: 4, notify.PriorityHigh: 4}, Base: time.Millisecond, Max: 2 * time.Millisecond}}
	rcv, err := events.NewReceiver(rdb, keys, events.ReceiverOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	register(rcv, handler{store: st, disp: disp, defaults: []notify.Target{{Channel: notify.ChannelWebhook}, {Channel: notify.ChannelLog}}, log: log})
	srv := httptest.NewServer(newServer(rcv))
	t.Cleanup(srv.Close)
	return fixture{url: srv.URL, store: st, hooks: hooks}
}

func (f fixture) send(t *testing.T, id, source, typ string, data any) int {
	t.Helper()
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetSource(source)
	e.SetType(typ)
	e.SetTime(time.Now())
	if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
		t.Fatal(err)
	}
	c, err := cloudevents.NewClientHTTP(cloudevents.WithTarget(f.url))
	if err != nil {
		t.Fatal(err)
	}
	res := c.Send(context.Background(), e)
	var hr *cehttp.Result
	if cloudevents.ResultAs(res, &hr) {
		return hr.StatusCode
	}
	t.Fatalf("send: %v", res)
	return 0
}

func TestPlatformEventsBecomeNotificationsOnce(t *testing.T) {
	f := newFixture(t, 2)
	fill := events.OrderFilled{OrderID: "o-1", Tenant: "acme", Symbol: "7203.T", Side: "buy", Quantity: decimal.NewFromInt(100),
		Price: decimal.RequireFromString("2650.5"), Fee: decimal.RequireFromString("26.5"), Currency: "JPY", FilledAt: time.Now()}
	for range 3 { // the Broker redelivers; the webhook still gets one message
		if code := f.send(t, "fill-1", events.SourceExecutionTrade, events.TypeExecutionOrderFilled, fill); code != 200 && code != 202 && code != 204 {
			t.Fatalf("status %d", code)
		}
	}
	if len(f.hooks.got) != 1 || f.hooks.calls.Load() != 3 || !strings.Contains(f.hooks.got[0], "7203.T") {
		t.Fatalf("%d calls, got %v", f.hooks.calls.Load(), f.hooks.got)
	}
	rec, err := f.store.Get(context.Background(), notify.EventNotificationID(events.SourceExecutionTrade, "fill-1"))
	// The fill's notification belongs to the account's tenant: only it can read its status.
	if err != nil || rec.Overall() != notify.OverallDelivered || rec.Channels[0].Attempts != 3 || rec.Notification.Tenant != "acme" {
		t.Fatalf("%+v %v", rec, err)
	}
	f.send(t, "deg-1", events.SourceMLBatchWorker, events.TypeMLAccuracyDegraded, events.MLAccuracyDegraded{Model: "ensemble", Version: "v3", Metric: "directional_accuracy", Value: 0.48, Threshold: 0.5, Window: "20d"})
	f.send(t, "batch-1", events.SourceMLBatchWorker, events.TypeMLBatchCompleted, events.MLBatchCompleted{JobID: "j1", Outcome: events.OutcomeFailed, Error: "provider down"})
	if len(f.hooks.got) != 3 || !strings.Contains(f.hooks.got[1], `"priority":"high"`) || !strings.Contains(f.hooks.got[2], "provider down") {
		t.Fatalf("got %v", f.hooks.got)
	}
}

func TestRequestedEventsDeliverTheStoredChannel(t *testing.T) {
	f := newFixture(t, 0)
	ctx := context.Background()
	n := notify.Notification{ID: "ntf_abc", Type: "alert", Message: "hello", Priority: notify.PriorityNormal, CreatedAt: time.Now(),
		Targets: []notify.Target{{Channel: notify.ChannelLog}, {Channel: notify.ChannelWebhook}}}
	if err := f.store.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	for i, ev := range notify.RequestedEvents(n, "") {
		if code := f.send(t, "req-"+string(rune('a'+i)), events.SourceNotificationsSend, events.TypeNotificationRequested, ev); code >= 300 {
			t.Fatalf("status %d", code)
		}
	}
	rec, _ := f.store.Get(ctx, n.ID)
	if rec.Overall() != notify.OverallDelivered || len(f.hooks.got) != 1 {
		t.Fatalf("%s %+v, %d webhook calls", rec.Overall(), rec.Channels, len(f.hooks.got))
	}
	// From another producer, with no stored notification: stored and delivered under an id
	// derived from the event, once.
	p := events.NotificationRequested{Channel: "webhook", Severity: "critical", Title: "Risk", Body: "daily loss limit hit"}
	f.send(t, "foreign-1", events.SourceExecutionScheduler, events.TypeNotificationRequested, p)
	f.send(t, "foreign-1", events.SourceExecutionScheduler, events.TypeNotificationRequested, p)
	if len(f.hooks.got) != 2 || !strings.Contains(f.hooks.got[1], `"priority":"critical"`) {
		t.Fatalf("got %v", f.hooks.got)
	}
	// Poison: an unknown channel is refused without retries.
	if code := f.send(t, "bad-1", events.SourceExecutionScheduler, events.TypeNotificationRequested, events.NotificationRequested{Channel: "pager", Body: "x"}); code != 400 {
		t.Fatalf("poison answered %d", code)
	}
	if code := f.send(t, "bad-2", events.SourceNotificationsSend, events.TypeNotificationRequested, events.NotificationRequested{Channel: "log", Body: "x", Meta: map[string]string{"notification_id": "../../etc", "channel_index": "0"}}); code != 400 {
		t.Fatalf("bad id answered %d", code)
	}
}
