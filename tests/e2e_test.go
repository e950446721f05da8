// Package tests holds the end-to-end suites that span several functions: they build the real
// binaries, start the local platform (gateway, activator, functions on demand) against a real
// redis-server, and talk to it over HTTP only, as a client would.
package tests

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/knative/local"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/redistest"
)

// binDir holds the real binaries, built once for the whole package.
var binDir string

func TestMain(m *testing.M) {
	flag.Parse()
	code := func() int {
		if testing.Short() {
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := local.Build(ctx, "..", dir, functions.Catalog(), os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "build:", err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

type env struct {
	p     *local.Platform
	redis *redistest.Server
	http  *http.Client
	key   string // the development API key the gateway creates in local mode
}

// startPlatform runs the whole catalog on free ports against its own redis-server.
func startPlatform(t *testing.T, idle time.Duration) env {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: skipped in -short")
	}
	rs := redistest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	p, err := local.Start(ctx, local.Options{
		Dir: "..", BinDir: binDir, SkipBuild: true, RedisURL: rs.URL(), IdleWindow: idle,
		StopTimeout: 5 * time.Second,
		Env:         append(os.Environ(), "DATA_PROVIDER=synthetic", "LOG_LEVEL=warn"),
		Log:         slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Output:      testWriter{t},
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = p.Close() })
	// The client's timeout only guards against a hang; no test asserts a duration.
	e := env{p: p, redis: rs, http: &http.Client{Timeout: 20 * time.Second}}
	e.key = DevKey(t, e)
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func (e env) get(t *testing.T, path string, v any) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", e.p.GatewayURL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+e.key)
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("GET %s: %d %s: %v", path, resp.StatusCode, b, err)
		}
	}
	return resp
}

type stocks struct {
	Symbol     string `json:"symbol"`
	Period     string `json:"period"`
	Interval   string `json:"interval"`
	DataPoints []struct {
		Timestamp  time.Time          `json:"timestamp"`
		Open       float64            `json:"open"`
		High       float64            `json:"high"`
		Low        float64            `json:"low"`
		Close      float64            `json:"close"`
		Volume     float64            `json:"volume"`
		AdjClose   float64            `json:"adjusted_close"`
		Indicators map[string]float64 `json:"indicators"`
	} `json:"data_points"`
	TotalPoints int       `json:"total_points"`
	CacheHit    bool      `json:"cache_hit"`
	FetchedAt   time.Time `json:"fetched_at"`
}

func TestStocksThroughGatewayFromAColdFunction(t *testing.T) {
	e := startPlatform(t, time.Minute)
	if e.p.Running("data-stocks") {
		t.Fatal("data-stocks runs before its first request; it should scale from zero")
	}
	var s stocks
	resp := e.get(t, "/api/v1/data/stocks/7203.T?period=1mo&interval=1d", &s)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if s.Symbol != "7203.T" || s.Period != "1mo" || s.Interval != "1d" || s.CacheHit || s.FetchedAt.IsZero() {
		t.Fatalf("body %+v", s)
	}
	// A month of TSE business days.
	if s.TotalPoints < 15 || s.TotalPoints > 23 || len(s.DataPoints) != s.TotalPoints {
		t.Fatalf("%d points (%d listed)", s.TotalPoints, len(s.DataPoints))
	}
	for _, b := range s.DataPoints {
		if b.Low <= 0 || b.Low > b.Open || b.Low > b.Close || b.High < b.Open || b.High < b.Close || b.Volume <= 0 || b.AdjClose <= 0 {
			t.Fatalf("bad bar %+v", b)
		}
	}
	if resp.Header.Get(httpx.RequestIDHeader) == "" {
		t.Error("no request id on the answer")
	}
	if n := len(e.p.ColdStarts("data-stocks")); n != 1 {
		t.Fatalf("%d cold starts recorded, want 1", n)
	}
	var again stocks
	e.get(t, "/api/v1/data/stocks/7203.T?period=1mo&interval=1d", &again)
	if !again.CacheHit || again.TotalPoints != s.TotalPoints || again.DataPoints[0].Close != s.DataPoints[0].Close {
		t.Fatalf("second call: cache_hit=%v points=%d", again.CacheHit, again.TotalPoints)
	}
	// data-cache sees what data-stocks cached: same Redis, same key space.
	var stats struct {
		Entries int64   `json:"entries"`
		HitRate float64 `json:"hit_rate"`
	}
	if r := e.get(t, "/api/v1/data/cache", &stats); r.StatusCode != 200 || stats.Entries != 1 || stats.HitRate != 0.5 {
		t.Fatalf("cache stats %d %+v", r.StatusCode, stats)
	}
	// Unknown routes are problems from the gateway itself.
	var p httpx.Problem
	if r := e.get(t, "/api/v1/nope", &p); r.StatusCode != 404 || p.Status != 404 {
		t.Fatalf("unknown route: %d %+v", r.StatusCode, p)
	}
	var bad httpx.Problem
	if r := e.get(t, "/api/v1/data/stocks/7203.T?period=7y", &bad); r.StatusCode != 400 || len(bad.Errors) == 0 {
		t.Fatalf("bad period: %d %+v", r.StatusCode, bad)
	}
}

func TestIdleFunctionStopsAndRestarts(t *testing.T) {
	e := startPlatform(t, 300*time.Millisecond)
	if r := e.get(t, "/api/v1/data/stocks/6758.T", nil); r.StatusCode != 200 {
		t.Fatalf("status %d", r.StatusCode)
	}
	waitFor(t, "data-stocks scaled to zero", func() bool { return !e.p.Running("data-stocks") })
	if r := e.get(t, "/api/v1/data/stocks/6758.T", nil); r.StatusCode != 200 {
		t.Fatalf("after scale to zero: status %d", r.StatusCode)
	}
	if n := len(e.p.ColdStarts("data-stocks")); n != 2 {
		t.Fatalf("%d cold starts, want 2", n)
	}
}

func TestRedisDownFailsReadinessAndAnswers503(t *testing.T) {
	e := startPlatform(t, time.Minute)
	if r := e.get(t, "/api/v1/data/stocks/8306.T", nil); r.StatusCode != 200 {
		t.Fatalf("status %d", r.StatusCode)
	}
	e.redis.Kill()

	// Readiness, asked the way Knative's probe would: straight at the function.
	req, _ := http.NewRequest("GET", e.p.ActivatorURL()+"/health/readiness", nil)
	req.Host = "data-stocks.day-trade.svc.cluster.local"
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "redis") {
		t.Fatalf("readiness with Redis down: %d %s", resp.StatusCode, body)
	}

	var p httpx.Problem
	r := e.get(t, "/api/v1/data/stocks/8306.T", &p)
	if r.StatusCode != 503 || r.Header.Get("Content-Type") != httpx.ProblemContentType || r.Header.Get("Retry-After") == "" {
		t.Fatalf("with Redis down: %d %s %+v", r.StatusCode, r.Header.Get("Content-Type"), p)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
