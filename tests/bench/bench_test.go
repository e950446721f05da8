package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the whole suite with tiny durations, one function and 50 requests/s, so
// that `make test` notices when the harness rots. It asserts what the run produced (every
// section present, every request answered, the files well formed), never a duration.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("bench smoke: builds binaries and starts servers; skipped in -short")
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server not installed")
	}
	dir := t.TempDir()
	o := defaultOptions()
	o.moduleDir = filepath.Join("..", "..")
	o.out = filepath.Join(dir, "benchmarks.md")
	o.gatewayOut = filepath.Join(dir, "gateway-bench.md")
	o.gatewayArgs = "-only latency -rates 50 -rate-duration 1s -rate-warmup 0 -rate-rounds 1"
	if _, err := exec.LookPath("wrk"); err == nil {
		o.gatewayArgs = "-only throughput,latency -d 1s -warmup 0 -rounds 1 -rates 50 -rate-duration 1s -rate-warmup 0 -rate-rounds 1"
	}
	o.functions, o.coldRuns = "data-stocks", 3
	o.e2eOnly, o.e2eRate, o.e2eDuration, o.e2eCold = "stocks", 50, time.Second, 2
	o.benchRegexp, o.benchPkgs, o.benchCount, o.benchTime, o.benchstat = "^BenchmarkEnsemblePredictRow$", "./shared/ml", 2, "1x", ""
	var log bytes.Buffer
	o.log = &log
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := run(ctx, o, []string{"-smoke"}); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}

	var r Report
	b, err := os.ReadFile(filepath.Join(dir, "benchmarks.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Commit == "" || r.Machine == "" || r.LoadAvgStart == "" {
		t.Errorf("header: commit %q machine %q load %q", r.Commit, r.Machine, r.LoadAvgStart)
	}

	if r.Gateway == nil || r.Gateway.Latency == nil {
		t.Fatal("no gateway latency section")
	}
	seen := map[string]bool{}
	for _, s := range r.Gateway.Latency.Summary {
		seen[s.Target] = true
		if s.Rate != 50 || s.Success != 1 || s.P50ms <= 0 || s.P999ms < s.P99ms {
			t.Errorf("fixed-rate row %+v", s)
		}
	}
	for _, want := range []string{"direct to backend", "gateway, full chain", "bare httputil.ReverseProxy"} {
		if !seen[want] {
			t.Errorf("fixed-rate rows lack %q: %v", want, seen)
		}
	}
	if _, ok := r.Gateway.Latency.AddedP99["50"]; !ok {
		t.Errorf("no added p99 at 50/s: %v", r.Gateway.Latency.AddedP99)
	}
	if th := r.Gateway.Throughput; th != nil {
		for _, s := range th.Targets {
			if s.Skipped == "" && (s.RPS <= 0 || s.P999ms < s.P95ms || s.P95ms <= 0) {
				t.Errorf("saturation row %+v", s)
			}
		}
	}

	if len(r.ColdStarts) != 1 {
		t.Fatalf("cold starts %+v", r.ColdStarts)
	}
	c := r.ColdStarts[0]
	if c.Function != "data-stocks" || c.Error != "" || c.Process.N != 3 || c.Process.Median <= 0 || c.FirstAnswer.N != 3 ||
		c.BinaryBytes <= 0 || c.IdleRSSKiB <= 0 {
		t.Errorf("cold start %+v", c)
	}

	if len(r.EndToEnd) != 1 || r.EndToEnd[0].Warm == nil || r.EndToEnd[0].Cold == nil {
		t.Fatalf("end to end %+v", r.EndToEnd)
	}
	e := r.EndToEnd[0]
	if e.Warm.Requests != 50 || e.Warm.Success != 1 || e.Cold.Requests != 2 || e.Cold.Success != 1 {
		t.Errorf("end to end warm %+v cold %+v", e.Warm, e.Cold)
	}

	if r.GoBench == nil || len(r.GoBench.Results) == 0 {
		t.Fatal("no Go benchmark results")
	}
	if g := r.GoBench.Results[0]; g.Name != "BenchmarkEnsemblePredictRow" || g.Unit != "ns/op" || len(g.Values) != 2 || g.Median <= 0 {
		t.Errorf("Go benchmark %+v", g)
	}

	md, err := os.ReadFile(o.out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"## Gateway against named baselines", "## Cold start per function", "](cold-start.svg)", "## End to end through the gateway", "## Ensemble inference and training", "## Targets"} {
		if !bytes.Contains(md, []byte(want)) {
			t.Errorf("report lacks %q", want)
		}
	}
	svg, err := os.ReadFile(filepath.Join(dir, "cold-start.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(svg, new(struct{})); err != nil {
		t.Errorf("cold-start.svg is not XML: %v", err)
	}
	if n := strings.Count(string(svg), "<circle"); n != 3 {
		t.Errorf("cold-start.svg has %d dots, want one per cold start (3)", n)
	}
}
