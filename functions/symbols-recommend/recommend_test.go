package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/symbols"
	"github.com/day-trade/platform/shared/symbols/symtest"
)

// fakeEnsemble speaks the ensemble's wire protocol: it checks the feature names and row
// widths as the real service does and answers P(up) from the one-day return feature, so the
// test can tell that the rows it built reached the model.
func fakeEnsemble(t *testing.T, calls *atomic.Int32) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		var req inference.PredictRequest
		if r.URL.Path != "/v1/predict" || json.NewDecoder(r.Body).Decode(&req) != nil || !slices.Equal(req.FeatureNames, features.Names()) {
			http.Error(w, "bad request", 400)
			return
		}
		resp := inference.PredictResponse{ModelVersion: "v7"}
		for _, row := range req.Rows {
			if len(row) != len(req.FeatureNames) {
				http.Error(w, "width", 400)
				return
			}
			p := 0.5 + 0.45*math.Tanh(50*float64(row[0]))
			c := inference.ClassDown
			if p > 0.5 {
				c = inference.ClassUp
			}
			resp.Predictions = append(resp.Predictions, inference.Prediction{Probability: p, Class: c, Confidence: math.Max(p, 1-p)})
		}
		json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func newHandler(t *testing.T, ensembleURL string) http.Handler {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	src := symbols.FromCache(marketcache.New(rdb, store.NewKeys("sym"), symtest.Walk(), "test"))
	return newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), deps{
		universe: symbols.Starter(), loader: symbols.NewLoader(src, symbols.LoaderOptions{}), bars: src,
		ensemble: inference.NewClient(ensembleURL, nil, 5*time.Second), concurrency: 8,
	})
}

func get(h http.Handler, target string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	return w
}

func TestRecommendCombinesScoresAndPredictions(t *testing.T) {
	var calls atomic.Int32
	h := newHandler(t, fakeEnsemble(t, &calls).URL)
	w := get(h, "/api/v1/symbols/recommend?count=5")
	if w.Code != 200 {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var resp recommendResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	md := resp.Metadata
	if calls.Load() != 1 || md.ModelVersion != "v7" || md.Candidates != 20 || md.Predicted != 20 || md.PredictedUp == 0 {
		t.Fatalf("calls %d, metadata %+v", calls.Load(), md)
	}
	if n := len(resp.Recommendations); n != min(5, md.PredictedUp) {
		t.Fatalf("%d recommendations of %d up calls", n, md.PredictedUp)
	}
	for i, r := range resp.Recommendations {
		want := 0.5*r.SelectionScore.Total + 0.5*(2*r.Prediction.Confidence-1)
		if r.Prediction.Class != "up" || math.Abs(r.CombinedScore-want) > 1e-12 || r.Symbol.Ticker != r.SelectionScore.Symbol || r.AsOf.IsZero() {
			t.Errorf("%d: %+v", i, r)
		}
		if i > 0 && r.CombinedScore > resp.Recommendations[i-1].CombinedScore {
			t.Error("not ranked by combined score")
		}
	}
}

func TestRecommendWithoutEnsembleIs503NotAGuess(t *testing.T) {
	var calls atomic.Int32
	down := fakeEnsemble(t, &calls)
	down.Close() // connection refused
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	defer failing.Close()
	for name, tc := range map[string]struct{ url, retry string }{
		"refused":    {down.URL, "1"},
		"503 answer": {failing.URL, "7"},
	} {
		t.Run(name, func(t *testing.T) {
			w := get(newHandler(t, tc.url), "/api/v1/symbols/recommend?count=3")
			if w.Code != 503 || w.Header().Get("Retry-After") != tc.retry || w.Header().Get("Content-Type") != httpx.ProblemContentType {
				t.Fatalf("%d %v %s", w.Code, w.Header(), w.Body)
			}
		})
	}
}

func TestRecommendBadQuery(t *testing.T) {
	h := newHandler(t, "http://127.0.0.1:1")
	for target, field := range map[string]string{
		"?count=0":       "count",
		"?count=51":      "count",
		"?count=x":       "count",
		"?criteria=yolo": "criteria",
		"?lookback=10y":  "lookback",
		"?cuont=3":       "cuont",
	} {
		w := get(h, "/api/v1/symbols/recommend"+target)
		var p httpx.Problem
		json.Unmarshal(w.Body.Bytes(), &p)
		if w.Code != 400 || len(p.Errors) == 0 || p.Errors[0].Field != field {
			t.Errorf("%s: %d %+v", target, w.Code, p)
		}
	}
}
