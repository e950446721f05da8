package gateway

import (
	"context"
	"errors"
	"math"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/day-trade/platform/shared/resilience"
)

// metrics are the gateway's own instruments (the runtime's otelhttp adds server and client
// request metrics). Attribute sets are built once per route so that recording allocates little.
type metrics struct {
	requests  metric.Int64Counter
	latency   metric.Float64Histogram
	decisions metric.Int64Counter
	cache     metric.Int64Counter
	authFails metric.Int64Counter
	degraded  atomic.Int64

	mu       sync.Mutex
	breakers map[string]resilience.State

	unmatched routeAttrs
	authAttrs [3]metric.AddOption
}

type routeAttrs struct {
	byClass   [6]metric.AddOption // 0: other, 1..5: 1xx..5xx
	latency   metric.RecordOption
	decisions [numDecisions]metric.AddOption
	cache     [numCacheResults]metric.AddOption
}

func newMetrics(mp metric.MeterProvider, g *Gateway) *metrics {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := &metrics{breakers: map[string]resilience.State{}}
	meter := mp.Meter("github.com/day-trade/platform/gateway")
	m.requests, _ = meter.Int64Counter("gateway.requests", metric.WithDescription("Requests answered by the gateway, by route and status class"))
	m.latency, _ = meter.Float64Histogram("gateway.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from request to answer through the whole chain"),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
	m.decisions, _ = meter.Int64Counter("gateway.ratelimit.decisions", metric.WithDescription("Rate limiter decisions; degraded_* and fail_closed while Redis is unreachable"))
	m.cache, _ = meter.Int64Counter("gateway.cache.lookups", metric.WithDescription("Response cache outcomes"))
	m.authFails, _ = meter.Int64Counter("gateway.auth.failures", metric.WithDescription("Refused or undecidable authentications"))
	_, _ = meter.Int64ObservableGauge("gateway.ratelimit.degraded", metric.WithDescription("1 while the rate limiter cannot reach Redis"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			o.Observe(m.degraded.Load())
			return nil
		}))
	_, _ = meter.Int64ObservableGauge("gateway.breaker.state", metric.WithDescription("Circuit breaker state per upstream: 0 closed, 1 half-open, 2 open"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			for _, u := range g.ups {
				o.Observe(int64(u.breaker.State()), metric.WithAttributes(attribute.String("upstream", u.name)))
			}
			return nil
		}))
	m.unmatched = m.routeAttrs("unmatched")
	for i, reason := range []string{"missing", "invalid", "unavailable"} {
		m.authAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("reason", reason)))
	}
	return m
}

func (m *metrics) routeAttrs(name string) routeAttrs {
	var a routeAttrs
	for i := range a.byClass {
		class := "other"
		if i > 0 {
			class = string(rune('0'+i)) + "xx"
		}
		a.byClass[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("route", name), attribute.String("status_class", class)))
	}
	a.latency = metric.WithAttributeSet(attribute.NewSet(attribute.String("route", name)))
	for i := range a.decisions {
		a.decisions[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("route", name), attribute.String("decision", decisionNames[i])))
	}
	for i := range a.cache {
		a.cache[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("route", name), attribute.String("result", cacheResultNames[i])))
	}
	return a
}

func (m *metrics) request(ctx context.Context, x *route, status int, d time.Duration) {
	a := &m.unmatched
	if x != nil {
		a = &x.attrs
	}
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	m.requests.Add(ctx, 1, a.byClass[class])
	m.latency.Record(ctx, d.Seconds(), a.latency)
}

func (m *metrics) decision(ctx context.Context, x *route, d int) {
	m.decisions.Add(ctx, 1, x.attrs.decisions[d])
}

func (m *metrics) cacheResult(ctx context.Context, x *route, res int) {
	m.cache.Add(ctx, 1, x.attrs.cache[res])
}

func (m *metrics) authFailure(ctx context.Context, err error) {
	i := 1
	switch {
	case errors.Is(err, errNoCredential):
		i = 0
	case errors.Is(err, errRedisDown):
		i = 2
	}
	m.authFails.Add(ctx, 1, m.authAttrs[i])
}

func (m *metrics) setDegraded(on bool) {
	if on {
		m.degraded.Store(1)
	} else {
		m.degraded.Store(0)
	}
}

