package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/knative/local"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/store"
)

// bins are the binaries every scenario shares: the whole catalog, and faultfn.
type bins struct {
	dir   string // the catalog's binaries, one per function
	fault string // the faultfn binary
}

// used are the catalog functions the scenarios call (and the dead-letter sink every Trigger
// names). The platform runs only these: linking all of the catalog's binaries costs minutes
// on a busy 2-core machine, and warm services nobody calls would only take CPU from the load.
var used = []string{"gateway", "data-stocks", "execution-trade", "ml-models", "data-batch-fetch",
	"data-batch-worker", "execution-jobs", "dead-letter"}

func usedFunctions() []functions.Function {
	var out []functions.Function
	for _, fn := range functions.Catalog() {
		if slices.Contains(used, fn.Name) {
			out = append(out, fn)
		}
	}
	return out
}

// build compiles the functions the scenarios use and faultfn, once per run, in one go build
// (symbols stripped: the link is most of the time and nothing here needs a debugger).
func build(ctx context.Context, moduleDir, dir string, out io.Writer) (bins, error) {
	b := bins{dir: filepath.Join(dir, "bin")}
	if err := os.MkdirAll(b.dir, 0o755); err != nil {
		return b, err
	}
	args := []string{"build", "-ldflags=-s -w", "-o", b.dir + string(filepath.Separator)}
	for _, fn := range usedFunctions() {
		if fn.Name != "ml-models" { // always replaced by faultfn
			args = append(args, fn.ImportPath())
		}
	}
	args = append(args, "./tests/chaos/faultfn")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = moduleDir, out, out
	if err := cmd.Run(); err != nil {
		return b, fmt.Errorf("go build: %w", err)
	}
	b.fault = filepath.Join(b.dir, "faultfn") // go build names it after its directory
	return b, nil
}

// binDirWith returns a directory of links to the catalog's binaries in which each function
// named in victims runs faultfn instead: the platform, the activator and the gateway treat it
// as that function (same host, same route, same policy).
func (b bins) binDirWith(dir string, victims ...string) (string, error) {
	d, err := os.MkdirTemp(dir, "bin-")
	if err != nil {
		return "", err
	}
	for _, fn := range usedFunctions() {
		name := path.Base(fn.ImportPath())
		src := filepath.Join(b.dir, name)
		if fn.Name == "ml-models" || slices.Contains(victims, fn.Name) {
			src = b.fault
		}
		if err := os.Symlink(src, filepath.Join(d, name)); err != nil {
			return "", err
		}
	}
	return d, nil
}

// redisProc is a redis-server child with an append-only file, so that a SIGKILL and a restart
// on the same port keep everything that was written before the kill (a process crash, not a
// machine crash: the kernel has the AOF's writes; see the report's setup).
type redisProc struct {
	dir, addr string
	mu        sync.Mutex
	cmd       *exec.Cmd
	done      chan struct{}
}

func startRedis(ctx context.Context, dir string) (*redisProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	r := &redisProc{dir: filepath.Join(dir, "redis"), addr: addr}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	return r, r.start(ctx)
}

func (r *redisProc) start(ctx context.Context) error {
	_, port, _ := net.SplitHostPort(r.addr)
	logf, err := os.OpenFile(filepath.Join(r.dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "",
		"--appendonly", "yes", "--appendfsync", "everysec", "--dir", r.dir, "--maxclients", "10000")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("redis-server: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	r.mu.Lock()
	r.cmd, r.done = cmd, done
	r.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for !redisPing(r.addr) {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited at start (port %s)", port)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("redis-server on %s did not answer PING", r.addr)
		}
	}
	return nil
}

// kill is a crash: SIGKILL, no shutdown; it returns once the process is gone.
func (r *redisProc) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	_ = cmd.Process.Kill()
	<-done
}

func (r *redisProc) stop() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (r *redisProc) url() string { return "redis://" + r.addr + "/0" }

