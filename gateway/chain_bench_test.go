package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/telemetry"
)

// BenchmarkChainOverhead measures what the chain itself costs per request, without the
// network: the same canned upstream answer behind a bare httputil.ReverseProxy and behind the
// gateway as main builds it (runtime wrapper with its OTel server span, API key auth, Redis
// rate limit with token leases, metrics, tracing sampled at 1%, JSON access log written to
// /dev/null through the buffered writer, identity token). CPU profiles of this benchmark show the chain's own work; on a
// busy machine compare the fastest of several counts:
//
//	go test -run '^$' -bench BenchmarkChainOverhead -benchmem -count 6 -cpuprofile /tmp/chain.prof ./gateway/
func BenchmarkChainOverhead(b *testing.B) {
	b.Setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
	b.Setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
	ctx := context.Background()
	rs := redistest.Start(b)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { rdb.Close() })
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: "gateway"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(ctx) })
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { devnull.Close() })
	log := telemetry.NewLogger(devnull, "info")
	// The access log through a BufferedWriter, as cmd/gateway writes it.
	accessOut := telemetry.NewBufferedWriter(devnull, 100*time.Millisecond)
	b.Cleanup(func() { _ = accessOut.Close() })
	access := telemetry.NewLogger(accessOut, "info")

	var up canned
	tr := gateway.TraceSampled(otelhttp.NewTransport(up, otelhttp.WithTracerProvider(tel.TracerProvider),
		otelhttp.WithMeterProvider(noop.NewMeterProvider()), otelhttp.WithPropagators(tel.Propagator)), up, tel.Propagator)
	priv, _ := auth.GenerateInternalKey()
	pk, _ := auth.ParsePrivateKey(priv)
	keys := auth.NewKeyStore(rdb, gateway.Keys)
	g, err := gateway.New(gateway.Config{Namespace: "day-trade", RateLimit: gateway.Limit{Rate: 100000, Burst: 100000, Period: time.Second}},
		defaultRoutes, gateway.Deps{Log: log, AccessLog: access, Transport: tr, Redis: rdb, Keys: keys, Signer: auth.NewSigner(pk), Meter: tel.MeterProvider})
	if err != nil {
		b.Fatal(err)
	}
	// OwnMetrics as in cmd/gateway: the runtime adds lean server spans, not otelhttp's handler.
	full := runtime.NewHandler(config.Runtime{MaxBodyBytes: 1 << 20}, runtime.Function{Handler: g, OwnMetrics: true}, tel, log, nil)
	// otelhttp's server handler (spans and http.server metrics), what the gateway used before.
	fullOtelhttp := runtime.NewHandler(config.Runtime{MaxBodyBytes: 1 << 20}, runtime.Function{Handler: g}, tel, log, nil)
	// Two ablations say where the rest goes: the same gateway without its access log (logger
	// at warn), and that one without the runtime's server spans either.
	quiet := telemetry.NewLogger(devnull, "warn")
	gq, err := gateway.New(gateway.Config{Namespace: "day-trade", RateLimit: gateway.Limit{Rate: 100000, Burst: 100000, Period: time.Second}},
		defaultRoutes, gateway.Deps{Log: quiet, Transport: tr, Redis: rdb, Keys: keys, Signer: auth.NewSigner(pk), Meter: tel.MeterProvider})
	if err != nil {
		b.Fatal(err)
	}
	noLog := runtime.NewHandler(config.Runtime{MaxBodyBytes: 1 << 20}, runtime.Function{Handler: gq, OwnMetrics: true}, tel, quiet, nil)
	noLogNoServerSpan := runtime.NewHandler(config.Runtime{MaxBodyBytes: 1 << 20}, runtime.Function{Handler: gq}, nil, quiet, nil)
	key, _, err := keys.Create(ctx, auth.KeySpec{Owner: "bench", Tenant: "t1", Roles: []string{"viewer"}})
	if err != nil {
		b.Fatal(err)
	}
	target, _ := url.Parse("http://backend")
	bare := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(target) }, Transport: up}

	run := func(b *testing.B, h http.Handler, hdr http.Header) {
		tmpl, _ := http.NewRequest("GET", "http://gateway/api/v1/data/stocks/7203.T", nil)
		tmpl.RemoteAddr, tmpl.RequestURI = "127.0.0.1:40000", tmpl.URL.RequestURI()
		w := &discardWriter{h: http.Header{}}
		b.ReportAllocs()
		for b.Loop() {
			r := tmpl.Clone(ctx)
			for k, v := range hdr {
				r.Header[k] = v
			}
			clear(w.h)
			w.status = 0
			h.ServeHTTP(w, r)
			if w.status != http.StatusOK {
				b.Fatalf("status %d", w.status)
			}
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, bare, nil) })
	withKey := http.Header{"X-Api-Key": {key}}
	b.Run("full", func(b *testing.B) { run(b, full, withKey) })
	b.Run("full-with-otelhttp-server", func(b *testing.B) { run(b, fullOtelhttp, withKey) })
	b.Run("full-without-access-log", func(b *testing.B) { run(b, noLog, withKey) })
	b.Run("full-without-access-log-and-server-spans", func(b *testing.B) { run(b, noLogNoServerSpan, withKey) })
}

// canned is an upstream that answers at once with a small JSON body.
type canned struct{}

var cannedBody = []byte(`{"symbol":"7203.T","interval":"1d","close":2500.5,"volume":1204300}` + "\n")

func (canned) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	return &http.Response{StatusCode: http.StatusOK, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(cannedBody)),
		ContentLength: int64(len(cannedBody)), Request: r}, nil
}

// discardWriter is a ResponseWriter that keeps only the status.
type discardWriter struct {
	h      http.Header
	status int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return len(b), nil
}
