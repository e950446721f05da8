package main

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/batch/batchtest"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// countingPublisher records every publish by event id.
type countingPublisher struct {
	mu  sync.Mutex
	ids map[string]int
	out []events.DataBatchCompleted
}

func (p *countingPublisher) PublishID(_ context.Context, id, typ, source, subject string, data any) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ids[id]++
	p.out = append(p.out, data.(events.DataBatchCompleted))
	return id, nil
}

type fixture struct {
	rdb     *redis.Client
	jobs    *jobs.Store
	results *batch.Results
	pub     *countingPublisher
	srv     *httptest.Server
	fetches sync.Map // symbol -> *atomic.Int64: provider calls, the side effect a duplicate would repeat
}

// newFixture runs the worker behind real HTTP against a real redis-server. provider wraps
// the synthetic market; nil uses it as it is.
func newFixture(t *testing.T, wrap func(market.Provider) market.Provider) *fixture {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	f := &fixture{rdb: rdb, jobs: jobs.NewStore(rdb, jobs.Options{}), pub: &countingPublisher{ids: map[string]int{}}}
	keys := store.NewKeys("data")
	f.results = batch.NewResults(rdb, keys, 0)
	var prov market.Provider = market.NewSynthetic(market.Options{})
	if wrap != nil {
		prov = wrap(prov)
	}
	counted := market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		n, _ := f.fetches.LoadOrStore(q.Symbol, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		return prov.Bars(ctx, q)
	})
	recv, err := events.NewReceiver(rdb, keys, events.ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	w := &worker{
		runner: &batch.Runner{Jobs: f.jobs, Results: f.results, Chunk: 2, Parallel: 2, Log: slog.New(slog.DiscardHandler)},
		cache:  marketcache.New(rdb, keys, counted, "synthetic"),
		pub:    f.pub,
	}
	recv.Handle(events.TypeDataBatchRequested, w.handle)
	f.srv = httptest.NewServer(newServer(recv))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) job(t *testing.T, tenant string, symbols ...string) cloudevents.Event {
	t.Helper()
	j, err := f.jobs.Create(t.Context(), jobs.Job{Kind: "data.batch", Tenant: tenant, Total: int64(len(symbols))})
	if err != nil {
		t.Fatal(err)
	}
	return batchtest.Event(t, j.ID+".requested", events.TypeDataBatchRequested, events.SourceDataBatchFetch,
		events.DataBatchRequested{JobID: j.ID, Tenant: tenant, Symbols: symbols, Period: "3mo", Interval: "1d"})
}

func TestDuplicatesOutOfOrderTakeEffectOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	var evs []cloudevents.Event
	for i := range 4 {
		var syms []string
		for k := range 5 {
			syms = append(syms, fmt.Sprintf("%d.T", 1000+i*10+k))
		}
		evs = append(evs, f.job(t, "acme", syms...))
	}
	// Every event three times, shuffled, half of them concurrently, in both modes.
	var deliveries []cloudevents.Event
	for _, e := range evs {
		deliveries = append(deliveries, e, e, e)
	}
	rand.Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })
	var wg sync.WaitGroup
	for i, e := range deliveries {
		wg.Go(func() {
			if st := batchtest.Deliver(t, f.srv.URL, e, i%2 == 1); st != http.StatusOK {
				t.Errorf("delivery %d of %s: %d", i, e.ID(), st)
			}
		})
		if i%2 == 0 {
			wg.Wait()
		}
	}
	wg.Wait()

	for _, e := range evs {
		var req events.DataBatchRequested
		_ = e.DataAs(&req)
		j, err := f.jobs.Get(t.Context(), "acme", req.JobID)
		if err != nil || j.Status != jobs.StatusSucceeded || j.Done != 5 {
			t.Fatalf("job %s: %+v %v", req.JobID, j, err)
		}
		writes, err := f.results.Writes(t.Context(), req.JobID)
		if err != nil || len(writes) != 5 {
			t.Errorf("job %s: %d result writes %v, want 5", req.JobID, len(writes), writes)
		}
		if n := f.pub.ids[req.JobID+".completed"]; n != 1 {
			t.Errorf("job %s: completion published %d times", req.JobID, n)
		}
		for _, s := range req.Symbols {
			n, _ := f.fetches.Load(s)
			if n == nil || n.(*atomic.Int64).Load() != 1 {
				t.Errorf("%s fetched %v times, want 1", s, n)
			}
		}
	}
	// The cache is warm: each series is in Redis.
	keys, _ := f.rdb.Keys(t.Context(), "data:bars:*").Result()
	if len(keys) != 20 {
		t.Errorf("%d cached series, want 20", len(keys))
	}
}

