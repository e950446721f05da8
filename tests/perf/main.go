// Command perf measures the platform on this machine and writes a Markdown report: the
// cold start of a function under the local platform (process start to live, and the client's
// first answer through the gateway), the function's binary size and idle RSS, and latency at
// a fixed request rate through the gateway against a baseline measured in the same run (the
// same function reached through the activator alone, without the gateway hop).
//
// Load comes from vegeta used as a library: an open-model attacker that sends at the fixed
// rate whether or not earlier answers have come back, so a slow answer cannot hold back the
// next request (no coordinated omission).
//
//	go run ./tests/perf -out docs/benchmarks.md
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/knative/local"
)

type options struct {
	out       string
	coldRuns  int
	rate      int
	duration  time.Duration
	function  string
	path      string
	moduleDir string
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "write the Markdown report here (and a .json beside it); stdout when empty")
	flag.IntVar(&o.coldRuns, "cold", 20, "cold starts to measure")
	flag.IntVar(&o.rate, "rate", 500, "requests per second for the latency run")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of each latency run")
	flag.StringVar(&o.function, "function", "data-stocks", "function to measure")
	flag.StringVar(&o.path, "path", "/api/v1/data/stocks/7203.T?period=1mo&interval=1d", "request path (a route of -function)")
	flag.StringVar(&o.moduleDir, "C", ".", "module root")
	flag.Parse()
	if err := run(context.Background(), o); err != nil {
		fmt.Fprintln(os.Stderr, "perf:", err)
		os.Exit(1)
	}
}

// Report is what one run measured.
type Report struct {
	Date        time.Time       `json:"date"`
	Commit      string          `json:"commit"`
	Machine     string          `json:"machine"`
	Command     string          `json:"command"`
	Function    string          `json:"function"`
	BinaryBytes int64           `json:"binary_bytes"`
	IdleRSSKiB  int64           `json:"idle_rss_kib"`
	ColdStart   Distribution    `json:"cold_start_process_ms"`
	FirstAnswer Distribution    `json:"cold_first_answer_ms"`
	Latency     []LatencyResult `json:"latency"`
}

// Distribution summarises a sample in milliseconds.
type Distribution struct {
	N      int       `json:"n"`
	Median float64   `json:"median"`
	P95    float64   `json:"p95"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	All    []float64 `json:"all"`
}

// LatencyResult is one fixed-rate run.
type LatencyResult struct {
	Name       string  `json:"name"`
	Rate       int     `json:"rate"`
	Seconds    float64 `json:"seconds"`
	Requests   uint64  `json:"requests"`
	Success    float64 `json:"success_ratio"`
	Throughput float64 `json:"throughput"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	Max        float64 `json:"max_ms"`
}

func run(ctx context.Context, o options) error {
	bin, err := os.MkdirTemp("", "perf-bin-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	// The release build, as ko and the Lambda zips build it.
	args := []string{"build", "-trimpath", "-ldflags=-s -w", "-o", bin + "/"}
	for _, f := range functions.Catalog() {
		args = append(args, f.ImportPath())
	}
	build := exec.CommandContext(ctx, "go", args...)
	build.Dir, build.Stderr = o.moduleDir, os.Stderr
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := build.Run(); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	rep := Report{Date: time.Now().UTC(), Commit: gitCommit(o.moduleDir), Machine: machine(), Function: o.function,
		Command: "go run ./tests/perf " + strings.Join(os.Args[1:], " ")}
	if fi, err := os.Stat(filepath.Join(bin, o.function)); err == nil {
		rep.BinaryBytes = fi.Size()
	}
	if err := measureColdStarts(ctx, o, bin, &rep); err != nil {
		return err
	}
	if err := measureLatency(ctx, o, bin, &rep); err != nil {
		return err
	}
	return write(o.out, rep)
}

func startPlatform(ctx context.Context, o options, bin string, idle time.Duration) (*local.Platform, error) {
	redisPath, _ := exec.LookPath("redis-server")
	return local.Start(ctx, local.Options{
		Dir: o.moduleDir, BinDir: bin, SkipBuild: true, RedisServerPath: redisPath, IdleWindow: idle,
		Env:    append(os.Environ(), "LOG_LEVEL=error", "DATA_PROVIDER=synthetic"),
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Output: io.Discard,
	})
}

func measureColdStarts(ctx context.Context, o options, bin string, rep *Report) error {
	p, err := startPlatform(ctx, o, bin, 100*time.Millisecond)
	if err != nil {
		return err
	}
	defer p.Close()
	client := &http.Client{Timeout: 30 * time.Second}
	var first []float64
	for i := 0; i < o.coldRuns; i++ {
		if err := waitFor(func() bool { return !p.Running(o.function) }); err != nil {
			return fmt.Errorf("%s never scaled to zero: %w", o.function, err)
		}
		t0 := time.Now()
		resp, err := client.Get(p.GatewayURL() + o.path)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("cold request: status %d", resp.StatusCode)
		}
		first = append(first, ms(time.Since(t0)))
		if i == 0 {
			// Idle RSS: the instance that just answered one request, left alone for a moment.
			time.Sleep(50 * time.Millisecond)
			rep.IdleRSSKiB = rss(p.Pid(o.function))
		}
	}
	cs := p.ColdStarts(o.function)
	if len(cs) > o.coldRuns {
		cs = cs[len(cs)-o.coldRuns:]
	}
	var proc []float64
	for _, d := range cs {
		proc = append(proc, ms(d))
	}
	rep.ColdStart, rep.FirstAnswer = summarise(proc), summarise(first)
	return nil
}

