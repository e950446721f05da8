package gateway_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/httpx"
)

// upstream is a real HTTP server standing in for the platform's activator: it records the
// Host each request named, as Knative's ingress routes by it.
func upstream(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func newGateway(t *testing.T, dial string, timeout time.Duration) *httptest.Server {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	routes := []gateway.Route{
		{Method: "GET", Path: "/api/v1/data/stocks/{symbol}", Function: "data-stocks"},
		{Method: "DELETE", Path: "/api/v1/data/cache", Function: "data-cache"},
	}
	h := gateway.New(gateway.Config{Namespace: "day-trade", UpstreamTimeout: timeout}, log, routes, gateway.NewTransport(dial))
	srv := httptest.NewServer(httpx.RequestID(h))
	t.Cleanup(srv.Close)
	return srv
}

func decodeProblem(t *testing.T, resp *http.Response) httpx.Problem {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != httpx.ProblemContentType {
		t.Fatalf("content type %q, want problem+json", ct)
	}
	var p httpx.Problem
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProxiesByKnativeHost(t *testing.T) {
	t.Parallel()
	var gotHost, gotPath, gotID string
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		gotHost, gotPath, gotID = r.Host, r.URL.RequestURI(), r.Header.Get(httpx.RequestIDHeader)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	gw := newGateway(t, dial, 5*time.Second)
	req, _ := http.NewRequest("GET", gw.URL+"/api/v1/data/stocks/7203.T?period=1mo", nil)
	req.Header.Set(httpx.RequestIDHeader, "req-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if gotHost != "data-stocks.day-trade.svc.cluster.local" {
		t.Errorf("upstream Host = %q", gotHost)
	}
	if gotPath != "/api/v1/data/stocks/7203.T?period=1mo" {
		t.Errorf("upstream path = %q", gotPath)
	}
	if gotID != "req-123" || resp.Header.Get(httpx.RequestIDHeader) != "req-123" {
		t.Errorf("request id not carried: upstream %q, response %q", gotID, resp.Header.Get(httpx.RequestIDHeader))
	}
}

func TestErrorsAreProblems(t *testing.T) {
	t.Parallel()
	// A closed port: the function cannot be reached.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	slow := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	ok := upstream(t, func(w http.ResponseWriter, r *http.Request) {})

	tests := map[string]struct {
		dial, method, path string
		timeout            time.Duration
		want               int
	}{
		"unknown route":       {ok, "GET", "/api/v1/nope", time.Second, 404},
		"outside api":         {ok, "GET", "/admin", time.Second, 404},
		"wrong method":        {ok, "POST", "/api/v1/data/cache", time.Second, 405},
		"function down":       {closed, "GET", "/api/v1/data/stocks/7203.T", time.Second, 503},
		"function too slow":   {slow, "GET", "/api/v1/data/stocks/7203.T", 50 * time.Millisecond, 504},
		"encoded path escape": {ok, "GET", "/api/v1/data/stocks/..%2f..%2fetc", time.Second, 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			gw := newGateway(t, tc.dial, tc.timeout)
			req, _ := http.NewRequest(tc.method, gw.URL+tc.path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if tc.want >= 400 {
				p := decodeProblem(t, resp)
				if p.Status != tc.want || p.Detail == "" || p.RequestID == "" {
					t.Errorf("problem %+v", p)
				}
			}
			if tc.want == 503 && resp.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
		})
	}
}

func TestRoutesFromCatalogCoverEveryRoute(t *testing.T) {
	t.Parallel()
	n := 0
	for _, f := range functions.Catalog() {
		n += len(f.Routes)
	}
	if got := len(gateway.RoutesFromCatalog(functions.Catalog())); got != n || n == 0 {
		t.Fatalf("%d routes from a catalog of %d", got, n)
	}
}
