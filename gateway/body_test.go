package gateway_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/resilience"
	"github.com/day-trade/platform/shared/runtime"
)

const (
	testBodyLimit   = 64 << 10
	problemTooLarge = "https://day-trade.dev/problems/too_large"
)

// bodyChains are the two ways the gateway is served in these tests: on its own, so that it
// must enforce the limit itself, and behind shared/runtime's handler with the same limit,
// as main runs it.
var bodyChains = map[string]func(http.Handler) http.Handler{
	"gateway": httpx.RequestID,
	"runtime": func(g http.Handler) http.Handler {
		rt := config.Runtime{MaxBodyBytes: testBodyLimit}
		return runtime.NewHandler(rt, runtime.Function{Handler: g, OwnMetrics: true}, nil, slog.New(slog.DiscardHandler), nil)
	},
}

// received records what the upstream got: every request's method, path and whole body, and
// whether reading the body failed (a truncated body).
type received struct {
	mu    sync.Mutex
	calls []receivedCall
}

type receivedCall struct {
	method, path string
	body         []byte
	err          error
}

func (rc *received) handler(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	rc.mu.Lock()
	rc.calls = append(rc.calls, receivedCall{r.Method, r.URL.Path, b, err})
	rc.mu.Unlock()
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	_, _ = io.WriteString(w, `{"ok":true}`)
}

func (rc *received) snapshot() []receivedCall {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]receivedCall(nil), rc.calls...)
}

// chunked hides a reader's length, so that the client sends it with Transfer-Encoding: chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

// send makes one request with body, chunked when asked, with key as a bearer API key.
func send(t testing.TB, base, method, path, key string, body []byte, isChunked bool) *http.Response {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if isChunked {
		rd = chunked{bytes.NewReader(body)}
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if isChunked {
		req.ContentLength = -1
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if isChunked && len(body) > 0 && req.TransferEncoding != nil && req.TransferEncoding[0] != "chunked" {
		t.Fatalf("client sent %v, not chunked", req.TransferEncoding)
	}
	return resp
}

func wantTooLarge(t testing.TB, resp *http.Response) {
	t.Helper()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d (%s), want 413", resp.StatusCode, b)
	}
	p := decodeProblem(t, resp)
	if p.Type != problemTooLarge || p.Code != httpx.CodeTooLarge || p.Status != 413 || p.Detail == "" {
		t.Fatalf("problem %+v", p)
	}
}

// TestOversizedBodyIs413 sends bodies over the limit, with and without Content-Length, to a
// non-idempotent route, an idempotent one and an unknown path: the client gets 413
// problem+json and the function never sees any of them, truncated or whole.
func TestOversizedBodyIs413(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	big := bytes.Repeat([]byte("x"), 4*testBodyLimit)
	tests := map[string]struct {
		method, path string
		chunked      bool
	}{
		"content-length, non-idempotent": {"POST", "/api/v1/orders", false},
		"chunked, non-idempotent":        {"POST", "/api/v1/orders", true},
		"content-length, idempotent":     {"DELETE", "/api/v1/data/cache", false},
		"chunked, idempotent":            {"DELETE", "/api/v1/data/cache", true},
		"chunked, idempotent GET":        {"GET", "/api/v1/data/stocks/X", true},
		"content-length, unknown path":   {"POST", "/api/v1/nope", false},
		"content-length, admin route":    {"POST", "/api/v1/gateway/keys", false},
		"chunked, admin route":           {"POST", "/api/v1/gateway/keys", true},
	}
	for chain, wrap := range bodyChains {
		for name, tc := range tests {
			t.Run(chain+"/"+name, func(t *testing.T) {
				var rc received
				dial := upstream(t, rc.handler)
				h := newHarnessWrapped(t, rs, dial, gateway.Config{MaxBodyBytes: testBodyLimit}, nil, wrap)
				wantTooLarge(t, send(t, h.srv.URL, tc.method, tc.path, h.key, big, tc.chunked))
				if calls := rc.snapshot(); len(calls) != 0 {
					t.Fatalf("the function received %d calls, the first with %d bytes (err %v)", len(calls), len(calls[0].body), calls[0].err)
				}
			})
		}
	}
}

// TestBodyAtTheLimitPasses: a body of exactly the limit reaches the function whole, chunked
// or not, on either kind of route.
func TestBodyAtTheLimitPasses(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	body := bytes.Repeat([]byte("y"), testBodyLimit)
	for chain, wrap := range bodyChains {
		for _, path := range []string{"/api/v1/orders", "/api/v1/data/cache"} {
			for _, isChunked := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s%s/chunked=%v", chain, path, isChunked), func(t *testing.T) {
					var rc received
					dial := upstream(t, rc.handler)
					h := newHarnessWrapped(t, rs, dial, gateway.Config{MaxBodyBytes: testBodyLimit}, nil, wrap)
					method := map[string]string{"/api/v1/orders": "POST", "/api/v1/data/cache": "DELETE"}[path]
					if resp := send(t, h.srv.URL, method, path, h.key, body, isChunked); resp.StatusCode != 200 {
						t.Fatalf("status %d", resp.StatusCode)
					}
					calls := rc.snapshot()
					if len(calls) != 1 || calls[0].err != nil || !bytes.Equal(calls[0].body, body) {
						t.Fatalf("the function received %d calls; want one with the whole body", len(calls))
					}
				})
			}
		}
	}
}