func measureLatency(ctx context.Context, o options, bin string, rep *Report) error {
	p, err := startPlatform(ctx, o, bin, 10*time.Minute)
	if err != nil {
		return err
	}
	defer p.Close()
	host := o.function + ".day-trade.svc.cluster.local"
	// Warm the function and the cache: the runs measure the cached answer.
	for range 3 {
		resp, err := http.Get(p.GatewayURL() + o.path)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	runs := []struct {
		name   string
		target vegeta.Target
	}{
		{"baseline: activator → function (no gateway)", vegeta.Target{Method: "GET", URL: p.ActivatorURL() + o.path, Header: http.Header{"Host": {host}}}},
		{"gateway → activator → function", vegeta.Target{Method: "GET", URL: p.GatewayURL() + o.path}},
	}
	for _, r := range runs {
		atk := vegeta.NewAttacker(vegeta.Timeout(10*time.Second), vegeta.KeepAlive(true), vegeta.Workers(32), vegeta.MaxWorkers(2000))
		var m vegeta.Metrics
		for res := range atk.Attack(vegeta.NewStaticTargeter(r.target), vegeta.Rate{Freq: o.rate, Per: time.Second}, o.duration, r.name) {
			m.Add(res)
		}
		m.Close()
		rep.Latency = append(rep.Latency, LatencyResult{
			Name: r.name, Rate: o.rate, Seconds: o.duration.Seconds(), Requests: m.Requests, Success: m.Success,
			Throughput: m.Throughput, P50: ms(m.Latencies.P50), P90: ms(m.Latencies.P90), P99: ms(m.Latencies.P99), Max: ms(m.Latencies.Max),
		})
	}
	return nil
}

func write(out string, rep Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Platform measurements\n\nMeasured %s on %s, commit `%s`.\nReproduce with `%s`.\n\n",
		rep.Date.Format("2006-01-02 15:04 UTC"), rep.Machine, rep.Commit, rep.Command)
	fmt.Fprintf(&b, "## Cold start of `%s` under the local platform (%d runs)\n\n", rep.Function, rep.ColdStart.N)
	b.WriteString("| measure | median ms | p95 ms | min ms | max ms |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| process start → live | %.1f | %.1f | %.1f | %.1f |\n", rep.ColdStart.Median, rep.ColdStart.P95, rep.ColdStart.Min, rep.ColdStart.Max)
	fmt.Fprintf(&b, "| client's first answer through the gateway (start + request + synthetic fetch) | %.1f | %.1f | %.1f | %.1f |\n\n", rep.FirstAnswer.Median, rep.FirstAnswer.P95, rep.FirstAnswer.Min, rep.FirstAnswer.Max)
	fmt.Fprintf(&b, "Binary (`-trimpath -ldflags='-s -w'`, CGO off): %.1f MB. Idle RSS after one request: %.1f MB.\n\n",
		float64(rep.BinaryBytes)/1e6, float64(rep.IdleRSSKiB)/1024)
	b.WriteString("## Cached answer at a fixed rate (vegeta, open model)\n\n")
	b.WriteString("| path | rate/s | s | requests | success | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, l := range rep.Latency {
		fmt.Fprintf(&b, "| %s | %d | %.0f | %d | %.2f%% | %.2f | %.2f | %.2f | %.2f |\n", l.Name, l.Rate, l.Seconds, l.Requests, 100*l.Success, l.P50, l.P90, l.P99, l.Max)
	}
	if len(rep.Latency) == 2 && rep.Latency[0].P50 > 0 {
		fmt.Fprintf(&b, "\nThe gateway hop adds %.2f ms at p50 (%.2fx the baseline) and %.2f ms at p99.\n",
			rep.Latency[1].P50-rep.Latency[0].P50, rep.Latency[1].P50/rep.Latency[0].P50, rep.Latency[1].P99-rep.Latency[0].P99)
	}
	if out == "" {
		_, err := io.WriteString(os.Stdout, b.String())
		return err
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(b.String()), 0o644); err != nil {
		return err
	}
	j, _ := json.MarshalIndent(rep, "", "  ")
	return os.WriteFile(strings.TrimSuffix(out, filepath.Ext(out))+".json", append(j, '\n'), 0o644)
}

func summarise(xs []float64) Distribution {
	if len(xs) == 0 {
		return Distribution{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	q := func(p float64) float64 { return s[int(p*float64(len(s)-1)+0.5)] }
	return Distribution{N: len(s), Median: q(0.5), P95: q(0.95), Min: s[0], Max: s[len(s)-1], All: xs}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func waitFor(cond func() bool) error {
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

func rss(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kib int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kib)
			return kib
		}
	}
	return 0
}

func gitCommit(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d cores, %s/%s, %s", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())
}
