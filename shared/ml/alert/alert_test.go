package alert

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// fakeTracker reports degraded accuracy when bad is set, and counts its reads.
type fakeTracker struct {
	bad   atomic.Bool
	reads atomic.Int64
}

func (d *fakeTracker) Degraded(context.Context, int, float64, int) (bool, registry.Figures, error) {
	d.reads.Add(1)
	return d.bad.Load(), registry.Figures{Scored: 200, Correct: 80, Accuracy: 0.4}, nil
}

func (d *fakeTracker) Prevailing(context.Context, int) (string, error) { return "v7", nil }

type published struct {
	id, typ, source string
	data            events.MLAccuracyDegraded
}

type recordingPublisher struct {
	mu   sync.Mutex
	err  error
	sent []published
}

func (p *recordingPublisher) PublishID(_ context.Context, id, typ, source, _ string, data any) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return id, p.err
	}
	b, _ := json.Marshal(data)
	var d events.MLAccuracyDegraded
	_ = json.Unmarshal(b, &d)
	p.sent = append(p.sent, published{id, typ, source, d})
	return id, nil
}

func (p *recordingPublisher) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.sent)
}

func (p *recordingPublisher) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.err = err
}

func (p *recordingPublisher) last() published {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent[len(p.sent)-1]
}

// clock is a settable time, safe to read from concurrent checks.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *clock) now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) add(d time.Duration) { c.ns.Add(int64(d)) }

func cfg() Config { return Config{Threshold: 0.5, Window: 200, MinScored: 100, Every: time.Hour} }

func TestAccuracyAlertOncePerPeriod(t *testing.T) {
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	pub := &recordingPublisher{}
	tr := &fakeTracker{}
	clk := newClock(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	a := NewAccuracy(rdb, store.NewKeys("ml"), tr, pub, events.Source("ml-predict"), cfg(), Options{Now: clk.now})
	// A second process (another function or replica) sharing the claim.
	b := NewAccuracy(rdb, store.NewKeys("ml"), tr, pub, events.SourceMLBatchWorker, cfg(), Options{Now: clk.now})
	check := func(a *Accuracy) {
		t.Helper()
		if err := a.Check(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	check(a) // healthy: nothing
	if pub.count() != 0 {
		t.Fatal("alert on healthy accuracy")
	}
	tr.bad.Store(true)
	var wg sync.WaitGroup
	for i := range 20 { // many checks in the same hour, concurrently, from two processes
		wg.Go(func() { _ = [2]*Accuracy{a, b}[i%2].Check(context.Background()) })
	}
	wg.Wait()
	if n := pub.count(); n != 1 {
		t.Fatalf("%d alerts in one period, want 1", n)
	}
	got := pub.last()
	if got.typ != events.TypeMLAccuracyDegraded || got.data.Version != "v7" || got.data.Value != 0.4 ||
		got.data.Threshold != 0.5 || got.data.Model != "ensemble" || got.data.Window != "200 predictions" ||
		!got.data.ObservedAt.Equal(clk.now()) {
		t.Fatalf("alert %+v", got)
	}
	// Once the period is known to be published, checks in it read nothing.
	check(a)
	check(b)
	reads := tr.reads.Load()
	clk.add(59 * time.Minute)
	check(a)
	check(b)
	if n := pub.count(); n != 1 || tr.reads.Load() != reads {
		t.Fatalf("%d alerts in one period (want 1); %d tracker reads after it was published (want 0)", n, tr.reads.Load()-reads)
	}
	// A failed publish does not use up the period.
	clk.add(2 * time.Minute)
	pub.fail(errors.New("broker down"))
	if err := a.Check(t.Context()); err == nil {
		t.Fatal("publish error swallowed")
	}
	pub.fail(nil)
	check(a) // the process whose publish failed tries again itself
	check(b)
	if n := pub.count(); n != 2 {
		t.Fatalf("%d alerts over two periods, want 2", n)
	}
	if got := pub.last(); got.id == pub.sent[0].id || got.source != events.Source("ml-predict") {
		t.Fatalf("second period's alert %+v", got)
	}
}

// A claim another process holds while it is still publishing does not settle the period:
// if that publish fails and releases the claim, this process publishes.
func TestAccuracyAlertAfterAnotherProcessFailed(t *testing.T) {
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	pub := &recordingPublisher{}
	tr := &fakeTracker{}
	tr.bad.Store(true)
	clk := newClock(time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC))
	a := NewAccuracy(rdb, store.NewKeys("ml"), tr, pub, events.Source("ml-predict"), cfg(), Options{Now: clk.now})
	key := store.NewKeys("ml").Key("alert", "accuracy", strconv.FormatInt(clk.now().UnixNano()/int64(time.Hour), 10))
	if err := rdb.Set(t.Context(), key, claimPublishing, time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	if err := a.Check(t.Context()); err != nil || pub.count() != 0 {
		t.Fatalf("published %d while another process held the claim (%v)", pub.count(), err)
	}
	rdb.Del(t.Context(), key) // the other process's publish failed
	if err := a.Check(t.Context()); err != nil || pub.count() != 1 {
		t.Fatalf("published %d after the claim was released (%v), want 1", pub.count(), err)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := cfg().Validate(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]Config{
		"threshold 1": {Threshold: 1, Window: 1, MinScored: 1, Every: time.Hour},
		"window 0":    {Threshold: 0.5, Window: 0, MinScored: 1, Every: time.Hour},
		"every 0":     {Threshold: 0.5, Window: 1, MinScored: 1},
	} {
		if c.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
