package gateway_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/telemetry"
)

// fullChain builds the gateway as main does: behind shared/runtime's handler (request id,
// OTel server span, recoverer, body limit) and with an otelhttp client transport.
func fullChain(tb testing.TB, dial string, log *slog.Logger) (*httptest.Server, string) {
	tb.Helper()
	rs := redistest.Start(tb)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { rdb.Close() })
	tel, err := telemetry.Setup(context.Background(), telemetry.Options{Service: "gateway"})
	if err != nil {
		tb.Fatal(err)
	}
	tr := otelhttp.NewTransport(gateway.NewTransport(dial), otelhttp.WithTracerProvider(tel.TracerProvider),
		otelhttp.WithMeterProvider(tel.MeterProvider), otelhttp.WithPropagators(tel.Propagator))
	priv, _ := auth.GenerateInternalKey()
	pk, _ := auth.ParsePrivateKey(priv)
	keys := auth.NewKeyStore(rdb, gateway.Keys)
	g, err := gateway.New(gateway.Config{Namespace: "day-trade", RateLimit: gateway.Limit{Rate: 1 << 30, Burst: 1 << 30, Period: time.Second}},
		defaultRoutes, gateway.Deps{Log: log, Transport: tr, Redis: rdb, Keys: keys, Signer: auth.NewSigner(pk), Meter: tel.MeterProvider})
	if err != nil {
		tb.Fatal(err)
	}
	rt := config.Runtime{MaxBodyBytes: 1 << 20}
	srv := httptest.NewServer(runtime.NewHandler(rt, runtime.Function{Handler: g, OwnMetrics: true}, tel, log, nil))
	tb.Cleanup(srv.Close)
	key, _, err := keys.Create(context.Background(), auth.KeySpec{Owner: "bench", Tenant: "t1", Roles: []string{"viewer"}})
	if err != nil {
		tb.Fatal(err)
	}
	return srv, key
}

// TestTraceContinues sends a traceparent to the gateway and checks the function receives a
// traceparent of the same trace (a new parent span: the gateway's client span).
func TestTraceContinues(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Get("Traceparent") })
	srv, key := fullChain(t, dial, slog.New(slog.DiscardHandler))
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	req, _ := http.NewRequest("GET", srv.URL+"/api/v1/data/stocks/7203.T", nil)
	req.Header.Set("Traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
	req.Header.Set("X-API-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	tp := <-got
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[1] != traceID || parts[2] == "00f067aa0ba902b7" {
		t.Fatalf("upstream traceparent %q; want trace %s with the gateway's span as parent", tp, traceID)
	}
}

// BenchmarkChain compares the full chain (runtime wrapper, API key auth, Redis rate limit
// that never trips, metrics, tracing, access log at info to a discarded handler, identity
// token) with a bare httputil.ReverseProxy in front of the same backend, over real loopback
// HTTP, and reports full/bare throughput as "ratio".
//
//	go test -run '^$' -bench BenchmarkChain -benchtime 5s ./gateway/
func BenchmarkChain(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"symbol":"7203.T","close":2500}`)
	}))
	b.Cleanup(backend.Close)
	dial := strings.TrimPrefix(backend.URL, "http://")
	bu, _ := url.Parse(backend.URL)
	bareProxy := httputil.NewSingleHostReverseProxy(bu)
	bareProxy.Transport = gateway.NewTransport("")
	bare := httptest.NewServer(bareProxy)
	b.Cleanup(bare.Close)
	// Tracing at 1% sampling, as in production (the OTel SDK reads these).
	b.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	b.Setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
	full, key := fullChain(b, dial, slog.New(slog.NewJSONHandler(io.Discard, nil)))

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxIdleConns: 256}}
	run := func(b *testing.B, base string, key string) float64 {
		b.ReportAllocs()
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			req, _ := http.NewRequest("GET", base+"/api/v1/data/stocks/7203.T", nil)
			if key != "" {
				req.Header.Set("X-API-Key", key)
			}
			for pb.Next() {
				resp, err := client.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Errorf("status %d", resp.StatusCode)
					return
				}
			}
		})
		return float64(b.N) / time.Since(start).Seconds()
	}
	var bareRPS, fullRPS float64
	b.Run("bare", func(b *testing.B) { bareRPS = run(b, bare.URL, ""); b.ReportMetric(bareRPS, "req/s") })
	b.Run("full", func(b *testing.B) { fullRPS = run(b, full.URL, key); b.ReportMetric(fullRPS, "req/s") })
	if bareRPS > 0 {
		b.Logf("full chain / bare ReverseProxy = %.2f (%.0f vs %.0f req/s)", fullRPS/bareRPS, fullRPS, bareRPS)
		b.ReportMetric(fullRPS/bareRPS, "ratio")
	}
}
