// Command gatewaybench measures the API gateway against the numbers of issue 4 and writes a
// Markdown report with a JSON twin:
//
//   - throughput: wrk against a bare httputil.ReverseProxy, the gateway with its full chain
//     (API key, Redis rate limit that never trips, metrics, tracing sampled at 1% and exported
//     over OTLP, JSON access log), nginx proxy_pass and Caddy reverse_proxy, all in front of the
//     same backend, one server at a time, in rounds;
//   - added latency: vegeta at fixed rates (open model) straight to the backend and through
//     the gateway, p50/p95/p99/p99.9;
//   - CPU per 1,000 requests of each server process (/proc/<pid>/stat);
//   - redis-server killed for 10 s under load on a fail-open route: 5xx count and the time
//     until the limiter is back on Redis;
//   - a flood of JWTs with random unknown kids: JWKS fetches per cooldown.
//
// Every server is its own process (the backend and the bare proxy are this binary started
// again with -role), so their CPU can be read and they share nothing but the machine.
//
//	go run ./tests/gatewaybench -out docs/gateway-bench.md
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/store"
)

type options struct {
	out        string
	moduleDir  string
	threads    int
	conns      int
	duration   time.Duration
	warmup     time.Duration
	rounds     int
	rates      string
	rateFor    time.Duration
	rateWarm   time.Duration
	latRounds  int
	killRate   int
	killAfter  time.Duration
	killFor    time.Duration
	jwksRate   int
	jwksFor    time.Duration
	jwksCool   time.Duration
	only       string
	gwEnv      string
	gwVariants string
	targets    string
	role, addr string
	upstream   string
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "", "write the Markdown report here (and a .json beside it); stdout when empty")
	flag.StringVar(&o.moduleDir, "C", ".", "module root (the gateway is built from it)")
	flag.IntVar(&o.threads, "t", 2, "wrk threads")
	flag.IntVar(&o.conns, "c", 64, "wrk connections")
	flag.DurationVar(&o.duration, "d", 10*time.Second, "wrk duration per measured run")
	flag.DurationVar(&o.warmup, "warmup", 2*time.Second, "wrk warm-up before each measured run (not reported)")
	flag.IntVar(&o.rounds, "rounds", 3, "throughput rounds (each server once per round, order rotated)")
	flag.StringVar(&o.rates, "rates", "1000,2000,5000", "fixed rates (requests/s) for the latency runs")
	flag.DurationVar(&o.rateFor, "rate-duration", 10*time.Second, "length of each fixed-rate run")
	flag.DurationVar(&o.rateWarm, "rate-warmup", 2*time.Second, "warm-up at the same rate before each fixed-rate run (not reported)")
	flag.IntVar(&o.latRounds, "rate-rounds", 3, "fixed-rate rounds (every target once per round, order rotated)")
	flag.IntVar(&o.killRate, "kill-rate", 500, "requests/s during the Redis-kill scenario")
	flag.DurationVar(&o.killAfter, "kill-after", 5*time.Second, "load before redis-server is killed")
	flag.DurationVar(&o.killFor, "kill-for", 10*time.Second, "how long redis-server stays dead")
	flag.IntVar(&o.jwksRate, "jwks-rate", 1000, "requests/s of tokens with unknown kids")
	flag.DurationVar(&o.jwksFor, "jwks-duration", 10*time.Second, "length of the JWKS flood")
	flag.DurationVar(&o.jwksCool, "jwks-cooldown", 2*time.Second, "the gateway's JWKS_COOLDOWN during the flood")
	flag.StringVar(&o.only, "only", "", "comma-separated scenarios to run (throughput,latency,rediskill,jwks); empty = all")
	flag.StringVar(&o.gwEnv, "gateway-env", "", "comma-separated NAME=value pairs added to the gateway's environment (ablations, e.g. GOMAXPROCS=1)")
	flag.StringVar(&o.gwVariants, "gateway-variants", "", "semicolon-separated variants of the gateway to measure beside it, each comma-separated NAME=value pairs (e.g. 'GOMAXPROCS=1;GOGC=800')")
	flag.StringVar(&o.targets, "targets", "", "comma-separated name prefixes of the proxies to measure (bare,gateway,nginx,Caddy); empty = all")
	flag.StringVar(&o.role, "role", "", "internal: serve as backend or bare proxy")
	flag.StringVar(&o.addr, "addr", "", "internal: listen address for -role")
	flag.StringVar(&o.upstream, "upstream", "", "internal: backend address for -role bare")
	flag.Parse()
	if o.role != "" {
		if err := serveRole(o.role, o.addr, o.upstream); err != nil {
			fmt.Fprintln(os.Stderr, "gatewaybench:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "gatewaybench:", err)
		os.Exit(1)
	}
}

// Report is one run of the harness.
type Report struct {
	Date       time.Time         `json:"date"`
	Commit     string            `json:"commit"`
	Machine    string            `json:"machine"`
	Command    string            `json:"command"`
	Tools      map[string]string `json:"tools"`
	LoadAvg    [2]string         `json:"loadavg_start_end"`
	Minutes    float64           `json:"minutes"`
	Setup      []string          `json:"setup"`
	Throughput *Throughput       `json:"throughput,omitempty"`
	Latency    *Latency          `json:"latency,omitempty"`
	RedisKill  *RedisKill        `json:"redis_kill,omitempty"`
	JWKS       *JWKSFlood        `json:"jwks,omitempty"`
}

// Throughput is the wrk comparison.
type Throughput struct {
	Command string         `json:"command"`
	Rounds  int            `json:"rounds"`
	Targets []TargetResult `json:"targets"`
	// Ratio is the gateway's median requests/s over the bare proxy's.
	Ratio float64 `json:"gateway_over_bare"`
	// RoundRatios are the same ratio per round (both measured in that round).
	RoundRatios []float64 `json:"round_ratios"`
}

// TargetResult is one server's wrk runs.
type TargetResult struct {
	Name      string      `json:"name"`
	Skipped   string      `json:"skipped,omitempty"`
	Runs      []wrkResult `json:"runs,omitempty"`
	MedianRPS float64     `json:"median_requests_per_s"`
	Ratio     float64     `json:"ratio_vs_bare"`
	P50ms     float64     `json:"median_p50_ms"`
	P95ms     float64     `json:"median_p95_ms"`
	P99ms     float64     `json:"median_p99_ms"`
	P999ms    float64     `json:"median_p99_9_ms"`
	CPUPer1k  float64     `json:"median_cpu_ms_per_1000_requests"`
	Errors    int64       `json:"non_2xx_and_socket_errors"`
	// Background is the median share of the machine other processes used during the runs.
	Background float64 `json:"median_background_cpu_share"`
	// Tracing is what the backend saw of the gateway's sampling (gateway only).
	Tracing *backendStats `json:"tracing,omitempty"`
}

// Latency is the fixed-rate comparison.
type Latency struct {
	Runs []fixedRate `json:"runs"`
	// AddedP99 is gateway p99 minus direct p99 of the same round, per rate: the median over
	// the rounds, and each round's.
	AddedP99       map[int]float64   `json:"added_p99_ms"`
	AddedP99Rounds map[int][]float64 `json:"added_p99_ms_per_round"`
	// BareAddedP99 is the same for the bare ReverseProxy (median over the rounds): what any
	// Go proxy hop costs on this machine.
	BareAddedP99 map[int]float64 `json:"bare_proxy_added_p99_ms"`
	// Summary is one row per rate and target: medians over the rounds.
	Summary []rateSummary `json:"summary"`
}

// rateSummary is one target at one fixed rate, medians over the rounds.
type rateSummary struct {
	Rate     int     `json:"rate"`
	Target   string  `json:"target"`
	Rounds   int     `json:"rounds"`
	Success  float64 `json:"min_success_ratio"`
	P50ms    float64 `json:"median_p50_ms"`
	P95ms    float64 `json:"median_p95_ms"`
	P99ms    float64 `json:"median_p99_ms"`
	P999ms   float64 `json:"median_p99_9_ms"`
	CPUPer1k float64 `json:"median_cpu_ms_per_1000_requests,omitempty"`
	// AddedP99 is the median over the rounds of this target's p99 minus the direct run's.
	AddedP99 float64 `json:"median_added_p99_ms"`
	// P99VsBare is this target's median p99 over the bare proxy's.
	P99VsBare float64 `json:"p99_vs_bare"`
	// Inside is the median over the rounds of what the gateway's access log says.
	Inside *insideTimes `json:"gateway_access_log_medians,omitempty"`
}

// RedisKill is the outage scenario.
type RedisKill struct {
	Rate              int     `json:"rate"`
	Route             string  `json:"route"`
	Requests          int     `json:"requests"`
	OutageRequests    int     `json:"requests_during_outage"`
	Status5xx         int     `json:"status_5xx"`
	Problems5xx       string  `json:"problems_5xx,omitempty"`
	StatusMix         string  `json:"status_mix"`
	OutageStatusMix   string  `json:"outage_status_mix"`
	DegradedAfterMs   float64 `json:"degraded_logged_after_kill_ms"`
	RecoveredAfterMs  float64 `json:"recovered_after_redis_back_ms"`
	GaugeClearedMs    float64 `json:"gauge_cleared_after_redis_back_ms"`
	DegradedAllowed   float64 `json:"degraded_allow_decisions"`
	OutageP99ms       float64 `json:"outage_p99_ms"`
	RedisDownSeconds  float64 `json:"redis_down_s"`
	RecoveredLogLine  string  `json:"recovered_log_line,omitempty"`
	DegradedLogLine   string  `json:"degraded_log_line,omitempty"`
	RecoveredUnder1s  bool    `json:"recovered_under_1s"`
	ZeroLimiter5xx    bool    `json:"zero_5xx"`
	MaxOutageLatencyM float64 `json:"outage_max_ms"`
}

// JWKSFlood is the unknown-kid scenario.
type JWKSFlood struct {
	Rate        int       `json:"rate"`
	Seconds     float64   `json:"seconds"`
	Requests    int       `json:"requests"`
	CooldownS   float64   `json:"cooldown_s"`
	Fetches     int       `json:"fetches_during_flood"`
	Bound       int       `json:"bound"`
	MinGapS     float64   `json:"min_gap_between_fetches_s"`
	FetchOffset []float64 `json:"fetch_offsets_s"`
	StatusMix   string    `json:"status_mix"`
	P99ms       float64   `json:"p99_ms"`
	Met         bool      `json:"met"`
}

// env is what the scenarios share: the backend, Redis, the built gateway, a key.
type env struct {
	o       options
	dir     string
	self    string
	gwBin   string
	backend *proc
	redis   *redisServer
	key     string
	intKey  string
	path    string
	script  string // wrk Lua script printing the extra percentiles
}

const benchPath = "/api/v1/data/stocks/7203.T"

func run(ctx context.Context, o options) error {
	dir, err := os.MkdirTemp("", "gatewaybench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	e := &env{o: o, dir: dir, path: benchPath}
	if e.self, err = os.Executable(); err != nil {
		return err
	}
	e.script = filepath.Join(dir, "percentiles.lua")
	if err := os.WriteFile(e.script, []byte(percentileScript), 0o644); err != nil {
		return err
	}
	e.gwBin = filepath.Join(dir, "gateway")
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", e.gwBin, "./gateway/cmd/gateway")
	build.Dir, build.Stderr = o.moduleDir, os.Stderr
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := build.Run(); err != nil {
		return fmt.Errorf("build gateway: %w", err)
	}
	rep := Report{Date: time.Now().UTC(), Commit: gitCommit(o.moduleDir), Machine: machine(), Tools: tools(),
		Command: "go run ./tests/gatewaybench " + strings.Join(os.Args[1:], " ")}

	backendAddr, err := freeAddr()
	if err != nil {
		return err
	}
	if e.backend, err = startProc(ctx, dir, "backend", backendAddr, nil, httpReady("http://"+backendAddr+"/"), e.self,
		"-role", "backend", "-addr", backendAddr); err != nil {
		return err
	}
	defer e.backend.stop()
	if e.redis, err = startRedis(ctx, dir); err != nil {
		return err
	}
	defer func() { e.redis.p.stop() }()
	if err := e.createKey(ctx); err != nil {
		return err
	}
	e.intKey, _ = auth.GenerateInternalKey()
	rep.Setup = []string{
		fmt.Sprintf("Backend: a Go net/http server answering every path with a fixed %d-byte JSON body (also the OTLP/HTTP trace sink).", len(backendBody)),
		"Gateway: the release binary of ./gateway/cmd/gateway (built with -trimpath, CGO off), its own process, route `GET /api/v1/data/stocks/{symbol}` from the catalog (idempotent, so it fails open), API key in `X-API-Key` (created in Redis through shared/auth's KeyStore), rate limit 100000/s burst 100000 per key (never trips), LOG_LEVEL=info (one JSON access line per request to a file), OTEL_TRACES_SAMPLER=parentbased_traceidratio with OTEL_TRACES_SAMPLER_ARG=0.01 and spans exported over OTLP/HTTP to the backend, Prometheus metrics on, identity token minted for the function.",
		"Bare proxy: `httputil.NewSingleHostReverseProxy` with the gateway's own upstream transport (same keep-alive pool), its own process.",
		"nginx: `proxy_pass` to an upstream block with `keepalive 128` and HTTP/1.1 to the backend, `worker_processes auto`, access log to a file.",
		"Caddy: `reverse_proxy` to the backend, admin API and automatic HTTPS off, access log to a file.",
		"redis-server on a loopback port with appendonly yes (appendfsync everysec), so that a SIGKILL and a restart keep the API key.",
		fmt.Sprintf("Everything on loopback on one machine with %d cores: the load generator and the servers share them. Each server runs alone (the previous one is stopped first); the backend and redis-server stay up throughout.", runtime.NumCPU()),
	}

	rep.LoadAvg[0] = loadAvg()
	want := func(s string) bool { return o.only == "" || slices.Contains(strings.Split(o.only, ","), s) }
	if want("throughput") {
		if rep.Throughput, err = e.throughput(ctx); err != nil {
			return err
		}
	}
	if want("latency") {
		if rep.Latency, err = e.latency(ctx); err != nil {
			return err
		}
	}
	if want("rediskill") {
		if rep.RedisKill, err = e.redisKill(ctx); err != nil {
			return err
		}
	}
	if want("jwks") {
		if rep.JWKS, err = e.jwks(ctx); err != nil {
			return err
		}
	}
	rep.LoadAvg[1] = loadAvg()
	rep.Minutes = time.Since(rep.Date).Minutes()
	return write(o.out, rep)
}

func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func (e *env) createKey(ctx context.Context) error {
	rdb, err := store.Open(e.redis.url())
	if err != nil {
		return err
	}
	defer rdb.Close()
	ks := auth.NewKeyStore(rdb, gateway.Keys)
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	e.key, _, err = ks.Create(cctx, auth.KeySpec{Owner: "gatewaybench", Tenant: "bench", Roles: []string{"viewer"}})
	return err
}

// startGateway runs the gateway binary with the full chain and extra environment.
func (e *env) startGateway(ctx context.Context, extra ...string) (*proc, error) {
	return e.startGatewayAs(ctx, "gateway", extra...)
}

// startGatewayAs starts a gateway whose output goes to name.log in the work directory.
func (e *env) startGatewayAs(ctx context.Context, name string, extra ...string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	envs := []string{
		"PORT=" + port, "BIND_ADDR=127.0.0.1", "REDIS_URL=" + e.redis.url(),
		"UPSTREAM_DIAL_ADDR=" + e.backend.addr, "INTERNAL_TOKEN_KEY=" + e.intKey,
		"RATE_LIMIT=100000", "RATE_LIMIT_BURST=100000", "RATE_LIMIT_PERIOD=1s",
		"LOG_LEVEL=info", "OTEL_TRACES_SAMPLER=parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG=0.01",
		"OTEL_EXPORTER_OTLP_ENDPOINT=http://" + e.backend.addr, "PLATFORM_MODE=", "K_SERVICE=gateway",
	}
	if e.o.gwEnv != "" {
		envs = append(envs, strings.Split(e.o.gwEnv, ",")...)
	}
	envs = append(envs, extra...)
	// A fresh log per start: the Redis-kill scenario reads the limiter's lines from it.
	_ = os.Remove(filepath.Join(e.dir, name+".log"))
	return startProc(ctx, e.dir, name, addr, envs, httpReady("http://"+addr+"/health/readiness"), e.gwBin)
}

// server is one target of the throughput comparison.
type server struct {
	name   string
	header string // sent by wrk (the gateway's API key)
	start  func(ctx context.Context) (*proc, error)
	skip   string
}

func (e *env) servers() []server {
	bare := server{name: "bare httputil.ReverseProxy", start: func(ctx context.Context) (*proc, error) {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		return startProc(ctx, e.dir, "bare", addr, nil, httpReady("http://"+addr+"/"), e.self, "-role", "bare", "-addr", addr, "-upstream", e.backend.addr)
	}}
	gw := server{name: "gateway, full chain", header: "X-API-Key: " + e.key, start: func(ctx context.Context) (*proc, error) { return e.startGateway(ctx) }}
	// Variants: the same gateway with some environment changed, measured in the same rounds.
	var variants []server
	for _, v := range strings.Split(e.o.gwVariants, ";") {
		if v = strings.TrimSpace(v); v != "" {
			extra := strings.Split(v, ",")
			logName := fmt.Sprintf("gateway-variant-%d", len(variants)+1)
			variants = append(variants, server{name: "gateway, full chain, " + v, header: gw.header,
				start: func(ctx context.Context) (*proc, error) { return e.startGatewayAs(ctx, logName, extra...) }})
		}
	}
	ngx := server{name: "nginx proxy_pass", start: e.startNginx}
	if _, err := exec.LookPath("nginx"); err != nil {
		ngx.skip = "nginx not installed (apt-get install -y nginx)"
	}
	cdy := server{name: "Caddy reverse_proxy", start: e.startCaddy}
	if _, err := exec.LookPath("caddy"); err != nil {
		cdy.skip = "caddy not installed (apt-get install -y caddy)"
	}
	return append(append([]server{bare, gw}, variants...), ngx, cdy)
}

// wanted says whether -targets selects the server (the direct run is always made).
func (e *env) wanted(name string) bool {
	if e.o.targets == "" {
		return true
	}
	for _, p := range strings.Split(e.o.targets, ",") {
		if p = strings.TrimSpace(p); p != "" && strings.HasPrefix(strings.ToLower(name), strings.ToLower(p)) {
			return true
		}
	}
	return false
}

func (e *env) wrkArgs(d time.Duration) []string {
	return []string{"-t" + strconv.Itoa(e.o.threads), "-c" + strconv.Itoa(e.o.conns), "-d" + strconv.Itoa(max(1, int(d.Seconds()))) + "s", "-s", e.script}
}

func (e *env) throughput(ctx context.Context) (*Throughput, error) {
	srvs := e.servers()
	t := &Throughput{Rounds: e.o.rounds, Command: "wrk " + strings.ReplaceAll(strings.Join(e.wrkArgs(e.o.duration), " "), e.script, "percentiles.lua") + " --latency [-H 'X-API-Key: …'] http://127.0.0.1:PORT" + e.path + " (percentiles.lua prints p50/p95/p99/p99.9 from wrk's histogram)"}
	results := make([]TargetResult, len(srvs))
	for i, s := range srvs {
		results[i] = TargetResult{Name: s.name, Skipped: s.skip}
	}
	for round := 0; round < e.o.rounds; round++ {
		for k := range srvs {
			// Bare proxy and gateway run back to back, swapping places each round, so that the
			// ratio of a round compares runs under about the same background load; the anchors
			// follow.
			order := []int{0, 1, 2, 3}
			if round%2 == 1 {
				order = []int{1, 0, 3, 2}
			}
			i := order[k]
			s := srvs[i]
			if s.skip != "" {
				continue
			}
			fmt.Fprintf(os.Stderr, "throughput round %d: %s\n", round+1, s.name)
			before := readBackendStats(e.backend.addr)
			p, err := s.start(ctx)
			if err != nil {
				results[i].Skipped = err.Error()
				srvs[i].skip = "failed to start: " + firstLine(err.Error())
				continue
			}
			url := "http://" + p.addr + e.path
			if e.o.warmup > 0 {
				if _, _, err := runWrk(ctx, e.wrkArgs(e.o.warmup), url, s.header, p.pid(), e.backend.pid(), e.redis.p.pid()); err != nil {
					p.stop()
					return nil, fmt.Errorf("%s warm-up: %w", s.name, err)
				}
			}
			r, _, err := runWrk(ctx, e.wrkArgs(e.o.duration), url, s.header, p.pid(), e.backend.pid(), e.redis.p.pid())
			p.stop() // the gateway flushes its span exporter on the way out
			if s.header != "" {
				d := readBackendStats(e.backend.addr).minus(before)
				if results[i].Tracing == nil {
					results[i].Tracing = &backendStats{}
				}
				t := results[i].Tracing
				t.Sampled, t.Unsampled, t.NoTrace = t.Sampled+d.Sampled, t.Unsampled+d.Unsampled, t.NoTrace+d.NoTrace
				t.OTLPExports, t.OTLPBytes = t.OTLPExports+d.OTLPExports, t.OTLPBytes+d.OTLPBytes
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", s.name, err)
			}
			fmt.Fprintf(os.Stderr, "  %.0f req/s, p99 %.2f ms, %.1f ms CPU per 1000 requests, non-2xx %d, background load %.0f%%\n", r.RPS, r.P99ms, r.CPUPer1k, r.Non2xx, 100*r.Background)
			results[i].Runs = append(results[i].Runs, r)
		}
		if b, g := results[0].Runs, results[1].Runs; len(b) == round+1 && len(g) == round+1 && b[round].RPS > 0 {
			t.RoundRatios = append(t.RoundRatios, g[round].RPS/b[round].RPS)
		}
	}
	for i := range results {
		r := &results[i]
		if len(r.Runs) == 0 {
			continue
		}
		r.MedianRPS = median(r.Runs, func(w wrkResult) float64 { return w.RPS })
		r.P50ms = median(r.Runs, func(w wrkResult) float64 { return w.P50ms })
		r.P95ms = median(r.Runs, func(w wrkResult) float64 { return w.P95ms })
		r.P99ms = median(r.Runs, func(w wrkResult) float64 { return w.P99ms })
		r.P999ms = median(r.Runs, func(w wrkResult) float64 { return w.P999ms })
		r.CPUPer1k = median(r.Runs, func(w wrkResult) float64 { return w.CPUPer1k })
		r.Background = median(r.Runs, func(w wrkResult) float64 { return w.Background })
		for _, w := range r.Runs {
			r.Errors += w.Non2xx + w.SockErrs
		}
	}
	if results[0].MedianRPS > 0 {
		for i := range results {
			results[i].Ratio = results[i].MedianRPS / results[0].MedianRPS
		}
		t.Ratio = results[1].Ratio
	}
	t.Targets = results
	return t, nil
}

func (e *env) latency(ctx context.Context) (*Latency, error) {
	l := &Latency{AddedP99: map[int]float64{}, AddedP99Rounds: map[int][]float64{}, BareAddedP99: map[int]float64{}}
	type target struct {
		name string
		tr   vegeta.Targeter
		pid  int
		log  string // the gateway's access log (gateway targets)
	}
	// Every proxy stays up for the whole comparison (idle while another is measured), in
	// front of the same backend; the direct run is the baseline of each round.
	targets := []target{{name: "direct to backend", tr: staticTarget("http://"+e.backend.addr+e.path, nil)}}
	keyHdr := http.Header{"X-Api-Key": {e.key}}
	for _, s := range e.servers() {
		if s.skip != "" || !e.wanted(s.name) {
			continue
		}
		p, err := s.start(ctx)
		if err != nil {
			if s.name == "gateway, full chain" || strings.HasPrefix(s.name, "bare") {
				return nil, err
			}
			fmt.Fprintf(os.Stderr, "latency: %s skipped: %v\n", s.name, err)
			continue
		}
		defer p.stop()
		var h http.Header
		if s.header != "" {
			h = keyHdr
		}
		t := target{name: s.name, tr: staticTarget("http://"+p.addr+e.path, h), pid: p.pid()}
		if strings.HasPrefix(s.name, "gateway") {
			t.log = p.log
		}
		targets = append(targets, t)
	}
	for _, rs := range strings.Split(e.o.rates, ",") {
		rate, err := strconv.Atoi(strings.TrimSpace(rs))
		if err != nil || rate <= 0 {
			return nil, fmt.Errorf("bad rate %q", rs)
		}
		byTarget := make([][]fixedRate, len(targets))
		added := make([][]float64, len(targets))
		for round := 0; round < e.o.latRounds; round++ {
			p99 := make([]float64, len(targets))
			for k := range targets {
				i := (k + round) % len(targets) // rotate which goes first
				r := targets[i]
				fmt.Fprintf(os.Stderr, "latency %d/s round %d: %s\n", rate, round+1, r.name)
				if e.o.rateWarm > 0 {
					attack(ctx, r.tr, rate, e.o.rateWarm, "warm-up") // connections and pools warm
				}
				var cpu0 time.Duration
				if r.pid != 0 {
					cpu0 = cpuTime(r.pid)
				}
				var logAt int64 = -1
				if r.log != "" {
					// The access log is flushed every 100 ms: let the warm-up's lines land first.
					time.Sleep(300 * time.Millisecond)
					if st, err := os.Stat(r.log); err == nil {
						logAt = st.Size()
					}
				}
				busy0, t0 := machineBusy(), time.Now()
				ar := attack(ctx, r.tr, rate, e.o.rateFor, r.name)
				f := summarizeFixed(r.name, rate, e.o.rateFor, ar)
				f.Round = round + 1
				// The run lasts longer than rateFor when answers queue: vegeta waits for them.
				if capacity := time.Since(t0).Seconds() * float64(runtime.NumCPU()); capacity > 0 {
					f.MachineBusy = (machineBusy() - busy0).Seconds() / capacity
				}
				// /proc/stat on some virtual machines jumps (counters reset when a vCPU is
				// replugged); a share outside [0, 1] is not a measurement.
				if f.MachineBusy < 0 || f.MachineBusy > 1.05 {
					f.MachineBusy = -1
				}
				if r.pid != 0 && f.Requests > 0 {
					f.CPUPer1k = float64((cpuTime(r.pid) - cpu0).Milliseconds()) / float64(f.Requests) * 1000
				}
				if logAt >= 0 {
					time.Sleep(300 * time.Millisecond)
					if in, err := readInside(r.log, logAt); err == nil {
						f.Inside = in
						fmt.Fprintf(os.Stderr, "  access log: handler p99 %.3f ms, upstream p99 %.3f, own p99 %.3f (%d lines)\n", in.HandlerP99, in.UpstreamP99, in.OwnP99, in.Lines)
					} else {
						fmt.Fprintf(os.Stderr, "  access log: %v\n", err)
					}
				}
				fmt.Fprintf(os.Stderr, "  p50 %.3f p99 %.3f p99.9 %.3f ms, %s %s, machine busy %.0f%%\n", f.P50ms, f.P99ms, f.P999ms, f.StatusMix, f.Errors, 100*f.MachineBusy)
				p99[i] = f.P99ms
				byTarget[i] = append(byTarget[i], f)
				l.Runs = append(l.Runs, f)
			}
			for i := range targets {
				added[i] = append(added[i], p99[i]-p99[0])
			}
		}
		var bareP99 float64
		first := len(l.Summary)
		for i, t := range targets {
			runs := byTarget[i]
			s := rateSummary{Rate: rate, Target: t.name, Rounds: len(runs), Success: 1,
				P50ms:  median(runs, func(f fixedRate) float64 { return f.P50ms }),
				P95ms:  median(runs, func(f fixedRate) float64 { return f.P95ms }),
				P99ms:  median(runs, func(f fixedRate) float64 { return f.P99ms }),
				P999ms: median(runs, func(f fixedRate) float64 { return f.P999ms }),
			}
			for _, f := range runs {
				s.Success = min(s.Success, f.Success)
			}
			if t.pid != 0 {
				s.CPUPer1k = median(runs, func(f fixedRate) float64 { return f.CPUPer1k })
			}
			var ins []*insideTimes
			for _, f := range runs {
				if f.Inside != nil {
					ins = append(ins, f.Inside)
				}
			}
			if len(ins) > 0 {
				med := func(g func(*insideTimes) float64) float64 { return median(ins, g) }
				s.Inside = &insideTimes{Lines: len(ins),
					HandlerP50: med(func(i *insideTimes) float64 { return i.HandlerP50 }), HandlerP99: med(func(i *insideTimes) float64 { return i.HandlerP99 }),
					UpstreamP99: med(func(i *insideTimes) float64 { return i.UpstreamP99 }),
					OwnP50:      med(func(i *insideTimes) float64 { return i.OwnP50 }), OwnP99: med(func(i *insideTimes) float64 { return i.OwnP99 }),
					OwnP999: med(func(i *insideTimes) float64 { return i.OwnP999 })}
			}
			if i > 0 {
				s.AddedP99 = median(added[i], func(x float64) float64 { return x })
			}
			switch {
			case t.name == "gateway, full chain":
				l.AddedP99[rate], l.AddedP99Rounds[rate] = s.AddedP99, added[i]
			case strings.HasPrefix(t.name, "bare"):
				l.BareAddedP99[rate], bareP99 = s.AddedP99, s.P99ms
			}
			l.Summary = append(l.Summary, s)
		}
		if bareP99 > 0 {
			for i := first; i < len(l.Summary); i++ {
				l.Summary[i].P99VsBare = l.Summary[i].P99ms / bareP99
			}
		}
	}
	return l, nil
}

func (e *env) redisKill(ctx context.Context) (*RedisKill, error) {
	gw, err := e.startGateway(ctx)
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	rk := &RedisKill{Rate: e.o.killRate, Route: "GET /api/v1/data/stocks/{symbol} (idempotent: fails open)"}
	tr := staticTarget("http://"+gw.addr+e.path, http.Header{"X-Api-Key": {e.key}})
	attack(ctx, tr, e.o.killRate, time.Second, "warm-up")

	var tKill, tBack, tGauge time.Time
	total := e.o.killAfter + e.o.killFor + 10*time.Second
	done := make(chan error, 1)
	go func() {
		defer close(done)
		select {
		case <-time.After(e.o.killAfter):
		case <-ctx.Done():
			return
		}
		fmt.Fprintf(os.Stderr, "redis kill: SIGKILL redis-server for %s\n", e.o.killFor)
		tKill = time.Now()
		e.redis.kill()
		select {
		case <-time.After(e.o.killFor):
		case <-ctx.Done():
			return
		}
		if err := e.redis.start(ctx); err != nil {
			done <- err
			return
		}
		tBack = time.Now() // redis-server answers PING
		for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if v, ok := scrapeGauge(gw.addr, "gateway_ratelimit_degraded"); ok && v == 0 {
				tGauge = time.Now()
				return
			}
		}
	}()
	fmt.Fprintf(os.Stderr, "redis kill: %d/s for %s\n", e.o.killRate, total)
	ar := attack(ctx, tr, e.o.killRate, total, "redis-kill")
	if err := <-done; err != nil {
		return nil, err
	}
	if tKill.IsZero() || tBack.IsZero() {
		return nil, errors.New("redis kill: the outage did not happen")
	}
	rk.RedisDownSeconds = tBack.Sub(tKill).Seconds()
	codes, outCodes := map[uint16]int{}, map[uint16]int{}
	problems := map[string]int{}
	var outLat []time.Duration
	for _, r := range ar.Results {
		codes[r.Code]++
		if r.Code >= 500 || r.Code == 0 {
			rk.Status5xx++
			problems[problemType(r.Body, r.Error)]++
		}
		if !r.Timestamp.Before(tKill) && r.Timestamp.Before(tBack) {
			rk.OutageRequests++
			outCodes[r.Code]++
			outLat = append(outLat, r.Latency)
		}
	}
	rk.Requests = len(ar.Results)
	rk.StatusMix, rk.OutageStatusMix = statusMix(codes), statusMix(outCodes)
	rk.ZeroLimiter5xx = rk.Status5xx == 0
	if len(problems) > 0 {
		b, _ := json.Marshal(problems)
		rk.Problems5xx = string(b)
	}
	if len(outLat) > 0 {
		slices.Sort(outLat)
		rk.OutageP99ms = ms(quantile(outLat, 0.99))
		rk.MaxOutageLatencyM = ms(outLat[len(outLat)-1])
	}
	if !tGauge.IsZero() {
		rk.GaugeClearedMs = ms(tGauge.Sub(tBack))
	}
	rk.DegradedAllowed, _ = scrapeGauge(gw.addr, `gateway_ratelimit_decisions_total{decision="degraded_allow"`)
	// The limiter's own account: its log lines carry the time it changed state.
	if t, line, ok := logTime(gw.log, "rate limiter degraded", tKill); ok {
		rk.DegradedAfterMs, rk.DegradedLogLine = ms(t.Sub(tKill)), line
	}
	if t, line, ok := logTime(gw.log, "rate limiter recovered", tKill); ok {
		rk.RecoveredAfterMs, rk.RecoveredLogLine = ms(t.Sub(tBack)), line
		rk.RecoveredUnder1s = t.Sub(tBack) < time.Second
	}
	return rk, nil
}

func (e *env) jwks(ctx context.Context) (*JWKSFlood, error) {
	p, err := startIdP()
	if err != nil {
		return nil, err
	}
	defer p.close()
	gw, err := e.startGateway(ctx, "JWT_ISSUER="+p.url, "JWT_AUDIENCE=day-trade", "JWT_JWKS_URL="+p.url+"/jwks",
		"JWKS_COOLDOWN="+e.o.jwksCool.String())
	if err != nil {
		return nil, err
	}
	defer gw.stop()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	url := "http://" + gw.addr + e.path
	tr := func(t *vegeta.Target) error {
		tok, err := unknownKidToken(priv, p.url)
		if err != nil {
			return err
		}
		t.Method, t.URL, t.Header = http.MethodGet, url, http.Header{"Authorization": {"Bearer " + tok}}
		return nil
	}
	// The gateway fetched the JWKS once at start; only fetches during the flood count.
	time.Sleep(200 * time.Millisecond)
	before := len(p.fetchTimes())
	fmt.Fprintf(os.Stderr, "jwks: %d/s tokens with unknown kids for %s, cooldown %s\n", e.o.jwksRate, e.o.jwksFor, e.o.jwksCool)
	start := time.Now()
	ar := attack(ctx, tr, e.o.jwksRate, e.o.jwksFor, "jwks")
	end := time.Now()
	fetches := p.fetchTimes()[before:]
	j := &JWKSFlood{Rate: e.o.jwksRate, Seconds: end.Sub(start).Seconds(), Requests: len(ar.Results),
		CooldownS: e.o.jwksCool.Seconds(), Fetches: len(fetches)}
	// At most one fetch per cooldown: ⌈flood / cooldown⌉ windows.
	j.Bound = int((end.Sub(start) + e.o.jwksCool - 1) / e.o.jwksCool)
	j.MinGapS = -1
	for i, f := range fetches {
		j.FetchOffset = append(j.FetchOffset, f.Sub(start).Seconds())
		if i > 0 {
			if g := f.Sub(fetches[i-1]).Seconds(); j.MinGapS < 0 || g < j.MinGapS {
				j.MinGapS = g
			}
		}
	}
	codes := map[uint16]int{}
	lat := make([]time.Duration, 0, len(ar.Results))
	for _, r := range ar.Results {
		codes[r.Code]++
		lat = append(lat, r.Latency)
	}
	slices.Sort(lat)
	if len(lat) > 0 {
		j.P99ms = ms(quantile(lat, 0.99))
	}
	j.StatusMix = statusMix(codes)
	j.Met = j.Fetches <= j.Bound && (j.MinGapS < 0 || j.MinGapS >= e.o.jwksCool.Seconds()*0.99) && codes[401] == len(ar.Results)
	return j, nil
}

// scrapeGauge reads the first sample whose line starts with prefix from the gateway's /metrics.
func scrapeGauge(addr, prefix string) (float64, bool) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, prefix) || (len(line) > len(prefix) && !strings.ContainsAny(line[len(prefix):len(prefix)+1], "{ ,")) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		return v, err == nil
	}
	return 0, false
}

