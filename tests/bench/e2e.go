package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/knative/local"
	"github.com/day-trade/platform/shared/store"
)

// EndToEnd is one endpoint through the gateway of the local platform.
type EndToEnd struct {
	Name     string `json:"name"`
	Method   string `json:"method"`
	Path     string `json:"path"`
	Body     string `json:"body,omitempty"`
	Function string `json:"function"`
	Warm     *Run   `json:"warm,omitempty"`
	Cold     *Run   `json:"cold,omitempty"`
}

// Run is a set of answers: a fixed-rate run (warm) or requests each sent to a function
// scaled to zero (cold).
type Run struct {
	Rate     int          `json:"rate,omitempty"`
	Seconds  float64      `json:"seconds,omitempty"`
	Requests int          `json:"requests"`
	Success  float64      `json:"success_ratio"`
	Status   string       `json:"status_mix"`
	Latency  Distribution `json:"latency_ms"`
	P999     float64      `json:"p99_9_ms,omitempty"`
	// CacheHits is the share of 200 answers whose body says "cache_hit":true (the
	// function's own Redis cache; the gateway caches neither route).
	CacheHits float64 `json:"cache_hit_share"`
}

type endpoint struct {
	name, method, path, body, function string
}

var endpoints = []endpoint{
	{"predict", http.MethodPost, "/api/v1/ml/predict", `{"symbol":"7203.T"}`, "ml-predict"},
	{"stocks", http.MethodGet, "/api/v1/data/stocks/7203.T?period=1mo&interval=1d", "", "data-stocks"},
}

// e2eCatalog is what the end-to-end runs start: the whole catalog for a prediction (the
// ensemble, the market data it reads), the gateway and data-stocks alone for quotes.
func e2eCatalog(o options) []functions.Function {
	if slices.Contains(strings.Split(o.e2eOnly, ","), "predict") {
		return functions.Catalog()
	}
	var fs []functions.Function
	for _, name := range []string{"gateway", "data-stocks"} {
		if f, ok := functions.Lookup(name); ok {
			fs = append(fs, f)
		}
	}
	return fs
}

// e2eIdle is the platform's idle window in this section: short, so that "cold" is a real
// scale to zero by the platform's reaper; the warm runs send far more often than this.
const e2eIdle = 500 * time.Millisecond

func measureEndToEnd(ctx context.Context, o options, bin string) ([]EndToEnd, error) {
	redisPath, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, err
	}
	moduleDir, err := filepath.Abs(o.moduleDir)
	if err != nil {
		return nil, err
	}
	p, err := local.Start(ctx, local.Options{
		Functions: e2eCatalog(o), Dir: o.moduleDir, BinDir: bin, SkipBuild: true, RedisServerPath: redisPath,
		IdleWindow: e2eIdle, StopTimeout: 5 * time.Second,
		Env: append(os.Environ(), "LOG_LEVEL=error", "DATA_PROVIDER=csv", "DATA_CSV_DIR="+filepath.Join(moduleDir, "shared", "ml", "testdata"),
			"ML_REGISTRY_POLL=200ms", "RATE_LIMIT=100000", "RATE_LIMIT_BURST=100000"),
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Output: io.Discard,
	})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	key, err := devKey(ctx, p.RedisURL())
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 30 * time.Second}
	var out []EndToEnd
	for _, ep := range endpoints {
		if !slices.Contains(strings.Split(o.e2eOnly, ","), ep.name) {
			continue
		}
		e := EndToEnd{Name: ep.name, Method: ep.method, Path: ep.path, Body: ep.body, Function: ep.function}
		// Until the first 200: the ensemble trains its bootstrap model on a fresh platform.
		if err := until200(ctx, client, p.GatewayURL(), key, ep); err != nil {
			return nil, err
		}
		o.logf("  %s warm: %d/s for %s", ep.name, o.e2eRate, o.e2eDuration)
		e.Warm = warmRun(ctx, p.GatewayURL(), key, ep, o.e2eRate, o.e2eDuration)
		o.logf("  %s cold: %d requests, each after %s scaled to zero", ep.name, o.e2eCold, ep.function)
		if e.Cold, err = coldRun(ctx, p, client, key, ep, o.e2eCold); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, nil
}

func devKey(ctx context.Context, redisURL string) (string, error) {
	rdb, err := store.Open(redisURL)
	if err != nil {
		return "", err
	}
	defer rdb.Close()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if key, err := rdb.Get(ctx, gateway.DevKeyRedisKey).Result(); err == nil && key != "" {
			return key, nil
		}
	}
	return "", errors.New("the gateway never created its development key")
}

