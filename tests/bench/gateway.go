package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// GatewayResult is the part of tests/gatewaybench's JSON report this report quotes; the full
// report (every run, the Redis kill, the JWKS flood) stays in its own file.
type GatewayResult struct {
	Report     string `json:"report"` // path of gatewaybench's Markdown, relative to the module
	Command    string `json:"command"`
	Throughput *struct {
		Command string `json:"command"`
		Rounds  int    `json:"rounds"`
		Targets []struct {
			Name       string  `json:"name"`
			Skipped    string  `json:"skipped,omitempty"`
			RPS        float64 `json:"median_requests_per_s"`
			Ratio      float64 `json:"ratio_vs_bare"`
			P50ms      float64 `json:"median_p50_ms"`
			P95ms      float64 `json:"median_p95_ms"`
			P99ms      float64 `json:"median_p99_ms"`
			P999ms     float64 `json:"median_p99_9_ms"`
			CPUPer1k   float64 `json:"median_cpu_ms_per_1000_requests"`
			Errors     int64   `json:"non_2xx_and_socket_errors"`
			Background float64 `json:"median_background_cpu_share"`
		} `json:"targets"`
		Ratio       float64   `json:"gateway_over_bare"`
		RoundRatios []float64 `json:"round_ratios"`
	} `json:"throughput,omitempty"`
	Latency *struct {
		AddedP99       map[string]float64   `json:"added_p99_ms"`
		AddedP99Rounds map[string][]float64 `json:"added_p99_ms_per_round"`
		Summary        []struct {
			Rate      int     `json:"rate"`
			Target    string  `json:"target"`
			Rounds    int     `json:"rounds"`
			Success   float64 `json:"min_success_ratio"`
			P50ms     float64 `json:"median_p50_ms"`
			P95ms     float64 `json:"median_p95_ms"`
			P99ms     float64 `json:"median_p99_ms"`
			P999ms    float64 `json:"median_p99_9_ms"`
			CPUPer1k  float64 `json:"median_cpu_ms_per_1000_requests"`
			AddedP99  float64 `json:"median_added_p99_ms"`
			P99VsBare float64 `json:"p99_vs_bare"`
		} `json:"summary"`
	} `json:"latency,omitempty"`
	RedisKill *struct {
		Rate        int     `json:"rate"`
		Requests    int     `json:"requests"`
		Status5xx   int     `json:"status_5xx"`
		RecoveredMs float64 `json:"recovered_after_redis_back_ms"`
		Zero5xx     bool    `json:"zero_5xx"`
		Under1s     bool    `json:"recovered_under_1s"`
	} `json:"redis_kill,omitempty"`
	JWKS *struct {
		Rate     int  `json:"rate"`
		Requests int  `json:"requests"`
		Fetches  int  `json:"fetches_during_flood"`
		Bound    int  `json:"bound"`
		Met      bool `json:"met"`
	} `json:"jwks,omitempty"`
}

// runGateway builds and runs tests/gatewaybench, which writes its own report, and reads back
// the numbers this report quotes.
func runGateway(ctx context.Context, o options, dir string) (*GatewayResult, error) {
	bin := filepath.Join(dir, "gatewaybench")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./tests/gatewaybench")
	build.Dir, build.Stderr = o.moduleDir, os.Stderr
	if err := build.Run(); err != nil {
		return nil, fmt.Errorf("build gatewaybench: %w", err)
	}
	out := o.gatewayOut
	if !filepath.IsAbs(out) {
		out = filepath.Join(o.moduleDir, out)
	}
	// Run from the module root with a relative -out, so that the command the gateway report
	// records is the one a reader can paste.
	args := append([]string{"-out", o.gatewayOut}, strings.Fields(o.gatewayArgs)...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = o.moduleDir, o.log, o.log
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("gatewaybench: %w", err)
	}
	b, err := os.ReadFile(strings.TrimSuffix(out, filepath.Ext(out)) + ".json")
	if err != nil {
		return nil, err
	}
	var g GatewayResult
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("gatewaybench's JSON: %w", err)
	}
	g.Report = o.gatewayOut
	return &g, nil
}
