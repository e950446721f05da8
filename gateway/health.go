package gateway

import (
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// HealthConfig configures the health checks of registered instances. The catalog's own
// instance (the function's Knative host) is never probed: probing it would wake a function
// scaled to zero every Interval, and Knative already routes only to ready pods; nor is it
// ejected, being the only instance.
type HealthConfig struct {
	// Active checks: every Interval (default 10s) each registered instance gets GET Path
	// (default /health/readiness) with Timeout (default 2s); a 2xx passes. Unhealthy failed
	// checks in a row (default 3) take it out, Healthy passes in a row (default 2) bring it
	// back, and end a passive ejection early. Interval < 0 disables active checks.
	Interval  time.Duration
	Timeout   time.Duration
	Path      string
	Healthy   int
	Unhealthy int

	// Passive checks: ConsecutiveFailures (default 5) connection errors or 5xx answers in a
	// row eject an instance for BaseEjection (default 30s), doubled for each further ejection
	// that follows within MaxEjection of the last one ended, up to MaxEjection (default 5m).
	// At most MaxEjectedPercent (default 50) of an upstream's instances are ejected at once.
	// ConsecutiveFailures < 0 disables passive ejection.
	ConsecutiveFailures int
	BaseEjection        time.Duration
	MaxEjection         time.Duration
	MaxEjectedPercent   int
}

func (c *HealthConfig) defaults() {
	if c.Interval == 0 {
		c.Interval = 10 * time.Second
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.Path == "" {
		c.Path = "/health/readiness"
	}
	if c.Healthy <= 0 {
		c.Healthy = 2
	}
	if c.Unhealthy <= 0 {
		c.Unhealthy = 3
	}
	if c.ConsecutiveFailures == 0 {
		c.ConsecutiveFailures = 5
	}
	if c.BaseEjection <= 0 {
		c.BaseEjection = 30 * time.Second
	}
	if c.MaxEjection < c.BaseEjection {
		c.MaxEjection = max(5*time.Minute, c.BaseEjection)
	}
	if c.MaxEjectedPercent <= 0 || c.MaxEjectedPercent > 100 {
		c.MaxEjectedPercent = 50
	}
}

// observe records one attempt's outcome on in (passive health). A success costs one atomic
// load; failures count up to an ejection.
func (u *upstream) observe(in *instance, ok bool) {
	if ok {
		if in.fails.Load() != 0 {
			in.fails.Store(0)
		}
		return
	}
	limit := u.health.ConsecutiveFailures
	if limit < 0 || !u.pool.multi.Load() {
		return // the only instance: ejecting it would leave nothing to route to
	}
	if n := int(in.fails.Add(1)); n >= limit && n%limit == 0 {
		u.eject(in, n)
	}
}

// eject takes in out of rotation for a time that grows with repeated ejections, unless that
// would put more than MaxEjectedPercent of the instances out at once.
func (u *upstream) eject(in *instance, fails int) {
	p, hc := u.pool, &u.health
	p.mu.Lock()
	now := time.Now().UnixNano()
	list := *p.list.Load()
	if in.ejectedUntil.Load() > now {
		p.mu.Unlock()
		return // already out
	}
	out := 0
	for _, o := range list {
		if o.ejectedUntil.Load() > now {
			out++
		}
	}
	if (out+1)*100 > hc.MaxEjectedPercent*len(list) {
		p.mu.Unlock()
		if fails > u.health.ConsecutiveFailures {
			return // said once per failing streak; tried again at each multiple
		}
		u.log.Warn("upstream instance failing but not ejected: too many of its upstream's instances are out already",
			"upstream", u.name, "instance", in.url, "consecutive_failures", fails, "ejected", out, "instances", len(list), "max_ejected_percent", hc.MaxEjectedPercent)
		return
	}
	if in.lastEjectEnd == 0 || now-in.lastEjectEnd > int64(hc.MaxEjection) {
		in.ejections = 0 // well-behaved for a while: start again from the base time
	}
	in.ejections++
	d := hc.BaseEjection << min(in.ejections-1, 20)
	if d > hc.MaxEjection || d <= 0 {
		d = hc.MaxEjection
	}
	in.ejectedUntil.Store(now + int64(d))
	in.lastEjectEnd = now + int64(d)
	in.fails.Store(0)
	p.mu.Unlock()
	u.hm.ejected(u.name)
	u.log.Warn("upstream instance ejected", "upstream", u.name, "instance", in.url, "for", d.String(),
		"ejections", in.ejections, "consecutive_failures", fails)
}

// runHealth probes every registered instance each Interval until ctx ends.
func (g *Gateway) runHealth(ctx context.Context) {
	hc := g.cfg.Health
	if hc.Interval < 0 {
		return
	}
	t := time.NewTicker(hc.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			g.probeAll(ctx)
		}
	}
}

// probeAll runs one round of active checks, all instances at once, and waits for it; it also
// logs the end of passive ejections, which the request path notices without a word.
func (g *Gateway) probeAll(ctx context.Context) {
	var wg sync.WaitGroup
	now := time.Now().UnixNano()
	for _, u := range g.upstreamList() {
		for _, in := range u.pool.instances() {
			if until := in.ejectedUntil.Load(); until != 0 && now >= until && in.ejectedUntil.CompareAndSwap(until, 0) {
				g.log.Info("upstream instance back from ejection", "upstream", u.name, "instance", in.url)
			}
			if !in.registered {
				continue
			}
			wg.Go(func() { u.probe(ctx, in) })
		}
	}
	wg.Wait()
}

func (u *upstream) probe(parent context.Context, in *instance) {
	hc := &u.health
	ctx, cancel := context.WithTimeout(parent, hc.Timeout)
	defer cancel()
	ok := false
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, in.scheme+"://"+in.host+hc.Path, nil)
	if err == nil {
		req.Header.Set("User-Agent", "day-trade-gateway-health")
		var resp *http.Response
		if resp, err = u.base.RoundTrip(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			ok = resp.StatusCode >= 200 && resp.StatusCode < 300
		}
	}
	if parent.Err() != nil {
		return // the gateway is stopping: not the instance's fault
	}
	if ok {
		in.probeFail = 0
		in.probeOK++
		if in.down.Load() && in.probeOK >= hc.Healthy {
			in.down.Store(false)
			in.ejectedUntil.Store(0)
			in.fails.Store(0)
			u.log.Info("upstream instance healthy again", "upstream", u.name, "instance", in.url, "passed_checks", in.probeOK)
		}
		return
	}
	in.probeOK = 0
	in.probeFail++
	if !in.down.Load() && in.probeFail >= hc.Unhealthy {
		in.down.Store(true)
		attrs := []any{"upstream", u.name, "instance", in.url, "failed_checks", in.probeFail, "path", hc.Path}
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		u.log.Warn("upstream instance unhealthy", attrs...)
	}
}