func redisPing(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.HasPrefix(line, "+PONG")
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// slowProxy is Toxiproxy (its Go library, in this process) between the platform and
// redis-server: without a toxic it passes bytes through; with the latency toxic every chunk
// from Redis to its client is held for the given time.
type slowProxy struct {
	p *toxiproxy.Proxy
}

func startSlowProxy(upstream string) (*slowProxy, error) {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	p := toxiproxy.NewProxy(srv, "redis", "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return nil, fmt.Errorf("toxiproxy: %w", err)
	}
	return &slowProxy{p: p}, nil
}

func (s *slowProxy) addr() string { return s.p.Listen }

// setLatency adds (d > 0) or removes (d == 0) the latency toxic on the Redis → client stream.
func (s *slowProxy) setLatency(d time.Duration) error {
	_ = s.p.Toxics.RemoveToxic(context.Background(), "latency_downstream")
	if d <= 0 {
		return nil
	}
	_, err := s.p.Toxics.AddToxicJson(strings.NewReader(fmt.Sprintf(
		`{"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1,"attributes":{"latency":%d,"jitter":0}}`, d.Milliseconds())))
	return err
}

func (s *slowProxy) stop() { s.p.Stop() }

// platform is one scenario's running system: redis-server (maybe behind a slow proxy), the
// local platform on it (gateway, activator, functions on demand, Broker), API keys.
type platform struct {
	p      *local.Platform
	redis  *redisProc
	proxy  *slowProxy
	logf   *os.File
	logPth string
	gw     string // gateway base URL
	cancel context.CancelFunc
}

// platformOpts say how a scenario's platform differs from the default.
type platformOpts struct {
	victims   []string // catalog functions replaced by faultfn
	env       []string // extra environment for every process
	slowRedis bool     // Redis through Toxiproxy
	broker    local.BrokerOptions
}

// baseEnv is every scenario's environment: synthetic market data (no network), quiet logs,
// a per-key rate limit the load never reaches (the limiter still asks Redis on every
// request), and a paper account large enough that the soak's orders are accepted.
var baseEnv = []string{
	"DATA_PROVIDER=synthetic", "LOG_LEVEL=warn",
	"RATE_LIMIT=1000000", "RATE_LIMIT_BURST=1000000", "RATE_LIMIT_PERIOD=1s",
	"PAPER_INITIAL_CASH=100000000000000", "RISK_MAX_OPEN_ORDERS=1000000",
	"OTEL_TRACES_SAMPLER=always_off",
}

func startPlatform(ctx context.Context, run *runEnv, name string, o platformOpts) (*platform, error) {
	dir, err := os.MkdirTemp(run.dir, name+"-")
	if err != nil {
		return nil, err
	}
	binDir, err := run.bins.binDirWith(dir, o.victims...)
	if err != nil {
		return nil, err
	}
	rs, err := startRedis(ctx, dir)
	if err != nil {
		return nil, err
	}
	pl := &platform{redis: rs, logPth: filepath.Join(dir, "platform.log")}
	redisURL := rs.url()
	if o.slowRedis {
		if pl.proxy, err = startSlowProxy(rs.addr); err != nil {
			rs.stop()
			return nil, err
		}
		redisURL = "redis://" + pl.proxy.addr() + "/0"
	}
	if pl.logf, err = os.Create(pl.logPth); err != nil {
		pl.close()
		return nil, err
	}
	pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	pl.cancel = cancel
	env := append(append(append(os.Environ(), baseEnv...), run.extraEnv...), o.env...)
	// The platform picks the gateway's port free and the gateway binds it a moment later; on a
	// machine busy with other load another socket can take it in between. Try again then.
	for attempt := 1; ; attempt++ {
		pl.p, err = local.Start(pctx, local.Options{
			Functions: usedFunctions(), Dir: run.moduleDir, BinDir: binDir, SkipBuild: true, RedisURL: redisURL,
			IdleWindow: 10 * time.Minute, StopTimeout: 5 * time.Second, Env: env,
			Log:    slog.New(slog.NewTextHandler(pl.logf, &slog.HandlerOptions{Level: slog.LevelInfo})),
			Output: pl.logf, Broker: o.broker,
		})
		if err == nil || attempt == 3 || !strings.Contains(tail(pl.logPth, 30), "address already in use") {
			break
		}
		fmt.Fprintf(os.Stderr, "%s: the gateway's port was taken; starting the platform again\n", name)
	}
	if err != nil {
		pl.close()
		return nil, fmt.Errorf("%s: local platform: %w\n%s", name, err, tail(pl.logPth, 30))
	}
	pl.gw = pl.p.GatewayURL()
	return pl, nil
}

func (pl *platform) close() {
	if pl.p != nil {
		_ = pl.p.Close()
	}
	if pl.cancel != nil {
		pl.cancel()
	}
	if pl.proxy != nil {
		pl.proxy.stop()
	}
	pl.redis.stop()
	if pl.logf != nil {
		pl.logf.Close()
	}
}

// createKeys makes one API key per tenant (roles viewer, trader, admin) straight in the
// gateway's key store, as the admin API would.
func (pl *platform) createKeys(ctx context.Context, tenants []string) (map[string]string, error) {
	rdb, err := store.Open(pl.redis.url())
	if err != nil {
		return nil, err
	}
	defer rdb.Close()
	ks := auth.NewKeyStore(rdb, gateway.Keys)
	keys := map[string]string{}
	for _, t := range tenants {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		k, _, err := ks.Create(cctx, auth.KeySpec{Owner: "chaos", Tenant: t,
			Roles: []string{functions.RoleViewer, functions.RoleTrader, functions.RoleAdmin}})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("api key for %s: %w", t, err)
		}
		keys[t] = k
	}
	return keys, nil
}

