package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/notify"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// offline resolves nothing, at once: tests and fuzzing never wait on DNS.
var offline = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, errors.New("offline")
}}

func testConfig() notify.Config {
	return notify.Config{WebhookSecret: "whsec", AllowCIDRs: "127.0.0.0/8", DefaultChannels: "log", Timeout: 5 * time.Second, Resolver: offline}
}

func newSender(t *testing.T, c notify.Config, pub Publisher) (*sender, *notify.Store) {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	st := notify.NewStore(rdb, store.NewKeys("notif"), 0)
	s := &sender{cfg: c, store: st, pub: pub, log: discard(), ident: batch.NewIdentity(false)}
	if pub == nil {
		s.inline = &notify.Dispatcher{Store: st, Senders: c.Senders(discard()), Policy: notify.Policy{
			Attempts: map[notify.Priority]int{notify.PriorityNormal: 4}, Base: time.Millisecond, Max: 5 * time.Millisecond}}
	}
	t.Cleanup(func() { s.wait(context.Background()) })
	return s, st
}

func post(h http.Handler, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/api/v1/notifications/send", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(batch.TenantHeader, "acme")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestSendInlineDeliversOnceThroughFailures(t *testing.T) {
	var calls atomic.Int32
	var mu sync.Mutex
	var got [][]byte
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if calls.Add(1) <= 2 {
			w.WriteHeader(502)
			return
		}
		if notify.Verify([]byte("whsec"), b, r.Header.Get(notify.HeaderSignature), time.Now(), time.Minute) != nil {
			w.WriteHeader(401)
			return
		}
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
	}))
	defer rx.Close()
	s, st := newSender(t, testConfig(), nil)
	w := post(newServer(discard(), s), `{"type":"alert","message":"7203.T broke out","priority":"high","channels":["log",{"type":"webhook","url":"`+rx.URL+`/h"}]}`)
	if w.Code != 202 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var resp sendResponse
	json.Unmarshal(w.Body.Bytes(), &resp)
	if !strings.HasPrefix(resp.NotificationID, "ntf_") || resp.Dispatch != "inline" || len(resp.Channels) != 2 || w.Header().Get("Location") != "/api/v1/notifications/"+resp.NotificationID {
		t.Fatalf("%+v %v", resp, w.Header())
	}
	s.wait(context.Background())
	rec, err := st.Get(context.Background(), resp.NotificationID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Overall() != notify.OverallDelivered || rec.Channels[1].Attempts != 3 || len(got) != 1 {
		t.Fatalf("%s %+v, %d delivered", rec.Overall(), rec.Channels, len(got))
	}
}

// captured is a sink that records CloudEvents as the Broker's ingress would receive them.
type captured struct {
	mu   sync.Mutex
	reqs []http.Header
	body [][]byte
	fail bool
}

func (c *captured) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail {
		w.WriteHeader(400)
		return
	}
	c.reqs = append(c.reqs, r.Header.Clone())
	c.body = append(c.body, b)
	w.WriteHeader(202)
}

