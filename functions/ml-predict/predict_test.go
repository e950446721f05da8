package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

var testdata = filepath.Join("..", "..", "shared", "ml", "testdata")

type harness struct {
	srv      *httptest.Server
	reg      *registry.Registry
	tracker  *registry.Tracker
	cache    *marketcache.Cache
	reader   *sdkmetric.ManualReader
	version  string
	ensemble *httptest.Server
	rdb      *redis.Client
	alerts   *alerts
}

type options struct {
	provider    market.Provider
	ensembleURL string // "" runs a real ensemble service with a promoted model
	noModel     bool
	alert       func(h harness) *alerts // nil: no accuracy alerts
}

// start wires ml-predict as main does: real Redis, the real market-data cache over the CSV
// provider, and the real ensemble service (in-process, over HTTP) reading the registry.
func start(t *testing.T, o options) harness {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	h := harness{reg: registry.New(rdb, store.NewKeys("ml")), tracker: registry.NewTracker(rdb, store.NewKeys("ml"), 100)}
	if o.provider == nil {
		o.provider, _ = market.New(market.ProviderCSV, market.Options{CSVDir: testdata})
	}
	h.cache = marketcache.New(rdb, store.NewKeys("data"), o.provider, "csv")
	url := o.ensembleURL
	if url == "" {
		svc := inference.NewService(h.reg, quietLog())
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); svc.Run(ctx, inference.RunOptions{Poll: 20 * time.Millisecond}) }()
		h.ensemble = httptest.NewServer(inference.NewServer(quietLog(), svc))
		t.Cleanup(func() { h.ensemble.Close(); cancel(); <-done })
		url = h.ensemble.URL
		if !o.noModel {
			h.version = promote(t, h.reg)
			deadline := time.Now().Add(10 * time.Second)
			for svc.Current() == nil && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
		}
	}
	h.reader = sdkmetric.NewManualReader()
	m, err := newMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader)), 100)
	if err != nil {
		t.Fatal(err)
	}
	if o.alert != nil {
		h.rdb = rdb
		h.alerts = o.alert(h)
	}
	h.srv = httptest.NewServer(newServer(server{
		log: quietLog(), bars: h.cache, ensemble: inference.NewClient(url, nil, 2*time.Second),
		tracker: h.tracker, alerts: h.alerts, metrics: m, history: "1y", now: time.Now,
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// promote registers and promotes a logistic regression over the real feature names.
func promote(t *testing.T, reg *registry.Registry) string {
	t.Helper()
	names := features.Names()
	rng := rand.New(rand.NewPCG(3, 4))
	var X [][]float64
	var y []int
	for range 400 {
		x := make([]float64, len(names))
		for j := range x {
			x[j] = 0.02 * rng.NormFloat64()
		}
		up := 0
		if x[0]+0.01*rng.NormFloat64() > 0 {
			up = 1
		}
		X, y = append(X, x), append(y, up)
	}
	m, err := ml.TrainLogReg(X, y, ml.DefaultLogRegConfig())
	if err != nil {
		t.Fatal(err)
	}
	a, _ := ml.NewArtifact(m, names, nil, ml.DataRange{}, []string{"TEST"}, time.Now())
	v, err := reg.Register(context.Background(), a, registry.Meta{Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Promote(context.Background(), v.Version); err != nil {
		t.Fatal(err)
	}
	return v.Version
}

func (h harness) post(t *testing.T, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(h.srv.URL+"/api/v1/ml/predict", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp, b.Bytes()
}

func (h harness) predict(t *testing.T, body string) predictResponse {
	t.Helper()
	resp, b := h.post(t, body)
	var pr predictResponse
	if resp.StatusCode != 200 || json.Unmarshal(b, &pr) != nil {
		t.Fatalf("%s: %d %s", body, resp.StatusCode, b)
	}
	return pr
}

func csvBars(t *testing.T, symbol string) []market.Bar {
	t.Helper()
	p, _ := market.New(market.ProviderCSV, market.Options{CSVDir: testdata})
	bars, err := p.Bars(context.Background(), market.Query{Symbol: symbol, Period: "1y", Interval: "1d"})
	if err != nil {
		t.Fatal(err)
	}
	return bars
}

func TestPredictFromBars(t *testing.T) {
	h := start(t, options{})
	pr := h.predict(t, `{"symbol":"7203.t"}`)
	bars := csvBars(t, "7203.T")
	rows, _ := features.Matrix(bars)
	last := rows[len(rows)-1]
	if pr.Symbol != "7203.T" || pr.ModelVersion != h.version || pr.CacheHit || pr.AsOf == nil ||
		!pr.AsOf.Equal(bars[len(bars)-1].Time) || pr.PredictedAt.IsZero() {
		t.Fatalf("%+v", pr)
	}
	if pr.Prediction != "up" && pr.Prediction != "down" || pr.Confidence != ml.Confidence(pr.Probability) {
		t.Fatalf("call %q p %v conf %v", pr.Prediction, pr.Probability, pr.Confidence)
	}
	if len(pr.FeaturesUsed) != len(last) {
		t.Fatalf("%d features used", len(pr.FeaturesUsed))
	}
	for i, n := range features.Names() {
		if pr.FeaturesUsed[n] != last[i] {
			t.Fatalf("feature %s = %v, want the last bar's %v", n, pr.FeaturesUsed[n], last[i])
		}
	}
	again := h.predict(t, `{"symbol":"7203.T"}`)
	if !again.CacheHit || again.Probability != pr.Probability {
		t.Fatalf("second call %+v", again)
	}
	// The same features sent by the caller, as an object and as an array, get the same answer.
	obj, _ := json.Marshal(map[string]any{"symbol": "7203.T", "features": pr.FeaturesUsed})
	arr, _ := json.Marshal(map[string]any{"symbol": "7203.T", "features": last})
	for _, body := range []string{string(obj), string(arr)} {
		got := h.predict(t, body)
		if got.Probability != pr.Probability || got.CacheHit || got.AsOf != nil {
			t.Fatalf("caller's features: %+v, want probability %v", got, pr.Probability)
		}
	}
	// Asked twice about the same bar, the model's call is recorded once.
	f, err := h.tracker.Version(context.Background(), h.version)
	if err != nil || f.Recorded != 1 || f.Pending != 1 {
		t.Fatalf("tracker %+v %v", f, err)
	}
	pinned := h.predict(t, `{"symbol":"7203.T","model_version":"`+h.version+`"}`)
	if pinned.ModelVersion != h.version {
		t.Fatalf("pinned %+v", pinned)
	}
}

func TestBadInput(t *testing.T) {
	h := start(t, options{})
	names := features.Names()
	obj := func(mutate func(m map[string]any)) string {
		m := map[string]any{}
		for _, n := range names {
			m[n] = 0.01
		}
		mutate(m)
		b, _ := json.Marshal(map[string]any{"symbol": "7203.T", "features": m})
		return string(b)
	}
	zeros := "[" + strings.TrimSuffix(strings.Repeat("0,", len(names)), ",") + "]"
	cases := map[string]struct {
		body   string
		status int
		fields []string
	}{
		"NaN feature":     {obj(func(m map[string]any) { m["rsi14"] = "NaN" }), 400, []string{"features.rsi14"}},
		"null feature":    {obj(func(m map[string]any) { m["atr14"] = nil }), 400, []string{"features.atr14"}},
		"infinite":        {obj(func(m map[string]any) { m["ret_1"] = "Inf"; m["ret_5"] = "-Infinity" }), 400, []string{"features.ret_1", "features.ret_5"}},
		"missing feature": {obj(func(m map[string]any) { delete(m, "macd") }), 400, []string{"features.macd"}},
		"unknown feature": {obj(func(m map[string]any) { m["moon_phase"] = 1 }), 400, []string{"features.moon_phase"}},
		"short array":     {`{"symbol":"7203.T","features":[1,2,3]}`, 400, []string{"features"}},
		"NaN in array":    {`{"symbol":"7203.T","features":` + strings.Replace(zeros, "0", `"NaN"`, 1) + `}`, 400, []string{"features[0]"}},
		"features string": {`{"symbol":"7203.T","features":"all"}`, 400, []string{"features"}},
		"no symbol":       {`{"features":` + zeros + `}`, 400, []string{"symbol"}},
		"bad symbol":      {`{"symbol":"72 03"}`, 400, []string{"symbol"}},
		"unknown symbol":  {`{"symbol":"9999.T"}`, 404, []string{"symbol"}},
		// The caller's features do not make an unknown symbol known.
		"unknown symbol with features": {`{"symbol":"9999.T","features":` + zeros + `}`, 404, []string{"symbol"}},
		"unknown version":              {`{"symbol":"7203.T","model_version":"v404"}`, 404, []string{"model_version"}},
		"long version":                 {`{"symbol":"7203.T","model_version":"` + strings.Repeat("v", 99) + `"}`, 400, []string{"model_version"}},
		"unknown field":                {`{"symbol":"7203.T","horizon":3}`, 400, []string{"horizon"}},
		"not JSON":                     {`symbol=7203.T`, 400, nil},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			resp, b := h.post(t, tc.body)
			var p httpx.Problem
			if err := json.Unmarshal(b, &p); err != nil || resp.StatusCode != tc.status ||
				resp.Header.Get("Content-Type") != httpx.ProblemContentType {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			got := map[string]bool{}
			for _, f := range p.Errors {
				got[f.Field] = true
			}
			for _, f := range tc.fields {
				if !got[f] {
					t.Fatalf("errors %+v do not name %q", p.Errors, f)
				}
			}
		})
	}
}

// With the caller's features, the symbol must still be one the provider has (404 as on
// the bars path), but a provider that cannot say does not fail a prediction that needs no
// bars.
func TestFeaturesNeedAKnownSymbol(t *testing.T) {
	var down atomic.Bool
	csv, _ := market.New(market.ProviderCSV, market.Options{CSVDir: testdata})
	provider := market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		if down.Load() {
			return nil, market.ErrUnavailable
		}
		return csv.Bars(ctx, q)
	})
	h := start(t, options{provider: provider})
	zeros := "[" + strings.TrimSuffix(strings.Repeat("0,", len(features.Names())), ",") + "]"
	pr := h.predict(t, `{"symbol":"6758.T","features":`+zeros+`}`)
	if pr.Symbol != "6758.T" || pr.AsOf != nil || pr.ModelVersion != h.version {
		t.Fatalf("known symbol with features: %+v", pr)
	}
	if resp, b := h.post(t, `{"symbol":"9999.T","features":`+zeros+`}`); resp.StatusCode != 404 {
		t.Fatalf("unknown symbol with features: %d %s", resp.StatusCode, b)
	}
	down.Store(true)
	if pr := h.predict(t, `{"symbol":"8306.T","features":`+zeros+`}`); pr.Symbol != "8306.T" {
		t.Fatalf("provider down: %+v", pr)
	}
	// Nothing was recorded: features from the caller describe no bar to score.
	if f, err := h.tracker.Version(context.Background(), h.version); err != nil || f.Recorded != 0 {
		t.Fatalf("tracker %+v %v", f, err)
	}
}

// The ensemble down, or up without a model: 503 with Retry-After, never a made-up answer.
func TestEnsembleUnavailable(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	for name, o := range map[string]options{"nobody listening": {ensembleURL: dead}, "no model loaded": {noModel: true}} {
		t.Run(name, func(t *testing.T) {
			h := start(t, o)
			resp, b := h.post(t, `{"symbol":"7203.T"}`)
			var p httpx.Problem
			json.Unmarshal(b, &p)
			if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || p.Code != httpx.CodeUnavailable {
				t.Fatalf("%d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
			}
			if strings.Contains(string(b), "probability") {
				t.Fatal("a 503 carried a prediction")
			}
		})
	}
}

// A call made at bar k is scored when a later request sees bar k+1 final, and the
// accuracy gauge and latency histogram report it.
func TestPredictionsAreScored(t *testing.T) {
	full := csvBars(t, "7203.T")
	var visible atomic.Int64
	visible.Store(int64(len(full) - 10))
	provider := market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		if q.Symbol != "7203.T" {
			return nil, market.ErrUnknownSymbol
		}
		return full[:visible.Load()], nil
	})
	h := start(t, options{provider: provider})
	first := h.predict(t, `{"symbol":"7203.T"}`)
	visible.Add(3)
	if _, err := h.cache.Clear(context.Background(), "*"); err != nil {
		t.Fatal(err)
	}
	h.predict(t, `{"symbol":"7203.T"}`)
	f, _ := h.tracker.Version(context.Background(), h.version)
	if f.Recorded != 2 || f.Scored != 1 || f.Pending != 1 {
		t.Fatalf("tracker %+v", f)
	}
	k := len(full) - 11 // index of the first call's bar
	right := (full[k+1].Close > full[k].Close) == (first.Prediction == "up")
	if (f.Correct == 1) != right {
		t.Fatalf("scored correct=%d, but the call %s at %v was right=%v", f.Correct, first.Prediction, first.AsOf, right)
	}
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var gauge float64 = -1
	var count uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[float64]:
				if m.Name == "ml_prediction_accuracy" && len(d.DataPoints) == 1 {
					gauge = d.DataPoints[0].Value
				}
			case metricdata.Histogram[float64]:
				if m.Name == "ml_prediction_latency" {
					for _, dp := range d.DataPoints {
						count += dp.Count
					}
				}
			}
		}
	}
	if gauge != float64(f.Correct) || count != 2 {
		t.Fatalf("ml_prediction_accuracy %v (want %d), ml_prediction_latency count %d (want 2)", gauge, f.Correct, count)
	}
}

func TestFlatBand(t *testing.T) {
	s := server{flatBand: 0.01}
	for p, want := range map[float64]string{0.5: "flat", 0.505: "flat", 0.495: "flat", 0.52: "up", 0.48: "down"} {
		if got := s.call(p); got != want {
			t.Errorf("call(%v) = %s, want %s", p, got, want)
		}
	}
	if (server{}).call(0.5) != "up" {
		t.Error("without a band, 0.5 is up (ties go up, as in training)")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`{"symbol":"7203.T"}`, `{"symbol":"7203.T","features":[1,2]}`, `{"symbol":"x","features":{"ret_1":"NaN"}}`,
		`{"symbol":"7203.T","features":null,"model_version":"v1"}`, `{"features":{}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var req predictRequest
		if json.Unmarshal(b, &req) != nil {
			return
		}
		p, err := parse(req)
		if err == nil && p.features != nil && len(p.features) != len(features.Names()) {
			t.Fatalf("accepted %d features", len(p.features))
		}
		if err != nil && httpx.ErrorCode(err) != httpx.CodeInvalid {
			t.Fatalf("parse error with code %s", httpx.ErrorCode(err))
		}
	})
}
