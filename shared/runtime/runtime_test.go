package runtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/runtime"
)

type testConfig struct {
	config.Runtime
}

// startFunction runs a function through runtime.Run on a free port and waits until it listens.
func startFunction(t *testing.T, h http.Handler, checks map[string]runtime.Checker) (base string, stop func() error) {
	t.Helper()
	port := redistest.FreePort(t)
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("BIND_ADDR", "127.0.0.1")
	t.Setenv("K_SERVICE", "probe")
	t.Setenv("SHUTDOWN_TIMEOUT", "5s")
	t.Setenv("MAX_BODY_BYTES", "1024")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runtime.Run[testConfig](ctx, "probe", func(ctx context.Context, cfg *testConfig, d runtime.Deps) (runtime.Function, error) {
			return runtime.Function{Handler: h, Checks: checks}, nil
		})
	}()
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/health/liveness")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i > 500 {
			t.Fatalf("function did not start: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	var once atomic.Bool
	stop = func() error {
		if !once.CompareAndSwap(false, true) {
			return nil
		}
		cancel()
		return <-done
	}
	t.Cleanup(func() { _ = stop() })
	return base, stop
}

// TestLivenessSaysWhichProcess: the liveness body names the process (its pid and K_SERVICE),
// which knative/local checks to know that its own child answered on the port it picked.
func TestLivenessSaysWhichProcess(t *testing.T) {
	base, _ := startFunction(t, http.NotFoundHandler(), nil)
	resp, err := http.Get(base + "/health/liveness")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Status  string `json:"status"`
		PID     int    `json:"pid"`
		Service string `json:"service"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("liveness %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if got.Status != "alive" || got.PID != os.Getpid() || got.Service != "probe" {
		t.Errorf("liveness says %+v, want alive, pid %d, service probe", got, os.Getpid())
	}
}

func TestReadinessRunsCheckers(t *testing.T) {
	var healthy atomic.Bool
	healthy.Store(true)
	check := runtime.CheckerFunc(func(ctx context.Context) error {
		if healthy.Load() {
			return nil
		}
		return errors.New("redis: connection refused")
	})
	base, _ := startFunction(t, http.NotFoundHandler(), map[string]runtime.Checker{"redis": check})

	resp, err := http.Get(base + "/health/readiness")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("ready status = %d", resp.StatusCode)
	}
	healthy.Store(false)
	resp, err = http.Get(base + "/health/readiness")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var p map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&p)
	if resp.StatusCode != 503 || resp.Header.Get("Content-Type") != httpx.ProblemContentType {
		t.Fatalf("unready status = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if checks, _ := p["checks"].(map[string]any); checks["redis"] == nil {
		t.Errorf("problem does not name the failed check: %v", p)
	}
}

func TestGracefulDrainFinishesInFlightRequest(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		_, _ = io.WriteString(w, "finished")
	})
	base, stop := startFunction(t, h, nil)
	type res struct {
		body string
		err  error
	}
	got := make(chan res, 1)
	go func() {
		resp, err := http.Get(base + "/slow")
		if err != nil {
			got <- res{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- res{string(b), err}
	}()
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	// The server must wait for the in-flight request rather than cut it.
	select {
	case err := <-stopped:
		t.Fatalf("server stopped before the in-flight request finished: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	r := <-got
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request = %q, %v", r.body, r.err)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("drain error: %v", err)
	}
	if _, err := http.Get(base + "/health/liveness"); err == nil {
		t.Fatal("server still accepting after drain")
	}
}

func TestLimitsAndPanics(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			httpx.WriteError(w, r, nil, &httpx.Error{Code: httpx.CodeTooLarge, Message: "too large", Err: err})
			return
		}
		w.WriteHeader(204)
	})
	mux.HandleFunc("GET /boom", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	base, _ := startFunction(t, mux, nil)

	tests := map[string]struct {
		method, path, body string
		header             map[string]string
		want               int
	}{
		"small body":         {method: "POST", path: "/echo", body: "hi", want: 204},
		"oversized body":     {method: "POST", path: "/echo", body: strings.Repeat("x", 4096), want: 413},
		"panic is a problem": {method: "GET", path: "/boom", want: 500},
		"huge header":        {method: "GET", path: "/health/liveness", header: map[string]string{"X-Big": strings.Repeat("a", 128<<10)}, want: 431},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Errorf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if resp.Header.Get(httpx.RequestIDHeader) == "" && tc.want != 431 {
				t.Error("no request id on response")
			}
		})
	}
}
