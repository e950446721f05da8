//go:build unix

package local_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/day-trade/platform/knative/local"
)

// takenPicker hands out a port another process holds for its next `left` picks, then free
// ports: the race between the platform's pick and the child's bind, lost on purpose.
type takenPicker struct {
	taken  int
	left   atomic.Int64
	handed atomic.Int64 // picks that got the taken port
}

func (pk *takenPicker) pick() (int, error) {
	if pk.left.Add(-1) >= 0 {
		pk.handed.Add(1)
		return pk.taken, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// impostor is another process's server on the port: it answers liveness as a live
// shared/runtime function with its own pid (the test's, not the child's), and counts the
// requests that were meant for the function.
type impostor struct {
	port      int
	liveness  atomic.Int64
	misrouted atomic.Int64
}

func startImpostor(t *testing.T) *impostor {
	t.Helper()
	im := &impostor{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health/liveness" {
			im.liveness.Add(1)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": "alive", "pid": os.Getpid(), "service": "impostor"})
			return
		}
		im.misrouted.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]any{"service": "impostor", "pid": os.Getpid()})
	}))
	t.Cleanup(srv.Close)
	im.port = srv.Listener.Addr().(*net.TCPAddr).Port
	return im
}

// holdSilently holds a port and closes every connection unanswered: the child cannot bind
// and exits, and the probe learns nothing from the port.
func holdSilently(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestColdStartOnATakenPortMovesToAnother: a scale-to-zero function whose picked port was
// taken before it could bind still starts, on another port, and its requests reach it and
// nothing else.
func TestColdStartOnATakenPortMovesToAnother(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		hold     func(t *testing.T) (port int, im *impostor)
		impostor bool
	}{
		"another process answers liveness": {hold: func(t *testing.T) (int, *impostor) {
			im := startImpostor(t)
			return im.port, im
		}},
		"the child exits, address in use": {hold: func(t *testing.T) (int, *impostor) {
			return holdSilently(t), nil
		}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			taken, im := tc.hold(t)
			pk := &takenPicker{taken: taken}
			p := startPlatform(t, local.WithPortPicker(local.Options{}, pk.pick))
			pk.left.Store(1) // armed after the warm services started: the next pick is echo's

			e := mustEcho(t, p, "echo", "/")
			if e.Service != "echo" || e.PID != p.Pid("echo") {
				t.Errorf("echo request answered by %s pid %d, want echo pid %d", e.Service, e.PID, p.Pid("echo"))
			}
			if pk.handed.Load() != 1 {
				t.Fatalf("the taken port was handed out %d times, want 1", pk.handed.Load())
			}
			if e.Env["PORT"] == strconv.Itoa(taken) {
				t.Errorf("echo runs on the taken port %d", taken)
			}
			if n := len(p.ColdStarts("echo")); n != 1 {
				t.Errorf("cold starts = %d, want 1", n)
			}
			if im != nil {
				if im.liveness.Load() == 0 {
					t.Error("the impostor was never probed: the test did not lose the race")
				}
				if n := im.misrouted.Load(); n != 0 {
					t.Errorf("%d requests for echo reached the impostor", n)
				}
			}
		})
	}
}

// TestColdStartGivesUpAfterBoundedAttempts: when every picked port is taken, a start fails
// after LaunchAttempts tries instead of looping, and nothing is routed to the impostor.
func TestColdStartGivesUpAfterBoundedAttempts(t *testing.T) {
	t.Parallel()
	im := startImpostor(t)
	pk := &takenPicker{taken: im.port}
	p := startPlatform(t, local.WithPortPicker(local.Options{}, pk.pick))
	pk.left.Store(1 << 20)

	resp, body := call(t, p, "echo", "/")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503: %s", resp.StatusCode, body)
	}
	if got := pk.handed.Load(); got != local.LaunchAttempts {
		t.Errorf("%d starts, want %d", got, local.LaunchAttempts)
	}
	if p.Running("echo") {
		t.Error("echo marked running")
	}
	if n := im.misrouted.Load(); n != 0 {
		t.Errorf("%d requests for echo reached the impostor", n)
	}
}
