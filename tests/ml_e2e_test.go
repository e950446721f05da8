package tests

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/knative/local"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// startMLPlatform is startPlatform with the real TSE daily files as the market (so an
// unknown symbol is really unknown) and a fast registry poll. The ensemble starts with an
// empty registry and, in local mode, trains and promotes its bootstrap model.
func startMLPlatform(t *testing.T) env {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short")
	}
	csvDir, err := filepath.Abs(filepath.Join("..", "shared", "ml", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	rs := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := local.Start(ctx, local.Options{
		Dir: "..", BinDir: binDir, SkipBuild: true, RedisURL: rs.URL(), IdleWindow: time.Minute,
		StopTimeout: 5 * time.Second,
		Env: append(os.Environ(), "DATA_PROVIDER=csv", "DATA_CSV_DIR="+csvDir, "ML_REGISTRY_POLL=200ms",
			"LOG_LEVEL=info"),
		Log:    slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Output: testWriter{t},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = p.Close() })
	return env{p: p, redis: rs, http: &http.Client{Timeout: 20 * time.Second}}
}

type mlPrediction struct {
	Symbol       string             `json:"symbol"`
	Prediction   string             `json:"prediction"`
	Probability  float64            `json:"probability"`
	Confidence   float64            `json:"confidence"`
	ModelVersion string             `json:"model_version"`
	FeaturesUsed map[string]float64 `json:"features_used"`
	CacheHit     bool               `json:"cache_hit"`
	AsOf         time.Time          `json:"as_of"`
	PredictedAt  time.Time          `json:"predicted_at"`
}

// predictUntil200 polls POST /api/v1/ml/predict until it answers 200. Every answer before
// that must be a 503 problem with Retry-After: the ensemble not ready is never a guess.
func predictUntil200(t *testing.T, e env, key, body string) mlPrediction {
	t.Helper()
	var pr mlPrediction
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, b := e.call(t, "POST", "/api/v1/ml/predict", key, body)
		if resp.StatusCode == 200 {
			if err := json.Unmarshal(b, &pr); err != nil {
				t.Fatal(err)
			}
			return pr
		}
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != httpx.ProblemContentType {
			t.Fatalf("while the ensemble gets ready: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
		if time.Now().After(deadline) {
			t.Fatalf("ml-predict still answers 503: %s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestMLPredictThroughTheGateway(t *testing.T) {
	e := startMLPlatform(t)
	if !e.p.Running("ensemble") {
		t.Fatal("the ensemble is not running: it is an always-warm service")
	}
	key := DevKey(t, e)

	// 1. Zero setup: the ensemble bootstraps a model, then the prediction is real.
	pr := predictUntil200(t, e, key, `{"symbol":"7203.T"}`)
	if pr.Symbol != "7203.T" || pr.ModelVersion != "v1" || (pr.Prediction != "up" && pr.Prediction != "down") ||
		pr.Probability <= 0 || pr.Probability >= 1 || len(pr.FeaturesUsed) < 20 || pr.PredictedAt.IsZero() {
		t.Fatalf("prediction %+v", pr)
	}
	if want := time.Date(2019, 12, 30, 0, 0, 0, 0, time.FixedZone("JST", 9*3600)); !pr.AsOf.Equal(want) {
		t.Fatalf("as_of %v, want the last bar of 7203.T.csv (%v)", pr.AsOf, want)
	}
	resp, b := e.call(t, "GET", "/api/v1/ml/models", key, "")
	var models struct {
		Promoted string `json:"promoted"`
		Versions []struct {
			Version     string          `json:"version"`
			Note        string          `json:"note"`
			WalkForward json.RawMessage `json:"walk_forward"`
			Realised    struct {
				Recorded int `json:"recorded"`
			} `json:"realised"`
		} `json:"versions"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(b, &models) != nil || models.Promoted != "v1" || len(models.Versions) != 1 ||
		!strings.Contains(models.Versions[0].Note, "bootstrap") || string(models.Versions[0].WalkForward) == "null" ||
		models.Versions[0].Realised.Recorded != 1 {
		t.Fatalf("models: %d %s", resp.StatusCode, b)
	}

	// 2. Bad input: a clear 4xx naming what is wrong.
	feats, _ := json.Marshal(pr.FeaturesUsed)
	nan := strings.Replace(string(feats), `"rsi14":`, `"rsi14":"NaN","was":`, 1)
	cases := map[string]struct {
		body   string
		status int
		field  string
	}{
		"NaN feature":     {`{"symbol":"7203.T","features":` + nan + `}`, 400, "features.rsi14"},
		"unknown symbol":  {`{"symbol":"9999.T"}`, 404, "symbol"},
		"unknown version": {`{"symbol":"7203.T","model_version":"v999"}`, 404, "model_version"},
	}
	for name, tc := range cases {
		resp, b := e.call(t, "POST", "/api/v1/ml/predict", key, tc.body)
		var p httpx.Problem
		if json.Unmarshal(b, &p) != nil || resp.StatusCode != tc.status ||
			!slices.ContainsFunc(p.Errors, func(f httpx.FieldError) bool { return f.Field == tc.field }) {
			t.Fatalf("%s: %d %s, want %d naming %q", name, resp.StatusCode, b, tc.status, tc.field)
		}
	}

	// Warm latency through the gateway, for the record (not asserted: no wall-clock tests).
	var lat []time.Duration
	for range 200 {
		start := time.Now()
		if resp, b := e.call(t, "POST", "/api/v1/ml/predict", key, `{"symbol":"7203.T"}`); resp.StatusCode != 200 {
			t.Fatalf("warm: %d %s", resp.StatusCode, b)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	t.Logf("warm POST /api/v1/ml/predict through the gateway: p50 %v p95 %v p99 %v (n=%d)",
		lat[len(lat)/2], lat[len(lat)*95/100], lat[len(lat)*99/100], len(lat))

	// 3. The ensemble goes down and cannot come back with a usable model: its promoted
	// artifact is damaged in Redis (so the restarted process, which must verify the hash,
	// stays unready) and the process is killed. Whether ml-predict's call finds the process
	// restarting or restarted, the answer is the same: 503 with Retry-After, no prediction.
	rdb, err := store.Open(e.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx := context.Background()
	good, err := rdb.Get(ctx, "ml:registry:artifact:v1").Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if err := rdb.Set(ctx, "ml:registry:artifact:v1", strings.Replace(string(good), `"bias":`, `"bias":1+`, 1)+" ", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := e.p.Kill("ensemble"); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		resp, b := e.call(t, "POST", "/api/v1/ml/predict", key, `{"symbol":"7203.T"}`)
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || strings.Contains(string(b), "probability") {
			t.Fatalf("ensemble down: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
		}
	}
	// Knative's readiness probe sees why.
	req, _ := http.NewRequest("GET", e.p.ActivatorURL()+"/health/readiness", nil)
	req.Host = "ensemble.day-trade.svc.cluster.local"
	if resp, err := e.http.Do(req); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(body), "model") {
			t.Fatalf("ensemble readiness with a damaged model: %d %s", resp.StatusCode, body)
		}
	}

	// 4. The artifact is repaired: the ensemble's poll loads it and predictions resume.
	if err := rdb.Set(ctx, "ml:registry:artifact:v1", good, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if again := predictUntil200(t, e, key, `{"symbol":"7203.T"}`); again.ModelVersion != "v1" || again.Probability != pr.Probability {
		t.Fatalf("after recovery %+v, want v1's answer %v", again, pr.Probability)
	}
}
