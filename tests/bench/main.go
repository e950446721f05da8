// Command bench is `make bench`: one reproducible run that measures the platform on this
// machine and writes docs/benchmarks.md, a JSON twin and docs/cold-start.svg:
//
//   - the gateway against named baselines in the same run (tests/gatewaybench, run as a
//     child: full chain vs bare httputil.ReverseProxy vs nginx vs Caddy, wrk at saturation,
//     vegeta at fixed rates, CPU per 1,000 requests, Redis kill, JWKS flood);
//   - the cold start of every catalog function under the local platform (process start to
//     the first 200 from /health/liveness), its binary size and idle RSS;
//   - POST /api/v1/ml/predict and GET /api/v1/data/stocks/{symbol} end to end through the
//     gateway, warm (fixed rate) and cold (the function scaled to zero first);
//   - the ensemble's inference and training Go benchmarks, -count 6, summarised by benchstat.
//
// Fixed-rate load comes from vegeta used as a library (open model: requests leave on
// schedule whatever earlier answers do, so there is no coordinated omission); saturation
// throughput from wrk (closed loop, said so where it is reported).
//
//	go run ./tests/bench -out docs/benchmarks.md
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

type options struct {
	out       string // Markdown report; the JSON and the SVG go beside it
	moduleDir string
	sections  string // comma-separated subset of gateway,cold,e2e,gobench

	gatewayOut  string // gatewaybench's own report
	gatewayArgs string // extra flags for gatewaybench (durations, rounds, rates)

	functions string // comma-separated subset of the catalog for the cold starts
	coldRuns  int

	e2eRate     int
	e2eDuration time.Duration
	e2eCold     int
	e2eOnly     string // comma-separated subset of predict,stocks

	benchRegexp string
	benchPkgs   string
	benchCount  int
	benchTime   string
	benchstat   string // "go run" argument for benchstat; "" computes the summary alone

	log io.Writer
}

// benchstatModule is golang.org/x/perf's newest version on the module proxy this repository
// uses (`go list -m golang.org/x/perf@latest`); `go run mod@version` keeps it out of go.mod.
const benchstatModule = "golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da"

func defaultOptions() options {
	return options{
		out: "", moduleDir: ".", sections: "gateway,cold,e2e,gobench",
		gatewayOut: "docs/gateway-bench.md",
		// About 8 minutes of the suite's 15: wrk 8 s per server and round, vegeta 6 s per
		// target, rate and round after 1 s at the same rate, three rounds of each.
		gatewayArgs: "-d 8s -rounds 3 -rates 1000,2000,5000 -rate-duration 6s -rate-warmup 1s -rate-rounds 3",
		coldRuns:    20,
		e2eRate:     100, e2eDuration: 10 * time.Second, e2eCold: 20, e2eOnly: "predict,stocks",
		benchRegexp: "^(BenchmarkEnsemblePredictRow|BenchmarkEnsemblePredictBatch100|BenchmarkTrainEnsemble|BenchmarkPredictRow|BenchmarkPredictBatch)$",
		benchPkgs:   "./shared/ml,./functions/ensemble/inference",
		benchCount:  6, benchTime: "1s", benchstat: benchstatModule,
		log: os.Stderr,
	}
}

