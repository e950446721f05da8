package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/ml/alert"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/store"
)

// sink is a CloudEvents receiver over real HTTP: it decodes each event as the Broker would,
// answers refuse while refusing is set (after waiting for gate, when set), and keeps what
// it accepted.
type sink struct {
	mu       sync.Mutex
	gate     chan struct{}
	refuse   bool
	attempts int
	accepted []events.MLAccuracyDegraded
	ids      []string
	sources  []string
}

func (s *sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e, err := cehttp.NewEventFromHTTPRequest(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.attempts++
	gate, refuse := s.gate, s.refuse
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if refuse || e.Type() != events.TypeMLAccuracyDegraded {
		http.Error(w, "refused", http.StatusBadRequest)
		return
	}
	var p events.MLAccuracyDegraded
	if err := events.DecodeData(*e, &p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.accepted, s.ids, s.sources = append(s.accepted, p), append(s.ids, e.ID()), append(s.sources, e.Source())
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (s *sink) counts() (attempts, accepted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts, len(s.accepted)
}

// TestAccuracyAlertFromPredictions: ml-predict checks realised accuracy after the requests
// that score earlier calls and, with it below threshold, publishes exactly one
// ml.accuracy.degraded per period to a real CloudEvents receiver, however many concurrent
// predictions score; the check runs off the request path (predictions return while the
// sink hangs), and a refused publish does not use up the period.
func TestAccuracyAlertFromPredictions(t *testing.T) {
	rcv := &sink{gate: make(chan struct{}), refuse: true}
	sinkSrv := httptest.NewServer(rcv)
	defer sinkSrv.Close()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	cfg := alert.Config{Threshold: 0.5, Window: 100, MinScored: 1, Every: time.Hour}
	h := start(t, options{alert: func(h harness) *alerts {
		pub, err := events.NewPublisher(sinkSrv.URL, events.WithRetries(0, time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		acc := alert.NewAccuracy(h.rdb, store.NewKeys("ml"), h.tracker, pub, events.Source("ml-predict"), cfg, alert.Options{Now: now})
		return &alerts{check: acc.Check, log: quietLog(), timeout: 10 * time.Second}
	}})
	symbols := []string{"7203.T", "6758.T", "8306.T", "4502.T"}
	bars := map[string][]time.Time{}
	closes := map[string][]float64{}
	for _, s := range symbols {
		for _, b := range csvBars(t, s) {
			bars[s], closes[s] = append(bars[s], b.Time), append(closes[s], b.Close)
		}
	}
	// plant records, for each symbol, ten wrong calls of the served version on earlier bars
	// (round r uses its own bars), which the next request for the symbol scores.
	plant := func(round int) {
		t.Helper()
		for _, s := range symbols {
			for j := range 10 {
				k := len(bars[s]) - 2 - round*10 - j
				wentUp := closes[s][k+1] > closes[s][k]
				if _, err := h.tracker.Record(context.Background(), registry.Prediction{
					Symbol: s, Version: h.version, BarTime: bars[s][k], Up: !wentUp, Probability: 0.6,
				}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// predictConcurrently sends 24 predictions over the symbols at once; each must succeed.
	predictConcurrently := func() {
		t.Helper()
		var wg sync.WaitGroup
		for i := range 24 {
			wg.Go(func() {
				resp, b := h.post(t, fmt.Sprintf(`{"symbol":%q}`, symbols[i%len(symbols)]))
				if resp.StatusCode != 200 {
					t.Errorf("prediction %d: %d %s", i, resp.StatusCode, b)
				}
			})
		}
		wg.Wait()
	}
	settle := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := h.alerts.wait(ctx); err != nil {
			t.Fatal("alert check still running:", err)
		}
	}

	// 1. The sink hangs, then refuses: every prediction still answers (the check is off the
	// request path), and nothing is delivered.
	plant(0)
	predictConcurrently()
	close(rcv.gate)
	settle()
	if attempts, accepted := rcv.counts(); attempts != 1 || accepted != 0 {
		t.Fatalf("sink saw %d attempts, accepted %d; want one refused attempt", attempts, accepted)
	}
	// 2. Same period, the sink accepts: the refusal did not use up the period, and however
	// many predictions score, one alert goes out.
	rcv.mu.Lock()
	rcv.refuse = false
	rcv.mu.Unlock()
	plant(1)
	predictConcurrently()
	settle()
	plant(2)
	predictConcurrently()
	settle()
	if _, accepted := rcv.counts(); accepted != 1 {
		t.Fatalf("%d alerts in one period, want 1", accepted)
	}
	got := rcv.accepted[0]
	bucket := strconv.FormatInt(now().UnixNano()/int64(time.Hour), 10)
	if rcv.ids[0] != "accuracy-degraded-"+bucket || rcv.sources[0] != events.Source("ml-predict") ||
		got.Version != h.version || got.Model != "ensemble" || got.Value != 0 || got.Threshold != 0.5 ||
		got.Window != "100 predictions" || !got.ObservedAt.Equal(now()) {
		t.Fatalf("alert %s from %s: %+v (served version %s)", rcv.ids[0], rcv.sources[0], got, h.version)
	}
	// 3. The next period gets its own alert.
	clock.Add(int64(time.Hour))
	plant(3)
	predictConcurrently()
	settle()
	if _, accepted := rcv.counts(); accepted != 2 || rcv.ids[1] == rcv.ids[0] {
		t.Fatalf("%d alerts over two periods (ids %v), want 2", accepted, rcv.ids)
	}
}

// The alert reads the same variables as ml-batch-worker (the periods they claim must match),
// and the sink is optional: without one ml-predict still starts, with no alerts.
func TestAlertConfig(t *testing.T) {
	t.Setenv("REDIS_URL", "redis://127.0.0.1:6379")
	t.Setenv("DATA_PROVIDER", "synthetic")
	var c cfg
	if err := config.Load(&c); err != nil {
		t.Fatal(err)
	}
	if c.Events.Target() != "" || c.Alert != (alert.Config{Threshold: 0.5, Window: 200, MinScored: 100, Every: time.Hour}) {
		t.Fatalf("defaults: sink %q, alert %+v", c.Events.Target(), c.Alert)
	}
	t.Setenv("K_SINK", "http://broker.example/ns/default")
	t.Setenv("ACCURACY_THRESHOLD", "0.52")
	t.Setenv("ACCURACY_ALERT_EVERY", "30m")
	if err := config.Load(&c); err != nil {
		t.Fatal(err)
	}
	if c.Events.Target() != "http://broker.example/ns/default" || c.Alert.Threshold != 0.52 || c.Alert.Every != 30*time.Minute {
		t.Fatalf("sink %q, alert %+v", c.Events.Target(), c.Alert)
	}
	t.Setenv("ACCURACY_THRESHOLD", "1.5")
	if err := config.Load(&c); err == nil {
		t.Fatal("ACCURACY_THRESHOLD 1.5 accepted")
	}
}