func (ep endpoint) request(ctx context.Context, base, key string) *http.Request {
	req, _ := http.NewRequestWithContext(ctx, ep.method, base+ep.path, strings.NewReader(ep.body))
	req.Header.Set("Authorization", "Bearer "+key)
	if ep.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

func until200(ctx context.Context, client *http.Client, base, key string, ep endpoint) error {
	var last string
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := client.Do(ep.request(ctx, base, key))
		if err != nil {
			last = err.Error()
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return nil
		}
		last = strconv.Itoa(resp.StatusCode) + " " + string(b)
	}
	return fmt.Errorf("%s %s never answered 200: %s", ep.method, ep.path, last)
}

func warmRun(ctx context.Context, base, key string, ep endpoint, rate int, d time.Duration) *Run {
	tr := vegeta.NewStaticTargeter(vegeta.Target{Method: ep.method, URL: base + ep.path, Body: []byte(ep.body),
		Header: http.Header{"Authorization": {"Bearer " + key}, "Content-Type": {"application/json"}}})
	attacker := func() *vegeta.Attacker {
		return vegeta.NewAttacker(vegeta.Timeout(10*time.Second), vegeta.KeepAlive(true), vegeta.Workers(16), vegeta.MaxWorkers(1024))
	}
	// A short warm-up at the same rate: connections open, the function's caches filled.
	for range attacker().Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, min(d, 2*time.Second), "warm-up") {
	}
	atk := attacker()
	var lat []float64
	codes := map[int]int{}
	ok, hits := 0, 0
	results := atk.Attack(tr, vegeta.Rate{Freq: rate, Per: time.Second}, d, ep.name)
	for {
		select {
		case r, more := <-results:
			if !more {
				return summariseRun(lat, codes, ok, hits, rate, d)
			}
			lat = append(lat, ms(r.Latency))
			codes[int(r.Code)]++
			if r.Code == http.StatusOK && r.Error == "" {
				ok++
				if bytes.Contains(r.Body, []byte(`"cache_hit":true`)) {
					hits++
				}
			}
		case <-ctx.Done():
			atk.Stop()
		}
	}
}

// coldRun sends n requests, each once the platform has scaled the function to zero, and
// checks that each started a process.
func coldRun(ctx context.Context, p *local.Platform, client *http.Client, key string, ep endpoint, n int) (*Run, error) {
	var lat []float64
	codes := map[int]int{}
	ok, hits := 0, 0
	for i := 0; i < n; i++ {
		for deadline := time.Now().Add(30 * time.Second); p.Running(ep.function); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) || ctx.Err() != nil {
				return nil, fmt.Errorf("%s never scaled to zero", ep.function)
			}
		}
		n0 := len(p.ColdStarts(ep.function))
		t0 := time.Now()
		resp, err := client.Do(ep.request(ctx, p.GatewayURL(), key))
		if err != nil {
			return nil, err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat = append(lat, ms(time.Since(t0)))
		codes[resp.StatusCode]++
		if resp.StatusCode == http.StatusOK {
			ok++
			if bytes.Contains(b, []byte(`"cache_hit":true`)) {
				hits++
			}
		}
		if got := len(p.ColdStarts(ep.function)); got != n0+1 {
			return nil, fmt.Errorf("cold %s: the request started %d processes of %s, want 1", ep.name, got-n0, ep.function)
		}
	}
	return summariseRun(lat, codes, ok, hits, 0, 0), nil
}

func summariseRun(lat []float64, codes map[int]int, ok, hits, rate int, d time.Duration) *Run {
	r := &Run{Rate: rate, Seconds: d.Seconds(), Requests: len(lat), Latency: summarise(lat, rate == 0)}
	if len(lat) > 0 {
		r.Success = float64(ok) / float64(len(lat))
		s := slices.Clone(lat)
		slices.Sort(s)
		r.P999 = quantile(s, 0.999)
	}
	if ok > 0 {
		r.CacheHits = math.Round(1000*float64(hits)/float64(ok)) / 1000
	}
	keys := make([]int, 0, len(codes))
	for c := range codes {
		keys = append(keys, c)
	}
	slices.Sort(keys)
	var parts []string
	for _, c := range keys {
		name := strconv.Itoa(c)
		if c == 0 {
			name = "error"
		}
		parts = append(parts, fmt.Sprintf("%s×%d", name, codes[c]))
	}
	r.Status = strings.Join(parts, " ")
	return r
}