func main() {
	o := defaultOptions()
	flag.StringVar(&o.out, "out", o.out, "write the Markdown report here (and .json and cold-start.svg beside it); stdout when empty")
	flag.StringVar(&o.moduleDir, "C", o.moduleDir, "module root")
	flag.StringVar(&o.sections, "sections", o.sections, "comma-separated sections to run: gateway,cold,e2e,gobench")
	flag.StringVar(&o.gatewayOut, "gateway-out", o.gatewayOut, "where gatewaybench writes its full report (relative to -C)")
	flag.StringVar(&o.gatewayArgs, "gateway-args", o.gatewayArgs, "extra flags passed to tests/gatewaybench, space-separated")
	flag.StringVar(&o.functions, "functions", o.functions, "comma-separated functions for the cold starts; empty = the whole catalog")
	flag.IntVar(&o.coldRuns, "cold", o.coldRuns, "cold starts per function")
	flag.IntVar(&o.e2eRate, "e2e-rate", o.e2eRate, "requests/s of the warm end-to-end runs")
	flag.DurationVar(&o.e2eDuration, "e2e-duration", o.e2eDuration, "length of each warm end-to-end run")
	flag.IntVar(&o.e2eCold, "e2e-cold", o.e2eCold, "cold end-to-end requests per endpoint")
	flag.StringVar(&o.e2eOnly, "e2e", o.e2eOnly, "comma-separated end-to-end endpoints: predict,stocks")
	flag.StringVar(&o.benchRegexp, "bench", o.benchRegexp, "Go benchmarks to run (-bench regexp)")
	flag.StringVar(&o.benchPkgs, "bench-pkgs", o.benchPkgs, "comma-separated packages holding them")
	flag.IntVar(&o.benchCount, "count", o.benchCount, "go test -count for the Go benchmarks")
	flag.StringVar(&o.benchTime, "benchtime", o.benchTime, "go test -benchtime")
	flag.StringVar(&o.benchstat, "benchstat", o.benchstat, "benchstat to `go run` (empty: median and range computed here only)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func (o options) want(section string) bool {
	return slices.Contains(strings.Split(o.sections, ","), section)
}

func (o options) logf(format string, args ...any) {
	fmt.Fprintf(o.log, "bench: "+format+"\n", args...)
}

func run(ctx context.Context, o options, args []string) error {
	start := time.Now()
	// Children's stdout and stderr are copied by goroutines of their own: one lock for all.
	o.log = &syncWriter{w: o.log}
	rep := &Report{
		Date: start.UTC(), Commit: gitCommit(o.moduleDir), Machine: machine(), LoadAvgStart: loadAvg(),
		Command: strings.TrimSpace("go run ./tests/bench " + quoteArgs(args)),
	}
	busy0 := machineBusy()
	dir, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	fns, err := selectFunctions(o.functions)
	if err != nil {
		return err
	}
	if o.want("cold") || o.want("e2e") {
		o.logf("building %d binaries (release flags)", len(fns))
		if err := buildFunctions(ctx, o.moduleDir, dir, e2eFunctions(fns, o)); err != nil {
			return err
		}
	}
	if o.want("gateway") {
		o.logf("gateway: tests/gatewaybench")
		if rep.Gateway, err = runGateway(ctx, o, dir); err != nil {
			return fmt.Errorf("gateway: %w", err)
		}
	}
	if o.want("cold") {
		o.logf("cold starts: %d functions × %d", len(fns), o.coldRuns)
		if rep.ColdStarts, err = measureColdStarts(ctx, o, dir, fns); err != nil {
			return fmt.Errorf("cold starts: %w", err)
		}
	}
	if o.want("e2e") {
		o.logf("end to end through the gateway")
		if rep.EndToEnd, err = measureEndToEnd(ctx, o, dir); err != nil {
			return fmt.Errorf("end to end: %w", err)
		}
	}
	if o.want("gobench") {
		o.logf("Go benchmarks (-count %d)", o.benchCount)
		if rep.GoBench, err = runGoBenchmarks(ctx, o, dir); err != nil {
			return fmt.Errorf("go benchmarks: %w", err)
		}
	}
	rep.LoadAvgEnd = loadAvg()
	rep.Seconds = time.Since(start).Seconds()
	if capacity := time.Since(start).Seconds() * float64(numCPU()); capacity > 0 {
		rep.MachineBusy = (machineBusy() - busy0).Seconds() / capacity
	}
	rep.Targets = verdicts(rep)
	return write(o.out, rep)
}

// syncWriter serialises writes to w.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