func TestFailedSymbolIsRecordedNotFatal(t *testing.T) {
	t.Parallel()
	f := newFixture(t, func(p market.Provider) market.Provider {
		return market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
			if q.Symbol == "9999.T" {
				return nil, market.ErrUnknownSymbol
			}
			return p.Bars(ctx, q)
		})
	})
	e := f.job(t, "acme", "7203.T", "9999.T", "6758.T")
	if st := batchtest.Deliver(t, f.srv.URL, e, false); st != 200 {
		t.Fatalf("status %d", st)
	}
	done := f.pub.out[0]
	if done.Outcome != events.OutcomeSucceeded || done.Fetched != 2 || len(done.Failed) != 1 || done.Failed[0] != "9999.T" {
		t.Fatalf("completed %+v", done)
	}
	items, _ := f.results.All(t.Context(), done.JobID)
	if len(items) != 3 || items[2].Symbol != "9999.T" || items[2].OK || items[2].Error == "" {
		t.Fatalf("items %+v", items)
	}
}

func TestOutageMidJobResumesWithoutRewriting(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	f := newFixture(t, func(p market.Provider) market.Provider {
		return market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
			if n := calls.Add(1); n > 3 && n < 7 { // the provider goes down after three symbols
				return nil, &market.UnavailableError{}
			}
			return p.Bars(ctx, q)
		})
	})
	syms := []string{"1301.T", "1332.T", "1333.T", "1376.T", "1377.T", "1379.T", "1414.T", "1417.T"}
	e := f.job(t, "acme", syms...)
	if st := batchtest.Send(t, f.srv.URL, e, false); st != http.StatusServiceUnavailable {
		t.Fatalf("first delivery during the outage: %d, want 503", st)
	}
	var req events.DataBatchRequested
	_ = e.DataAs(&req)
	j, _ := f.jobs.Get(t.Context(), "acme", req.JobID)
	if j.Status != jobs.StatusRunning || j.Done == 0 || j.Done == 8 {
		t.Fatalf("after the outage the job is %+v; want running with partial progress", j)
	}
	if st := batchtest.Deliver(t, f.srv.URL, e, true); st != 200 {
		t.Fatalf("redelivery: %d", st)
	}
	writes, _ := f.results.Writes(t.Context(), req.JobID)
	if len(writes) != 8 {
		t.Fatalf("%d writes, want 8: %v", len(writes), writes)
	}
	j, _ = f.jobs.Get(t.Context(), "acme", req.JobID)
	if j.Status != jobs.StatusSucceeded || j.Done != 8 {
		t.Fatalf("job %+v", j)
	}
}

func TestPoisonEventsAreRejected(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	good := f.job(t, "acme", "7203.T")
	var req events.DataBatchRequested
	_ = good.DataAs(&req)
	tests := map[string]struct {
		data any
		want int
	}{
		"not json":       {"{{{", 400},
		"no job id":      {events.DataBatchRequested{Tenant: "acme", Symbols: []string{"7203.T"}, Period: "1mo", Interval: "1d"}, 400},
		"bad period":     {events.DataBatchRequested{JobID: req.JobID, Tenant: "acme", Symbols: []string{"7203.T"}, Period: "7x", Interval: "1d"}, 400},
		"no symbols":     {events.DataBatchRequested{JobID: req.JobID, Tenant: "acme", Period: "1mo", Interval: "1d"}, 400},
		"unknown job":    {events.DataBatchRequested{JobID: "nope", Tenant: "acme", Symbols: []string{"7203.T"}, Period: "1mo", Interval: "1d"}, 422},
		"other's job":    {events.DataBatchRequested{JobID: req.JobID, Tenant: "globex", Symbols: []string{"7203.T"}, Period: "1mo", Interval: "1d"}, 422},
		"unhandled type": {nil, 400},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			typ := events.TypeDataBatchRequested
			if tc.data == nil {
				typ = events.TypeMLBatchRequested
			}
			e := batchtest.Event(t, "poison-"+name, typ, events.SourceDataBatchFetch, map[string]int{})
			if s, ok := tc.data.(string); ok {
				_ = e.SetData("application/json", []byte(s))
			} else if tc.data != nil {
				_ = e.SetData(cloudevents.ApplicationJSON, tc.data)
			}
			for _, structured := range []bool{false, true} {
				if st := batchtest.Send(t, f.srv.URL, e, structured); st != tc.want {
					t.Errorf("structured=%v: %d, want %d", structured, st, tc.want)
				}
			}
		})
	}
	// The real job is untouched by its poisoned lookalikes.
	j, _ := f.jobs.Get(t.Context(), "acme", req.JobID)
	if j.Status != jobs.StatusQueued {
		t.Errorf("job %+v", j)
	}
}
