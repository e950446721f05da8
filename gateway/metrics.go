package gateway

import (
	"context"
	"errors"
	"math"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/day-trade/platform/shared/resilience"
)

// metrics are the gateway's own instruments (the runtime adds only server spans for it, see
// runtime.Function.OwnMetrics). Per-request counts are kept in atomics per route and read by
// observable counters when metrics are collected, so counting costs an atomic add, not an
// SDK call with an attribute lookup; only the latency histograms are recorded per request,
// with attribute sets built once per route and upstream.
type metrics struct {
	latency   metric.Float64Histogram
	upstream  metric.Float64Histogram
	authFails metric.Int64Counter
	degraded  atomic.Int64

	mu       sync.Mutex
	breakers map[string]resilience.State
	routes   map[string]*routeCounters // by route name: a reload keeps a route's counts

	unmatched routeAttrs
	authAttrs [3]metric.AddOption
}

// routeCounters are one route's monotonic counts and their attribute sets.
type routeCounters struct {
	byClass       [6]atomic.Int64 // 0: other, 1..5: 1xx..5xx
	decisions     [numDecisions]atomic.Int64
	cache         [numCacheResults]atomic.Int64
	classAttrs    [6]metric.ObserveOption
	decisionAttrs [numDecisions]metric.ObserveOption
	cacheAttrs    [numCacheResults]metric.ObserveOption
}

type routeAttrs struct {
	c       *routeCounters
	latency []metric.RecordOption // a slice, so that Record's variadic call does not allocate
}

func newMetrics(mp metric.MeterProvider, g *Gateway) *metrics {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := &metrics{breakers: map[string]resilience.State{}, routes: map[string]*routeCounters{}}
	meter := mp.Meter("github.com/day-trade/platform/gateway")
	durations := metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
	m.latency, _ = meter.Float64Histogram("gateway.request.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from request to answer through the whole chain"), durations)
	m.upstream, _ = meter.Float64Histogram("gateway.upstream.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from sending one attempt to a function to its answer's headers, by upstream and status class"), durations)
	m.authFails, _ = meter.Int64Counter("gateway.auth.failures", metric.WithDescription("Refused or undecidable authentications"))
	observe := func(pick func(*routeCounters, metric.Int64Observer)) metric.Int64Callback {
		return func(_ context.Context, o metric.Int64Observer) error {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, c := range m.routes {
				pick(c, o)
			}
			return nil
		}
	}
	_, _ = meter.Int64ObservableCounter("gateway.requests", metric.WithDescription("Requests answered by the gateway, by route and status class"),
		metric.WithInt64Callback(observe(func(c *routeCounters, o metric.Int64Observer) {
			for i := range c.byClass {
				if v := c.byClass[i].Load(); v > 0 {
					o.Observe(v, c.classAttrs[i])
				}
			}
		})))
	_, _ = meter.Int64ObservableCounter("gateway.ratelimit.decisions", metric.WithDescription("Rate limiter decisions; degraded_* and fail_closed while Redis is unreachable"),
		metric.WithInt64Callback(observe(func(c *routeCounters, o metric.Int64Observer) {
			for i := range c.decisions {
				if v := c.decisions[i].Load(); v > 0 {
					o.Observe(v, c.decisionAttrs[i])
				}
			}
		})))
	_, _ = meter.Int64ObservableCounter("gateway.cache.lookups", metric.WithDescription("Response cache outcomes"),
		metric.WithInt64Callback(observe(func(c *routeCounters, o metric.Int64Observer) {
			for i := range c.cache {
				if v := c.cache[i].Load(); v > 0 {
					o.Observe(v, c.cacheAttrs[i])
				}
			}
		})))
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

// routeAttrs returns the counters of the route called name, made on first use.
func (m *metrics) routeAttrs(name string) routeAttrs {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.routes[name]
	if !ok {
		c = &routeCounters{}
		for i := range c.classAttrs {
			class := "other"
			if i > 0 {
				class = string(rune('0'+i)) + "xx"
			}
			c.classAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("route", name), attribute.String("status_class", class)))
		}
		for i := range c.decisionAttrs {
			c.decisionAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("route", name), attribute.String("decision", decisionNames[i])))
		}
		for i := range c.cacheAttrs {
			c.cacheAttrs[i] = metric.WithAttributeSet(attribute.NewSet(attribute.String("route", name), attribute.String("result", cacheResultNames[i])))
		}
		m.routes[name] = c
	}
	return routeAttrs{c: c, latency: []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("route", name)))}}
}

func statusClass(status int) int {
	if class := status / 100; class >= 1 && class <= 5 {
		return class
	}
	return 0
}

func (m *metrics) request(ctx context.Context, x *route, status int, d time.Duration) {
	a := &m.unmatched
	if x != nil {
		a = &x.attrs
	}
	a.c.byClass[statusClass(status)].Add(1)
	m.latency.Record(ctx, d.Seconds(), a.latency...)
}

func (m *metrics) decision(_ context.Context, x *route, d int) {
	x.attrs.c.decisions[d].Add(1)
}

func (m *metrics) cacheResult(_ context.Context, x *route, res int) {
	x.attrs.c.cache[res].Add(1)
}

// upstreamAttrs are one upstream's attribute sets per status class (0: no answer).
type upstreamAttrs [6][]metric.RecordOption

func (m *metrics) upstreamAttrs(name string) upstreamAttrs {
	var a upstreamAttrs
	for i := range a {
		class := "error"
		if i > 0 {
			class = string(rune('0'+i)) + "xx"
		}
		a[i] = []metric.RecordOption{metric.WithAttributeSet(attribute.NewSet(attribute.String("upstream", name), attribute.String("status_class", class)))}
	}
	return a
}

func (m *metrics) upstreamCall(ctx context.Context, a *upstreamAttrs, resp *http.Response, d time.Duration) {
	class := 0
	if resp != nil {
		class = statusClass(resp.StatusCode)
	}
	m.upstream.Record(ctx, d.Seconds(), a[class]...)
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
	byName map[string]*slaRoute
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
	return &slaBook{window: window, slots: max(n, 1), byName: map[string]*slaRoute{}}
}

// route returns the window of the route called name, made on first use: a reload builds every
// route again, and keeps each one's window (and its history) by name instead of leaking one
// window per route per reload.
func (b *slaBook) route(name string) *slaRoute {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r, ok := b.byName[name]; ok {
		return r
	}
	r := &slaRoute{name: name, slots: make([]slaSlotData, b.slots)}
	b.byName[name] = r
	b.routes = append(b.routes, r)
	return r
}

// retain drops the windows of routes no longer served (after a reload removed them).
func (b *slaBook) retain(keep func(name string) bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.routes = slices.DeleteFunc(b.routes, func(r *slaRoute) bool {
		if keep(r.name) {
			return false
		}
		delete(b.byName, r.name)
		return true
	})
}

func (b *slaBook) size() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.routes)
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
