//go:build unix

package local_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/knative/local"
)

// binDir holds the test function, testdata/fn, built once and linked under every name of
// testTable, since the platform runs <binDir>/<name>.
var binDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "local-test-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		fn := filepath.Join(dir, "fn")
		build := exec.Command("go", "build", "-o", fn, "./testdata/fn")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build testdata/fn:", err)
			return 1
		}
		for _, f := range testTable() {
			if err := os.Link(fn, filepath.Join(dir, f.Name)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

func testTable() []functions.Function {
	hour := functions.Scaling{MaxScale: 1, IdleWindow: time.Hour}
	return []functions.Function{
		{Name: "gateway", Kind: functions.KindGateway, Scaling: functions.Scaling{MinScale: 1, MaxScale: 1}},
		{Name: "warm", Kind: functions.KindService, Scaling: functions.Scaling{MinScale: 1, MaxScale: 1}},
		{Name: "echo", Kind: functions.KindFunction, Scaling: hour,
			Env: map[string]string{"GREETING": "catalog", "OVERRIDE_ME": "catalog"}},
		{Name: "idle", Kind: functions.KindFunction, Scaling: functions.Scaling{MaxScale: 1, IdleWindow: 300 * time.Millisecond}},
		{Name: "slow", Kind: functions.KindFunction, Scaling: hour, Env: map[string]string{"FN_START_DELAY": "200ms"}},
		{Name: "broken", Kind: functions.KindFunction, Scaling: hour, Env: map[string]string{"FN_EXIT": "1"}},
	}
}

// startPlatform runs the test table with an in-process Redis unless opts says otherwise.
func startPlatform(t *testing.T, opts local.Options) *local.Platform {
	t.Helper()
	w := newTestWriter(t)
	opts.Functions = testTable()
	opts.BinDir = binDir
	opts.SkipBuild = true
	opts.Env = []string{"PATH=" + os.Getenv("PATH"), "OVERRIDE_ME=user"}
	opts.Log = slog.New(slog.NewTextHandler(w, nil))
	opts.Output = w
	opts.StopTimeout = 5 * time.Second
	p, err := local.Start(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// testWriter sends logs to t.Log until the test ends.
type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func newTestWriter(t *testing.T) *testWriter {
	w := &testWriter{t: t}
	t.Cleanup(func() { // registered first, so it runs after the platform's Close
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return w
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(b), "\n"))
	}
	return len(b), nil
}

// echo is what testdata/fn answers.
type echo struct {
	Service string            `json:"service"`
	Path    string            `json:"path"`
	Query   string            `json:"query"`
	Host    string            `json:"host"`
	XFF     string            `json:"xff"`
	PID     int               `json:"pid"`
	Env     map[string]string `json:"env"`
}

// call sends GET path to the activator with the given Host header.
func call(t *testing.T, p *local.Platform, host, path string) (*http.Response, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.ActivatorURL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func mustEcho(t *testing.T, p *local.Platform, host, path string) echo {
	t.Helper()
	resp, body := call(t, p, host, path)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s (Host %s): %d %s", path, host, resp.StatusCode, body)
	}
	var e echo
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("GET %s: %v: %s", path, err, body)
	}
	return e
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestColdStartHoldsTheFirstRequest(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{})
	if p.Running("echo") {
		t.Fatal("echo runs before any request; it scales to zero")
	}
	e := mustEcho(t, p, "echo.day-trade.svc.cluster.local", "/hello?x=1")
	if e.Service != "echo" || e.Path != "/hello" || e.Query != "x=1" || e.Host != "echo.day-trade.svc.cluster.local" {
		t.Errorf("echo answered %+v", e)
	}
	if !p.Running("echo") {
		t.Error("echo not running after its first request")
	}
	if n := len(p.ColdStarts("echo")); n != 1 {
		t.Errorf("cold starts = %d, want 1", n)
	}
	if d := p.ColdStarts("echo")[0]; d <= 0 {
		t.Errorf("cold start duration %v", d)
	}
}

func TestHostForms(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{})
	first := mustEcho(t, p, "echo", "/").PID
	for _, host := range []string{
		"echo.day-trade",
		"echo.day-trade.svc",
		"echo.day-trade.svc.cluster.local",
		"ECHO.Day-Trade.svc.cluster.local:80",
		"echo.day-trade.svc.cluster.local.",
		"echo:8080",
	} {
		t.Run(host, func(t *testing.T) {
			if e := mustEcho(t, p, host, "/"); e.Service != "echo" || e.PID != first {
				t.Errorf("Host %q reached %s pid %d, want echo pid %d", host, e.Service, e.PID, first)
			}
		})
	}
	if n := len(p.ColdStarts("echo")); n != 1 {
		t.Errorf("cold starts = %d, want 1", n)
	}
}

func TestChildEnvironment(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{Namespace: "ns1"})
	e := mustEcho(t, p, "echo.ns1.svc.cluster.local", "/")
	act := strings.TrimPrefix(p.ActivatorURL(), "http://")
	want := map[string]string{
		"BIND_ADDR":          "127.0.0.1",
		"K_SERVICE":          "echo",
		"K_CONFIGURATION":    "echo",
		"K_REVISION":         "echo-00001",
		"POD_NAMESPACE":      "ns1",
		"REDIS_URL":          p.RedisURL(),
		"PLATFORM_MODE":      "local",
		"UPSTREAM_DIAL_ADDR": act,
		"GREETING":           "catalog", // catalog default
		"OVERRIDE_ME":        "user",    // the user's environment wins over the catalog
	}
	for k, v := range want {
		if e.Env[k] != v {
			t.Errorf("%s = %q, want %q", k, e.Env[k], v)
		}
	}
	if e.Env["PORT"] == "" || strings.HasSuffix(p.GatewayURL(), ":"+e.Env["PORT"]) {
		t.Errorf("PORT = %q (gateway %s)", e.Env["PORT"], p.GatewayURL())
	}

	resp, err := http.Get(p.GatewayURL() + "/api/v1/anything")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var gw echo
	if err := json.NewDecoder(resp.Body).Decode(&gw); err != nil {
		t.Fatal(err)
	}
	if gw.Service != "gateway" || gw.Env["UPSTREAM_DIAL_ADDR"] != act || !strings.HasSuffix(p.GatewayURL(), ":"+gw.Env["PORT"]) {
		t.Errorf("gateway answered %+v", gw)
	}
}

