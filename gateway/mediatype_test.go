package gateway_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/runtime"
)

type orderRequest struct {
	Symbol string `json:"symbol"`
	Qty    int    `json:"qty"`
}

// jsonFunction is a function as every function is built: shared/runtime's handler around a
// handler that decodes its body with httpx.Decode and answers errors with httpx.WriteError.
func jsonFunction(t testing.TB) string {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := httpx.Decode[orderRequest](w, r, 0)
		if err != nil {
			httpx.WriteError(w, r, nil, err)
			return
		}
		_ = httpx.Encode(w, http.StatusOK, req)
	})
	srv := httptest.NewServer(runtime.NewHandler(config.Runtime{MaxBodyBytes: 1 << 20},
		runtime.Function{Handler: h}, nil, slog.New(slog.DiscardHandler), nil))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// TestWrongContentTypeIs415 checks that a JSON route's 415 reaches the client through the
// gateway as the function wrote it: problem+json with the stable type, the gateway's request
// id, and no harm to the function's breaker. Content types are the functions' to judge (they
// alone know what a route accepts; httpx.Decode is where JSON routes judge them); the gateway
// passes the answer on.
func TestWrongContentTypeIs415(t *testing.T) {
	t.Parallel()
	cfg := gateway.Config{}
	cfg.Breaker.MinRequests = 3
	h := newHarness(t, jsonFunction(t), cfg, nil)
	const body = `{"symbol":"7203.T","qty":100}`
	tests := map[string]struct {
		method, path, contentType string
		want                      int
	}{
		"text/plain, non-idempotent": {"POST", "/api/v1/orders", "text/plain", 415},
		"form, non-idempotent":       {"POST", "/api/v1/orders", "application/x-www-form-urlencoded", 415},
		"xml, idempotent":            {"DELETE", "/api/v1/data/cache", "application/xml", 415},
		"malformed media type":       {"POST", "/api/v1/orders", "application/json; =broken", 415},
		"json with charset":          {"POST", "/api/v1/orders", "application/json; charset=utf-8", 200},
		"a +json type":               {"POST", "/api/v1/orders", "application/vnd.daytrade+json", 200},
		"json, idempotent":           {"DELETE", "/api/v1/data/cache", "application/json", 200},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.srv.URL+tc.path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+h.key)
			req.Header.Set("Content-Type", tc.contentType)
			req.Header.Set(httpx.RequestIDHeader, "ct-"+strings.ReplaceAll(name, " ", "-"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tc.want {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, b, tc.want)
			}
			if tc.want != 415 {
				return
			}
			p := decodeProblem(t, resp)
			if p.Type != "https://day-trade.dev/problems/unsupported_media" || p.Code != httpx.CodeUnsupported ||
				p.Status != 415 || !strings.Contains(p.Detail, "not JSON") || p.RequestID != req.Header.Get(httpx.RequestIDHeader) {
				t.Fatalf("problem %+v", p)
			}
		})
	}
	// Seven calls, four of them 415s, with a breaker that trips after three failures: a 4xx
	// is the client's, so the function is still reachable.
	resp := h.do(t, "DELETE", "/api/v1/data/cache", h.key)
	if resp.StatusCode != 400 { // no body: the function's own 400, not a 503 from an open breaker
		t.Fatalf("after the 415s: %d", resp.StatusCode)
	}
}
