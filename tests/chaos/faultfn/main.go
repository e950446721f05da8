// Command faultfn is the chaos harness's misbehaving function: a real process speaking the
// Knative runtime contract ($PORT, /health/liveness) that the local platform starts in place
// of a catalog function, so the gateway reaches it through its real route, transport,
// breaker, retries and bulkhead. The harness switches its behaviour at run time through the
// activator (POST /_fault/mode?m=ok|fail|flaky|hang) and reads what it received from
// GET /_fault/stats, which is the ground truth for retry amplification: every attempt the
// gateway makes lands here once.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Modes.
const (
	modeOK    = "ok"    // 200 with a small JSON body
	modeFail  = "fail"  // 503 to every request
	modeFlaky = "flaky" // 503 to every second request (exactly half)
	modeHang  = "hang"  // never answers; holds the request until the caller gives up
)

type server struct {
	mu       sync.Mutex
	mode     string
	counts   map[string]int64 // per status answered ("hang" for held requests)
	n        atomic.Int64     // requests served (the flaky counter)
	inflight atomic.Int64
	stop     chan struct{}
}

// stats is GET /_fault/stats.
type stats struct {
	Mode     string           `json:"mode"`
	Requests int64            `json:"requests"`
	ByStatus map[string]int64 `json:"by_status"`
	InFlight int64            `json:"in_flight"`
}

func main() {
	s := &server{mode: modeOK, counts: map[string]int64{}, stop: make(chan struct{})}
	if m := os.Getenv("FAULT_MODE"); m != "" {
		s.mode = m
	}
	addr := net.JoinHostPort(os.Getenv("BIND_ADDR"), os.Getenv("PORT"))
	srv := &http.Server{Addr: addr, Handler: s, ReadHeaderTimeout: 5 * time.Second}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	go func() {
		<-ctx.Done()
		close(s.stop) // release held requests so shutdown can finish
		sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
		defer c()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		os.Stderr.WriteString("faultfn: " + err.Error() + "\n")
		os.Exit(1)
	}
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/health/"):
		w.WriteHeader(http.StatusOK)
		return
	case r.URL.Path == "/_fault/mode" && r.Method == http.MethodPost:
		m := r.URL.Query().Get("m")
		switch m {
		case modeOK, modeFail, modeFlaky, modeHang:
		default:
			http.Error(w, "mode must be ok, fail, flaky or hang", http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.mode = m
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
		return
	case r.URL.Path == "/_fault/reset" && r.Method == http.MethodPost:
		s.mu.Lock()
		s.counts = map[string]int64{}
		s.mu.Unlock()
		s.n.Store(0)
		w.WriteHeader(http.StatusNoContent)
		return
	case r.URL.Path == "/_fault/stats":
		s.mu.Lock()
		st := stats{Mode: s.mode, ByStatus: map[string]int64{}, InFlight: s.inflight.Load()}
		for k, v := range s.counts {
			st.ByStatus[k] = v
			st.Requests += v
		}
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
		return
	}
	s.inflight.Add(1)
	defer s.inflight.Add(-1)
	n := s.n.Add(1)
	s.mu.Lock()
	mode := s.mode
	s.mu.Unlock()
	status := http.StatusOK
	switch mode {
	case modeFail:
		status = http.StatusServiceUnavailable
	case modeFlaky:
		if n%2 == 0 {
			status = http.StatusServiceUnavailable
		}
	case modeHang:
		s.count("hang")
		select {
		case <-r.Context().Done():
		case <-s.stop:
		}
		return
	}
	s.count(http.StatusText(status))
	if status != http.StatusOK {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(`{"type":"https://day-trade.dev/problems/unavailable","title":"Service Unavailable","status":503,"detail":"faultfn: injected failure","code":"unavailable"}`))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"models":[],"fault":"ok"}`))
}

func (s *server) count(k string) {
	s.mu.Lock()
	s.counts[k]++
	s.mu.Unlock()
}
