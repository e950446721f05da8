package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/batch/batchtest"
	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/ml/alert"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

type recordingPublisher struct {
	mu  sync.Mutex
	err error
	ids map[string]int
}

func (p *recordingPublisher) PublishID(_ context.Context, id, typ, source, subject string, data any) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return id, p.err
	}
	p.ids[id]++
	return id, nil
}

func (p *recordingPublisher) count(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.ids[id]
}

// fakeEnsemble speaks the ensemble's wire contract: it checks the feature names and answers
// one prediction per row, up when the first feature (a return) is positive.
type fakeEnsemble struct {
	calls  atomic.Int64
	rows   atomic.Int64
	status atomic.Int64 // non-zero: answer this status instead
}

func (f *fakeEnsemble) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	if st := f.status.Load(); st != 0 {
		httpx.WriteError(w, r, nil, &httpx.Error{Code: map[int64]httpx.Code{503: httpx.CodeUnavailable, 400: httpx.CodeInvalid}[st], Message: "fake"})
		return
	}
	var req inference.PredictRequest
	if r.URL.Path != "/v1/predict" || json.NewDecoder(r.Body).Decode(&req) != nil || len(req.FeatureNames) != len(features.Names()) {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	f.rows.Add(int64(len(req.Rows)))
	resp := inference.PredictResponse{ModelVersion: "v7"}
	for _, row := range req.Rows {
		p := 0.4
		if row[0] > 0 {
			p = 0.6
		}
		class := inference.ClassDown
		if p > 0.5 {
			class = inference.ClassUp
		}
		resp.Predictions = append(resp.Predictions, inference.Prediction{Probability: p, Class: class, Confidence: max(p, 1-p)})
	}
	_ = httpx.Encode(w, http.StatusOK, resp)
}

// fastMarket serves one synthetic series, generated once, for every symbol (scaled per
// symbol so the rows differ): generating a year of minutes per symbol is slow under -race.
func fastMarket(t *testing.T) market.Provider {
	t.Helper()
	end := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	base, err := market.NewSynthetic(market.Options{}).Bars(t.Context(), market.Query{Symbol: "7203.T", Period: "1y", Interval: "1d", End: end})
	if err != nil {
		t.Fatal(err)
	}
	return market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		k := 1 + float64(len(q.Symbol)%7)/10
		out := make([]market.Bar, len(base))
		for i, b := range base {
			b.Open, b.High, b.Low, b.Close, b.AdjClose = b.Open*k, b.High*k, b.Low*k, b.Close*k, b.AdjClose*k
			out[i] = b
		}
		return out, nil
	})
}

type fixture struct {
	rdb      *redis.Client
	jobs     *jobs.Store
	results  *batch.Results
	pub      *recordingPublisher
	ensemble *fakeEnsemble
	degrader *fakeDegrader // healthy unless a test sets bad
	srv      *httptest.Server
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	keys := store.NewKeys("ml")
	f := &fixture{rdb: rdb, jobs: jobs.NewStore(rdb, jobs.Options{}), results: batch.NewResults(rdb, keys, 0),
		pub: &recordingPublisher{ids: map[string]int{}}, ensemble: &fakeEnsemble{}, degrader: &fakeDegrader{}}
	ens := httptest.NewServer(f.ensemble)
	t.Cleanup(ens.Close)
	recv, err := events.NewReceiver(rdb, keys, events.ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{
		runner:   &batch.Runner{Jobs: f.jobs, Results: f.results, Chunk: 20, Parallel: 4},
		bars:     marketcache.New(rdb, keys, fastMarket(t), "synthetic"),
		ensemble: inference.NewClient(ens.URL, nil, 10*time.Second),
		tracker:  registry.NewTracker(rdb, keys, 0),
		alerts:   alert.NewAccuracy(rdb, keys, f.degrader, f.pub, events.SourceMLBatchWorker, alert.Config{Threshold: 0.5, Window: 200, MinScored: 100, Every: time.Hour}, alert.Options{}),
		pub:      f.pub, history: "1y", log: slog.New(slog.DiscardHandler),
	}
	recv.Handle(events.TypeMLBatchRequested, w.handle)
	f.srv = httptest.NewServer(newServer(recv))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) job(t *testing.T, symbols []string) (cloudevents.Event, string) {
	t.Helper()
	j, err := f.jobs.Create(t.Context(), jobs.Job{Kind: "ml.batch", Tenant: "acme", Total: int64(len(symbols))})
	if err != nil {
		t.Fatal(err)
	}
	return batchtest.Event(t, j.ID+".requested", events.TypeMLBatchRequested, events.SourceMLBatchPredict,
		events.MLBatchRequested{JobID: j.ID, Tenant: "acme", Symbols: symbols, Horizon: 1}), j.ID
}

func syms(base, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%d.T", base+i)
	}
	return out
}