// fault talks to a faultfn process through the activator, by the victim's Knative host.
func (pl *platform) fault(victim, method, pathQuery string) ([]byte, error) {
	req, err := http.NewRequest(method, pl.p.ActivatorURL()+pathQuery, nil)
	if err != nil {
		return nil, err
	}
	req.Host = victim + ".day-trade.svc.cluster.local"
	resp, err := ctlClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		return b, fmt.Errorf("%s %s: %d %s", method, pathQuery, resp.StatusCode, b)
	}
	return b, nil
}

type faultStats struct {
	Mode     string           `json:"mode"`
	Requests int64            `json:"requests"`
	ByStatus map[string]int64 `json:"by_status"`
	InFlight int64            `json:"in_flight"`
}

func (pl *platform) faultStats(victim string) (faultStats, error) {
	var s faultStats
	b, err := pl.fault(victim, http.MethodGet, "/_fault/stats")
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal(b, &s)
}

var ctlClient = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil}}

// breakerState reads gateway_breaker_state for one upstream from the gateway's /metrics:
// 0 closed, 1 half-open, 2 open; -1 when it cannot be read.
func (pl *platform) breakerState(upstream string) int {
	resp, err := ctlClient.Get(pl.gw + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	want := `upstream="` + upstream + `"`
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "gateway_breaker_state{") || !strings.Contains(line, want) {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return -1
		}
		return int(v)
	}
	return 0 // not exported yet: the upstream has had no call, its breaker is closed
}

func tail(p string, n int) string {
	b, err := os.ReadFile(p)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// breakerLog reads the gateway's "circuit breaker" log lines for upstream (every transition,
// with the gateway's own timestamp; needs LOG_LEVEL=info for the closing ones) from the
// platform's log, as seconds after start.
func (pl *platform) breakerLog(upstream string, start time.Time) []Transition {
	b, err := os.ReadFile(pl.logPth)
	if err != nil {
		return nil
	}
	var out []Transition
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.Contains(line, `"circuit breaker"`) || !strings.HasPrefix(line, "gateway") {
			continue
		}
		i := strings.IndexByte(line, '{')
		if i < 0 {
			continue
		}
		var rec struct {
			Time     time.Time `json:"time"`
			Upstream string    `json:"upstream"`
			To       string    `json:"to"`
		}
		if json.Unmarshal([]byte(line[i:]), &rec) != nil || rec.Upstream != upstream || rec.Time.Before(start) {
			continue
		}
		out = append(out, Transition{AtS: rec.Time.Sub(start).Seconds(), State: rec.To})
	}
	return out
}