// logTime finds the first JSON log line with msg at or after since and returns its time.
func logTime(path, msg string, since time.Time) (time.Time, string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return time.Time{}, "", false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil || !strings.HasPrefix(rec.Msg, msg) || rec.Time.Before(since) {
			continue
		}
		return rec.Time, line, true
	}
	return time.Time{}, "", false
}

func problemType(body []byte, errText string) string {
	if errText != "" {
		return "transport: " + errText
	}
	var p struct {
		Type  string `json:"type"`
		Title string `json:"title"`
	}
	if json.Unmarshal(body, &p) == nil && p.Type != "" {
		return p.Type
	}
	return "non-problem body"
}

func (e *env) startNginx(ctx context.Context) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	d := filepath.Join(e.dir, "nginx")
	if err := os.MkdirAll(filepath.Join(d, "tmp"), 0o755); err != nil {
		return nil, err
	}
	userLine := ""
	if os.Geteuid() == 0 {
		// As root, nginx would hand its workers to "nobody"; keep them the current user.
		userLine = "user root;\n"
		if u, err := user.Current(); err == nil {
			userLine = "user " + u.Username + ";\n"
		}
	}
	conf := fmt.Sprintf(`%sworker_processes auto;
daemon off;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 4096; }
http {
  access_log %[2]s/access.log;
  client_body_temp_path %[2]s/tmp/body;
  proxy_temp_path %[2]s/tmp/proxy;
  fastcgi_temp_path %[2]s/tmp/fastcgi;
  uwsgi_temp_path %[2]s/tmp/uwsgi;
  scgi_temp_path %[2]s/tmp/scgi;
  upstream backend { server %[3]s; keepalive 128; }
  server {
    listen %[4]s;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`, userLine, d, e.backend.addr, addr)
	cf := filepath.Join(d, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return startProc(ctx, e.dir, "nginx", addr, nil, httpReady("http://"+addr+"/"), "nginx", "-p", d, "-c", cf, "-e", filepath.Join(d, "error.log"))
}