func TestConcurrentFirstRequestsStartOneProcess(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{})
	const n = 16
	var (
		wg    sync.WaitGroup
		gate  = make(chan struct{})
		pids  = make([]int, n)
		codes = make([]int, n)
	)
	for i := range n {
		wg.Go(func() {
			<-gate
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, p.ActivatorURL()+"/", nil)
			req.Host = "slow"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			codes[i] = resp.StatusCode
			var e echo
			_ = json.NewDecoder(resp.Body).Decode(&e)
			pids[i] = e.PID
		})
	}
	close(gate)
	wg.Wait()
	for i := range n {
		if codes[i] != http.StatusOK || pids[i] != pids[0] {
			t.Errorf("request %d: status %d pid %d, want 200 from pid %d", i, codes[i], pids[i], pids[0])
		}
	}
	if got := len(p.ColdStarts("slow")); got != 1 {
		t.Errorf("cold starts = %d, want exactly 1", got)
	}
}

func TestIdleFunctionScalesToZeroAndBack(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{})
	first := mustEcho(t, p, "idle", "/").PID
	eventually(t, "idle function stopped after its idle window", func() bool { return !p.Running("idle") })
	eventually(t, "the scaled-to-zero process has exited", func() bool { return gone(first) })
	second := mustEcho(t, p, "idle", "/").PID
	if second == first {
		t.Errorf("same pid %d after scale to zero", first)
	}
	if n := len(p.ColdStarts("idle")); n != 2 {
		t.Errorf("cold starts = %d, want 2", n)
	}
	if !p.Running("warm") {
		t.Error("a warm service was scaled to zero")
	}
}

func TestIdleWindowOverride(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{IdleWindow: 200 * time.Millisecond})
	mustEcho(t, p, "echo", "/") // an hour in the table, overridden here
	eventually(t, "echo stopped after the overridden idle window", func() bool { return !p.Running("echo") })
}