func TestSendPublishesOneEventPerChannel(t *testing.T) {
	sink := &captured{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	pub, err := events.NewPublisher(srv.URL, events.WithRetries(0, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	c := testConfig()
	c.SlackURL = "https://hooks.slack.example/services/T/B/X"
	s, st := newSender(t, c, pub)
	w := post(newServer(discard(), s), `{"type":"report","message":"daily predictions ready","channels":["slack","log"]}`)
	if w.Code != 202 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var resp sendResponse
	json.Unmarshal(w.Body.Bytes(), &resp)
	if resp.Dispatch != "broker" || resp.Status != notify.OverallQueued || len(sink.reqs) != 2 {
		t.Fatalf("%+v, %d events", resp, len(sink.reqs))
	}
	for i, h := range sink.reqs {
		var p events.NotificationRequested
		json.Unmarshal(sink.body[i], &p)
		if h.Get("Ce-Type") != events.TypeNotificationRequested || h.Get("Ce-Source") != events.SourceNotificationsSend ||
			p.Meta[notify.MetaNotificationID] != resp.NotificationID || p.Meta[notify.MetaChannelIndex] != []string{"0", "1"}[i] || p.Body != "daily predictions ready" ||
			p.Tenant != "acme" {
			t.Errorf("event %d: %v %+v", i, h, p)
		}
	}
	// The notification belongs to the caller's tenant (notifications-status scopes reads by it).
	if rec, err := st.Get(context.Background(), resp.NotificationID); err != nil || rec.Notification.Tenant != "acme" {
		t.Fatalf("stored tenant %q (%v)", rec.Notification.Tenant, err)
	}
	// Without any identity the request is refused before anything is stored.
	anon := httptest.NewRequest("POST", "/api/v1/notifications/send", strings.NewReader(`{"type":"report","message":"x","channels":["log"]}`))
	if w := httptest.NewRecorder(); func() int { newServer(discard(), s).ServeHTTP(w, anon); return w.Code }() != 401 {
		t.Fatalf("anonymous send: %d", w.Code)
	}
	// A sink that refuses: the caller is told, and nothing is left half-queued.
	sink.fail = true
	w = post(newServer(discard(), s), `{"type":"report","message":"x","channels":["log"]}`)
	if w.Code != 502 {
		t.Fatalf("refused publish: %d %s", w.Code, w.Body)
	}
	_ = st
}

func TestSendBadInputNamesTheField(t *testing.T) {
	s, _ := newSender(t, testConfig(), nil)
	h := newServer(discard(), s)
	for body, field := range map[string]string{
		`{"message":"m","channels":["log"]}`:                                                                          "type",
		`{"type":"Alert!","message":"m","channels":["log"]}`:                                                          "type",
		`{"type":"a","message":"  ","channels":["log"]}`:                                                              "message",
		`{"type":"a","message":"m","channels":[]}`:                                                                    "channels",
		`{"type":"a","message":"m","channels":["sms"]}`:                                                               "channels[0].type",
		`{"type":"a","message":"m","channels":["log"],"priority":"urgent"}`:                                           "priority",
		`{"type":"a","message":"m","channels":["slack"]}`:                                                             "channels[0].url",
		`{"type":"a","message":"m","channels":["email"]}`:                                                             "channels[0].to",
		`{"type":"a","message":"m","channels":[{"type":"email","to":["not an address"]}]}`:                            "channels[0].to",
		`{"type":"a","message":"m","channels":[{"type":"log","url":"https://example.com"}]}`:                          "channels[0].url",
		`{"type":"a","message":"m","channels":[{"type":"webhook","url":"http://169.254.169.254/latest/meta-data/"}]}`: "channels[0].url",
		`{"type":"a","message":"m","channels":[{"type":"webhook","url":"http://10.1.2.3/x"}]}`:                        "channels[0].url",
		`{"type":"a","message":"m","channels":[{"type":"webhook","url":"http://[::1]/x"}]}`:                           "channels[0].url",
		`{"type":"a","message":"m","channels":[{"type":"webhook","url":"http://metadata.google.internal/"}]}`:         "channels[0].url",
		`{"type":"a","message":"m","channels":[{"type":"slack","url":"file:///etc/passwd"}]}`:                         "channels[0].url",
		`{"type":"a","message":"m","channels":[{"type":"webhook","url":"https://unresolvable.example/"}]}`:            "channels[0].url",
	} {
		w := post(h, body)
		var p httpx.Problem
		json.Unmarshal(w.Body.Bytes(), &p)
		found := false
		for _, e := range p.Errors {
			found = found || e.Field == field
		}
		if w.Code != 400 || !found {
			t.Errorf("%s: %d %+v", body, w.Code, p)
		}
	}
	for _, body := range []string{`{"type":"a","message":"m","channels":[{"type":"log","bogus":1}]}`, `{"type":"a"`, `{"type":"a","message":"m","channels":[7]}`} {
		if w := post(h, body); w.Code != 400 {
			t.Errorf("%s: %d", body, w.Code)
		}
	}
}

func FuzzSendRequest(f *testing.F) {
	for _, s := range []string{
		`{"type":"alert","message":"m","channels":["log","slack",{"type":"webhook","url":"http://127.0.0.1:9/x"}],"priority":"high"}`,
		`{"type":"a","message":"m","channels":[{"type":"email","to":["a@b.c"]}],"meta":{"k":"v"}}`,
		`{"type":"a","message":"m","channels":[{"type":"webhook","url":"http://[::ffff:169.254.169.254]/"}]}`,
	} {
		f.Add([]byte(s))
	}
	c := testConfig()
	c.AllowCIDRs = ""
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		dec, err := httpx.Decode[sendRequest](httptest.NewRecorder(), req, maxBody)
		if err != nil {
			if httpx.ErrorCode(err).Status() >= 500 {
				t.Fatal(err)
			}
			return
		}
		n, err := parseSend(context.Background(), dec, c)
		if err != nil {
			if httpx.ErrorCode(err) != httpx.CodeInvalid {
				t.Fatal(err)
			}
			return
		}
		// Whatever passed names no internal address: the guard refused every one.
		for _, tg := range n.Targets {
			if tg.URL != "" && c.Guard().CheckURL(context.Background(), tg.URL) != nil {
				t.Fatalf("accepted %q", tg.URL)
			}
		}
	})
}