func (e *env) startCaddy(ctx context.Context) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	d := filepath.Join(e.dir, "caddy")
	if err := os.MkdirAll(d, 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`{
	admin off
	auto_https off
}
http://%s {
	log {
		output file %s/access.log
	}
	reverse_proxy %s
}
`, addr, d, e.backend.addr)
	cf := filepath.Join(d, "Caddyfile")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	envs := []string{"XDG_DATA_HOME=" + d, "XDG_CONFIG_HOME=" + d, "HOME=" + d}
	return startProc(ctx, e.dir, "caddy", addr, envs, httpReady("http://"+addr+"/"), "caddy", "run", "--config", cf, "--adapter", "caddyfile")
}

func median[T any](xs []T, f func(T) float64) float64 {
	v := make([]float64, len(xs))
	for i, x := range xs {
		v[i] = f(x)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func gitCommit(dir string) string {
	out, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "-C", dir, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
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
	kernel := ""
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = ", Linux " + strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%s, %d cores%s, %s/%s, %s", cpu, runtime.NumCPU(), kernel, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func tools() map[string]string {
	t := map[string]string{}
	for name, args := range map[string][]string{
		"wrk": {"wrk", "-v"}, "nginx": {"nginx", "-v"}, "caddy": {"caddy", "version"}, "redis-server": {"redis-server", "--version"},
	} {
		out, _ := exec.Command(args[0], args[1:]...).CombinedOutput()
		if s := firstLine(strings.TrimSpace(string(out))); s != "" {
			t[name] = s
		} else {
			t[name] = "not installed"
		}
	}
	return t
}