func TestKilledFunctionRestartsOnNextRequest(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{})
	first := mustEcho(t, p, "echo", "/").PID
	if err := p.Kill("echo"); err != nil {
		t.Fatal(err)
	}
	if p.Running("echo") {
		t.Error("echo still marked running after Kill")
	}
	second := mustEcho(t, p, "echo", "/").PID
	if second == first {
		t.Errorf("same pid %d after Kill", first)
	}
	if n := len(p.ColdStarts("echo")); n != 2 {
		t.Errorf("cold starts = %d, want 2", n)
	}
	if err := p.Kill("echo-nope"); err == nil {
		t.Error("Kill of an unknown function succeeded")
	}
}

func TestKilledWarmServiceIsRestarted(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{})
	first := mustEcho(t, p, "warm", "/").PID
	if err := p.Kill("warm"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "warm service restarted", func() bool { return p.Running("warm") })
	if second := mustEcho(t, p, "warm", "/").PID; second == first {
		t.Errorf("same pid %d after Kill", first)
	}

	if err := p.Kill("gateway"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "gateway restarted and answering", func() bool {
		resp, err := http.Get(p.GatewayURL() + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func TestProblems(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{})
	tests := map[string]struct {
		host       string
		status     int
		retryAfter bool
	}{
		"unknown host":               {host: "nope.day-trade.svc.cluster.local", status: http.StatusNotFound},
		"unknown namespace":          {host: "echo.other.svc.cluster.local", status: http.StatusNotFound},
		"function that cannot start": {host: "broken", status: http.StatusServiceUnavailable, retryAfter: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp, body := call(t, p, tc.host, "/x")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q", ct)
			}
			if got := resp.Header.Get("Retry-After") != ""; got != tc.retryAfter {
				t.Errorf("Retry-After %q, want present=%v", resp.Header.Get("Retry-After"), tc.retryAfter)
			}
			var prob struct {
				Type   string `json:"type"`
				Title  string `json:"title"`
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			if err := json.Unmarshal(body, &prob); err != nil {
				t.Fatal(err)
			}
			if prob.Status != tc.status || prob.Type == "" || prob.Title == "" || prob.Detail == "" {
				t.Errorf("problem %+v", prob)
			}
		})
	}
	if p.Running("broken") {
		t.Error("broken function marked running")
	}
}

func TestWarmServicesRunAfterStart(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{})
	for _, name := range []string{"gateway", "warm"} {
		if !p.Running(name) {
			t.Errorf("%s not running right after Start", name)
		}
		if n := len(p.ColdStarts(name)); n != 1 {
			t.Errorf("%s: %d starts, want 1", name, n)
		}
	}
	for _, name := range []string{"echo", "idle", "slow", "broken"} {
		if p.Running(name) {
			t.Errorf("%s running before any request", name)
		}
	}
}

func TestStreamingIsFlushed(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.ActivatorURL()+"/stream", nil)
	req.Host = "echo"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// The function keeps the stream open; the first event arrives only if the proxy flushes.
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || line != "data: first\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
}

func TestEmbeddedRedis(t *testing.T) {
	t.Parallel()
	redisServer, lookErr := exec.LookPath("redis-server")
	tests := map[string]struct {
		path     string
		separate bool // a child process with its own pid
	}{
		"redis-server": {path: redisServer, separate: true},
		"miniredis":    {path: ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if tc.separate && lookErr != nil {
				t.Skip("redis-server not on PATH")
			}
			p := startPlatform(t, local.Options{RedisServerPath: tc.path})
			opt, err := redis.ParseURL(p.RedisURL())
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opt)
			defer rdb.Close()
			if err := rdb.Ping(t.Context()).Err(); err != nil {
				t.Fatalf("PING %s: %v", p.RedisURL(), err)
			}
			if got := mustEcho(t, p, "echo", "/").Env["REDIS_URL"]; got != p.RedisURL() {
				t.Errorf("function REDIS_URL %q, want %q", got, p.RedisURL())
			}
			if !tc.separate {
				return
			}
			info := rdb.InfoMap(t.Context(), "server")
			if err := info.Err(); err != nil {
				t.Fatal(err)
			}
			pid := info.Item("Server", "process_id")
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			var n int
			if _, err := fmt.Sscan(pid, &n); err != nil || !gone(n) {
				t.Errorf("redis-server pid %q still exists after Close", pid)
			}
		})
	}
}