func TestBatchOf100DuplicatedAndReorderedPredictsEachSymbolOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	big, bigID := f.job(t, syms(1000, 100))
	small, smallID := f.job(t, append(syms(2000, 3), "^N225"))
	deliveries := []cloudevents.Event{big, small, big, small, big, small}
	rand.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
	var wg sync.WaitGroup
	for i, e := range deliveries {
		wg.Go(func() {
			if st := batchtest.Deliver(t, f.srv.URL, e, i%2 == 0); st != 200 {
				t.Errorf("delivery %d of %s: %d", i, e.ID(), st)
			}
		})
	}
	wg.Wait()

	for id, n := range map[string]int{bigID: 100, smallID: 4} {
		j, err := f.jobs.Get(t.Context(), "acme", id)
		if err != nil || j.Status != jobs.StatusSucceeded || j.Done != int64(n) {
			t.Fatalf("job %s: %+v %v", id, j, err)
		}
		writes, _ := f.results.Writes(t.Context(), id)
		if len(writes) != n {
			t.Errorf("job %s: %d writes, want %d", id, len(writes), n)
		}
		if c := f.pub.count(id + ".completed"); c != 1 {
			t.Errorf("job %s: completion published %d times", id, c)
		}
	}
	// 104 rows asked for once each: no duplicate reached the ensemble.
	if r := f.ensemble.rows.Load(); r != 104 {
		t.Errorf("ensemble saw %d rows, want 104", r)
	}
	items, _ := f.results.All(t.Context(), bigID)
	var p prediction
	if err := json.Unmarshal(items[0].Value, &p); err != nil || !items[0].OK || p.ModelVersion != "v7" || p.AsOf.IsZero() || (p.Direction != "up" && p.Direction != "down") {
		t.Fatalf("item %+v (%+v, %v)", items[0], p, err)
	}
	// Each prediction is tracked once for realised accuracy.
	fig, err := registry.NewTracker(f.rdb, store.NewKeys("ml"), 0).Version(t.Context(), "v7")
	if err != nil || fig.Recorded != 104 {
		t.Errorf("tracker %+v %v, want 104 recorded", fig, err)
	}
}

func TestEnsembleOutageIsRetriedAndRefusalIsRecorded(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	e, id := f.job(t, syms(3000, 5))
	f.ensemble.status.Store(503)
	if st := batchtest.Send(t, f.srv.URL, e, false); st != 503 {
		t.Fatalf("ensemble down: %d, want 503 (redelivered by the Broker)", st)
	}
	f.ensemble.status.Store(400)
	if st := batchtest.Deliver(t, f.srv.URL, e, false); st != 200 {
		t.Fatalf("ensemble refusing: %d", st)
	}
	j, _ := f.jobs.Get(t.Context(), "acme", id)
	if j.Status != jobs.StatusFailed || j.Error != "all 5 symbols failed" {
		t.Fatalf("job %+v", j)
	}
	if f.pub.count(id+".completed") != 1 {
		t.Error("a failed job is announced too")
	}
}

// fakeDegrader reports degraded accuracy when bad is set.
type fakeDegrader struct{ bad atomic.Bool }

func (d *fakeDegrader) Degraded(context.Context, int, float64, int) (bool, registry.Figures, error) {
	return d.bad.Load(), registry.Figures{Scored: 200, Correct: 80, Accuracy: 0.4}, nil
}

func (d *fakeDegrader) Prevailing(context.Context, int) (string, error) { return "v7", nil }

// The worker runs the shared accuracy check (shared/ml/alert, tested there) after each job
// it ends: jobs ending while accuracy is degraded raise one alert per period.
func TestAccuracyAlertAfterJobs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.degrader.bad.Store(true)
	for range 3 {
		e, id := f.job(t, syms(4000, 2))
		if st := batchtest.Deliver(t, f.srv.URL, e, false); st != 200 {
			t.Fatalf("job %s: %d", id, st)
		}
	}
	alerts := 0
	f.pub.mu.Lock()
	for id, n := range f.pub.ids {
		if strings.HasPrefix(id, "accuracy-degraded-") {
			alerts += n
		}
	}
	f.pub.mu.Unlock()
	if alerts != 1 {
		t.Fatalf("%d accuracy alerts after three jobs in one period, want 1", alerts)
	}
}