// TestOversizedBodiesLeaveTheBreakerClosed: a client's oversized bodies are its own fault.
// Fifty of them from one key must not open the function's breaker (it trips after 5 failures
// here) for everybody, and the next normal request goes through.
func TestOversizedBodiesLeaveTheBreakerClosed(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	big := bytes.Repeat([]byte("x"), 2*testBodyLimit)
	for chain, wrap := range bodyChains {
		t.Run(chain, func(t *testing.T) {
			var rc received
			dial := upstream(t, rc.handler)
			var bc breakerChanges
			cfg := gateway.Config{MaxBodyBytes: testBodyLimit, Breaker: bc.settings(5)}
			h := newHarnessWrapped(t, rs, dial, cfg, nil, wrap)
			for i := range 50 {
				path, method := "/api/v1/orders", "POST"
				if i%2 == 1 {
					path, method = "/api/v1/data/cache", "DELETE"
				}
				wantTooLarge(t, send(t, h.srv.URL, method, path, h.key, big, true))
			}
			other := h.newKey(t, "t2", "trader")
			if resp := send(t, h.srv.URL, "POST", "/api/v1/orders", other, []byte(`{"qty":100}`), false); resp.StatusCode != 200 {
				t.Fatalf("normal request after the oversized ones: %d", resp.StatusCode)
			}
			if calls := rc.snapshot(); len(calls) != 1 || string(calls[0].body) != `{"qty":100}` {
				t.Fatalf("the function received %d calls; want only the normal one", len(calls))
			}
			if changes := bc.list(); len(changes) != 0 {
				t.Fatalf("breaker changed state: %v", changes)
			}
		})
	}
}

// TestAbortedBodyIsNotAnUpstreamFailure: clients that promise a Content-Length and hang up
// halfway make the function see a broken body; that is not the function failing, so the
// breaker stays closed.
func TestAbortedBodyIsNotAnUpstreamFailure(t *testing.T) {
	t.Parallel()
	started := make(chan struct{}, 1)
	var rc received
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Abort") != "" {
			started <- struct{}{}
		}
		rc.handler(w, r)
	})
	var bc breakerChanges
	cfg := gateway.Config{MaxBodyBytes: testBodyLimit, Breaker: bc.settings(3)}
	h := newHarness(t, dial, cfg, nil)
	addr := strings.TrimPrefix(h.srv.URL, "http://")
	const aborted = 10
	for range aborted {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /api/v1/orders HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nX-Abort: 1\r\n"+
			"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"qty\":", addr, h.key)
		select { // the function is reading the body: hang up halfway
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("the request never reached the function")
		}
		conn.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(rc.snapshot()) < aborted {
		if time.Now().After(deadline) {
			t.Fatalf("the function finished %d of %d aborted calls", len(rc.snapshot()), aborted)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range rc.snapshot() {
		if c.err == nil {
			t.Fatalf("the function read a whole body of %d bytes from an aborted call", len(c.body))
		}
	}
	if resp := send(t, h.srv.URL, "POST", "/api/v1/orders", h.key, []byte(`{"qty":1}`), false); resp.StatusCode != 200 {
		t.Fatalf("normal request after the aborted ones: %d", resp.StatusCode)
	}
	if changes := bc.list(); len(changes) != 0 {
		t.Fatalf("breaker changed state: %v", changes)
	}
}

// breakerChanges records an upstream breaker's state changes.
type breakerChanges struct {
	mu      sync.Mutex
	changes []string
}

// settings are breaker settings that open after minRequests and report to bc.
func (bc *breakerChanges) settings(minRequests uint32) resilience.BreakerSettings {
	return resilience.BreakerSettings{MinRequests: minRequests, OpenFor: time.Minute,
		OnStateChange: func(name string, from, to resilience.State) {
			bc.mu.Lock()
			bc.changes = append(bc.changes, name+": "+from.String()+" → "+to.String())
			bc.mu.Unlock()
		}}
}

func (bc *breakerChanges) list() []string {
	bc.mu.Lock()
	defer bc.mu.Unlock()
	return slices.Clone(bc.changes)
}