func TestExternalRedisIsPassedThrough(t *testing.T) {
	t.Parallel()
	const url = "redis://127.0.0.1:1/3"
	p := startPlatform(t, local.Options{RedisURL: url})
	if p.RedisURL() != url {
		t.Errorf("RedisURL %q", p.RedisURL())
	}
	if got := mustEcho(t, p, "echo", "/").Env["REDIS_URL"]; got != url {
		t.Errorf("function REDIS_URL %q", got)
	}
}

func TestCloseLeavesNoChildren(t *testing.T) {
	t.Parallel()
	p := startPlatform(t, local.Options{})
	var pids []int
	for _, host := range []string{"echo", "warm", "gateway", "slow"} {
		pids = append(pids, mustEcho(t, p, host, "/").PID)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if !gone(pid) {
			t.Errorf("pid %d survived Close", pid)
		}
	}
	for _, name := range []string{"echo", "warm", "gateway"} {
		if p.Running(name) {
			t.Errorf("%s marked running after Close", name)
		}
	}
	if err := p.Wait(); err != nil {
		t.Error(err)
	}
}

func TestCancelledContextShutsDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(t.Context())
	w := newTestWriter(t)
	p, err := local.Start(ctx, local.Options{
		Functions: testTable(), BinDir: binDir, SkipBuild: true, Env: []string{},
		Log: slog.New(slog.NewTextHandler(w, nil)), Output: w,
	})
	if err != nil {
		t.Fatal(err)
	}
	pid := mustEcho(t, p, "warm", "/").PID
	cancel()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	if !gone(pid) {
		t.Errorf("pid %d survived shutdown", pid)
	}
	resp, err := http.Get(p.ActivatorURL())
	if err == nil {
		resp.Body.Close()
		t.Error("activator still accepting after shutdown")
	}
}

func TestStartFailsOnMissingBinary(t *testing.T) {
	t.Parallel()
	_, err := local.Start(t.Context(), local.Options{
		Functions: []functions.Function{{Name: "missing", Kind: functions.KindFunction}},
		BinDir:    t.TempDir(), SkipBuild: true, Output: io.Discard,
	})
	if err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("Start with no binary: %v", err)
	}
}

// gone reports whether no process has pid (it has exited and been reaped).
func gone(pid int) bool {
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// TestRedisACLUsersPerFunction: with RedisACL every function connects as its own ACL user,
// which may touch its catalog RedisKeys and nothing else, and Redis refuses a client
// without credentials.
func TestRedisACLUsersPerFunction(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Skip("redis-server not on PATH")
	}
	table := testTable()
	for i := range table {
		table[i].RedisKeys = []string{table[i].Name + ":*"}
	}
	w := newTestWriter(t)
	p, err := local.Start(t.Context(), local.Options{
		Functions: table, BinDir: binDir, SkipBuild: true, RedisServerPath: bin, RedisACL: true,
		Env: []string{"PATH=" + os.Getenv("PATH")}, Log: slog.New(slog.NewTextHandler(w, nil)), Output: w,
		StopTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })

	fnURL := mustEcho(t, p, "echo", "/").Env["REDIS_URL"]
	opt, err := redis.ParseURL(fnURL)
	if err != nil {
		t.Fatal(err)
	}
	if opt.Username != "echo" {
		t.Fatalf("echo connects as %q, want its own user", opt.Username)
	}
	fn := redis.NewClient(opt)
	defer fn.Close()
	ctx := t.Context()
	if err := fn.Set(ctx, "echo:k", "v", time.Minute).Err(); err != nil {
		t.Errorf("SET in its own space: %v", err)
	}
	if err := fn.Set(ctx, "warm:k", "v", time.Minute).Err(); err == nil || !strings.Contains(err.Error(), "NOPERM") {
		t.Errorf("SET in warm's space: %v, want NOPERM", err)
	}
	anon, _ := redis.ParseURL(p.RedisURL())
	anon.Username, anon.Password = "", ""
	nobody := redis.NewClient(anon)
	defer nobody.Close()
	if err := nobody.Ping(ctx).Err(); err == nil || !strings.Contains(err.Error(), "NOAUTH") {
		t.Errorf("PING without credentials: %v, want NOAUTH", err)
	}
	admin, _ := redis.ParseURL(p.RedisURL())
	ad := redis.NewClient(admin)
	defer ad.Close()
	if got, err := ad.Get(ctx, "echo:k").Result(); err != nil || got != "v" {
		t.Errorf("the platform's own user: %q, %v", got, err)
	}
}