func (m *metrics) breakerChanged(name string, to resilience.State) {
	m.mu.Lock()
	m.breakers[name] = to
	m.mu.Unlock()
}

// slaBook keeps, per route, a rolling window of request counts, 5xx counts and a latency
// histogram in slaBucket-wide slots, for GET /api/v1/gateway/sla.
type slaBook struct {
	window time.Duration
	slots  int
	mu     sync.Mutex
	routes []*slaRoute
}

const slaSlot = 10 * time.Second

// Latency histogram: bucket i holds durations below slaBase·slaGrowth^i (100 µs × 1.25^i,
// up to about a minute); percentiles are read as the bucket's upper bound (≤ 25% high).
const (
	slaBuckets = 60
	slaBase    = 100 * time.Microsecond
	slaGrowth  = 1.25
)

var slaBounds = func() [slaBuckets]time.Duration {
	var b [slaBuckets]time.Duration
	v := float64(slaBase)
	for i := range b {
		b[i] = time.Duration(v)
		v *= slaGrowth
	}
	return b
}()

type slaRoute struct {
	name  string
	mu    sync.Mutex
	slots []slaSlotData
}

type slaSlotData struct {
	epoch   int64
	total   int64
	errors  int64
	latency [slaBuckets + 1]int64
}

func newSLABook(window time.Duration) *slaBook {
	n := int(math.Ceil(float64(window) / float64(slaSlot)))
	return &slaBook{window: window, slots: max(n, 1)}
}

func (b *slaBook) route(name string) *slaRoute {
	r := &slaRoute{name: name, slots: make([]slaSlotData, b.slots)}
	b.mu.Lock()
	b.routes = append(b.routes, r)
	b.mu.Unlock()
	return r
}

func (b *slaBook) record(r *slaRoute, status int, d time.Duration, at time.Time) {
	epoch := at.UnixNano() / int64(slaSlot)
	i := sort.Search(slaBuckets, func(i int) bool { return d < slaBounds[i] })
	r.mu.Lock()
	s := &r.slots[epoch%int64(len(r.slots))]
	if s.epoch != epoch {
		*s = slaSlotData{epoch: epoch}
	}
	s.total++
	if status >= 500 {
		s.errors++
	}
	s.latency[i]++
	r.mu.Unlock()
}

// SLARoute is one route's availability and latency over the window.
type SLARoute struct {
	Route        string  `json:"route"`
	Requests     int64   `json:"requests"`
	Errors       int64   `json:"errors_5xx"`
	Availability float64 `json:"availability"`
	P50ms        float64 `json:"p50_ms"`
	P95ms        float64 `json:"p95_ms"`
	P99ms        float64 `json:"p99_ms"`
}

func (b *slaBook) report(now time.Time) []SLARoute {
	b.mu.Lock()
	routes := append([]*slaRoute(nil), b.routes...)
	b.mu.Unlock()
	cur := now.UnixNano() / int64(slaSlot)
	out := []SLARoute{}
	for _, r := range routes {
		var agg slaSlotData
		r.mu.Lock()
		for _, s := range r.slots {
			if s.total == 0 || cur-s.epoch >= int64(len(r.slots)) || s.epoch > cur {
				continue
			}
			agg.total += s.total
			agg.errors += s.errors
			for i, n := range s.latency {
				agg.latency[i] += n
			}
		}
		r.mu.Unlock()
		if agg.total == 0 {
			continue
		}
		out = append(out, SLARoute{
			Route: r.name, Requests: agg.total, Errors: agg.errors,
			Availability: 1 - float64(agg.errors)/float64(agg.total),
			P50ms:        quantile(&agg, 0.50), P95ms: quantile(&agg, 0.95), P99ms: quantile(&agg, 0.99),
		})
	}
	return out
}

func quantile(s *slaSlotData, q float64) float64 {
	want := int64(math.Ceil(q * float64(s.total)))
	var seen int64
	for i, n := range s.latency {
		seen += n
		if seen >= want {
			if i >= slaBuckets {
				return float64(slaBounds[slaBuckets-1].Microseconds()) / 1000
			}
			return float64(slaBounds[i].Microseconds()) / 1000
		}
	}
	return 0
}