// healthMetrics are the instruments of the instances' health.
type healthMetrics struct {
	ejections metric.Int64Counter
	attrs     sync.Map // upstream name → metric.AddOption
}

// registerHealthMetrics adds gateway.upstream.instance.health (1 in rotation, 0 ejected or
// failing its checks, per upstream and instance) and gateway.upstream.ejections.
func registerHealthMetrics(mp metric.MeterProvider, g *Gateway) *healthMetrics {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	meter := mp.Meter("github.com/day-trade/platform/gateway")
	h := &healthMetrics{}
	h.ejections, _ = meter.Int64Counter("gateway.upstream.ejections", metric.WithDescription("Passive ejections of upstream instances"))
	_, _ = meter.Int64ObservableGauge("gateway.upstream.instance.health",
		metric.WithDescription("1 while an upstream instance is in rotation, 0 while it is ejected or failing its health checks"),
		metric.WithInt64Callback(func(_ context.Context, o metric.Int64Observer) error {
			var now int64
			for _, u := range g.upstreamList() {
				for _, in := range u.pool.instances() {
					v := int64(0)
					if in.usable(&now) {
						v = 1
					}
					o.Observe(v, metric.WithAttributes(attribute.String("upstream", u.name), attribute.String("instance", in.url)))
				}
			}
			return nil
		}))
	return h
}

func (h *healthMetrics) ejected(upstream string) {
	if h == nil {
		return
	}
	a, ok := h.attrs.Load(upstream)
	if !ok {
		a, _ = h.attrs.LoadOrStore(upstream, metric.WithAttributeSet(attribute.NewSet(attribute.String("upstream", upstream))))
	}
	h.ejections.Add(context.Background(), 1, a.(metric.AddOption))
}
