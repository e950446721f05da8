package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/batch/batchtest"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

type fakeSender struct {
	mu   sync.Mutex
	sent []cloudevents.Event
}

func (f *fakeSender) Send(_ context.Context, e cloudevents.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sent = append(f.sent, e)
	return nil
}

func setup(t *testing.T) (*redistest.Server, *fakeSender, *httptest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	pub := &fakeSender{}
	id := batch.NewIdentity(false)
	srv := httptest.NewServer(newServer(slog.New(slog.DiscardHandler), newStore(rdb, store.NewKeys("events")), pub, id))
	t.Cleanup(srv.Close)
	return rs, pub, srv
}

func failed(t *testing.T, id string, code int) cloudevents.Event {
	e := batchtest.Event(t, id, "com.daytrade.ml.batch.requested", "/day-trade/ml-batch-predict", map[string]string{"job_id": "j1"})
	e.SetExtension(extErrorDest, "http://ml-batch-worker.day-trade.svc.cluster.local/")
	e.SetExtension(extErrorCode, code)
	e.SetExtension(extErrorData, "YmFkIHBheWxvYWQ=") // "bad payload"
	return e
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		_ = json.Unmarshal(b, v)
	}
	return resp.StatusCode
}

func TestDeadLettersAreParkedListedAndReplayed(t *testing.T) {
	t.Parallel()
	_, pub, srv := setup(t)
	// Both modes; the same event twice (a second failing Trigger, or a failed replay).
	if st := batchtest.Send(t, srv.URL, failed(t, "evt-1", 400), false); st != 200 {
		t.Fatalf("binary: %d", st)
	}
	if st := batchtest.Send(t, srv.URL, failed(t, "evt-2", 503), true); st != 200 {
		t.Fatalf("structured: %d", st)
	}
	if st := batchtest.Send(t, srv.URL, failed(t, "evt-1", 400), true); st != 200 {
		t.Fatalf("again: %d", st)
	}
	var list listResponse
	if st := getJSON(t, srv.URL+"/api/v1/events/dead-letters", &list); st != 200 || list.Count != 2 {
		t.Fatalf("%d %+v", st, list)
	}
	byEvent := map[string]Letter{}
	for _, l := range list.DeadLetters {
		byEvent[l.EventID] = l
	}
	l1 := byEvent["evt-1"]
	if l1.Count != 2 || l1.Code != 400 || l1.Response != "bad payload" || l1.Dest != "http://ml-batch-worker.day-trade.svc.cluster.local/" || l1.Type != "com.daytrade.ml.batch.requested" {
		t.Fatalf("letter %+v", l1)
	}
	if byEvent["evt-2"].Code != 503 {
		t.Errorf("letter %+v", byEvent["evt-2"])
	}

	resp, err := http.Post(srv.URL+"/api/v1/events/dead-letters/"+l1.ID+"/replay", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || len(pub.sent) != 1 {
		t.Fatalf("replay: %d, %d sent", resp.StatusCode, len(pub.sent))
	}
	e := pub.sent[0]
	if e.ID() != "evt-1" || e.Source() != "/day-trade/ml-batch-predict" || len(e.Extensions()) != 0 || !strings.Contains(string(e.Data()), "j1") {
		t.Fatalf("replayed %v", e)
	}
	var again listResponse
	getJSON(t, srv.URL+"/api/v1/events/dead-letters?limit=1", &again)
	if again.Count != 1 {
		t.Errorf("limit=1 gave %d", again.Count)
	}
}

func TestDeadLetterBadInput(t *testing.T) {
	t.Parallel()
	rs, _, srv := setup(t)
	for name, tc := range map[string]struct {
		method, path, body string
		want               int
	}{
		"unknown letter":   {"POST", "/api/v1/events/dead-letters/0123456789abcdef01234567/replay", "", 404},
		"malformed letter": {"POST", "/api/v1/events/dead-letters/..%2f/replay", "", 404},
		"bad limit":        {"GET", "/api/v1/events/dead-letters?limit=0", "", 400},
		"not an event":     {"POST", "/", `{"x":1}`, 400},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader(tc.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, tc.want)
		}
	}
	// Redis down: the sink answers 503 so the Broker keeps the event and retries.
	rs.Kill()
	if st := batchtest.Send(t, srv.URL, failed(t, "evt-3", 400), false); st != http.StatusServiceUnavailable {
		t.Errorf("redis down: %d", st)
	}
}
