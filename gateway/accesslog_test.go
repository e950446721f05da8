package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/telemetry"
)

// accessLines decodes the JSON lines written to buf.
func accessLines(t *testing.T, buf *syncBuffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("access line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// The access line says how much of a request's time was the upstream's (upstream_ms, to its
// answer's headers, over every attempt), so that a slow answer can be told apart from a slow
// gateway; a request refused before any upstream call says 0.
func TestAccessLogSaysUpstreamTime(t *testing.T) {
	t.Parallel()
	const delay = 40 * time.Millisecond
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		_, _ = io.WriteString(w, `{"ok":true}`)
	})
	var buf syncBuffer
	h := newHarnessWrapped(t, redistest.Start(t), dial, gateway.Config{}, nil, httpx.RequestID,
		func(d *gateway.Deps) { d.AccessLog = telemetry.NewLogger(&buf, "info") })
	get := func(withKey bool) int {
		req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/data/stocks/7203.T", nil)
		if withKey {
			req.Header.Set("X-API-Key", h.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(true); code != http.StatusOK {
		t.Fatalf("proxied request: %d", code)
	}
	if code := get(false); code != http.StatusUnauthorized {
		t.Fatalf("request without a key: %d", code)
	}
	lines := accessLines(t, &buf)
	if len(lines) != 2 {
		t.Fatalf("%d access lines, want 2: %v", len(lines), lines)
	}
	ok, refused := lines[0], lines[1]
	up, _ := ok["upstream_ms"].(float64)
	total, _ := ok["ms"].(float64)
	if up < float64(delay.Milliseconds()) || total < up {
		t.Errorf("proxied: upstream_ms %v, ms %v; want upstream_ms ≥ %d and ms ≥ upstream_ms", ok["upstream_ms"], ok["ms"], delay.Milliseconds())
	}
	if up, _ := refused["upstream_ms"].(float64); up != 0 || refused["status"] != float64(http.StatusUnauthorized) {
		t.Errorf("refused: %v; want status 401 and upstream_ms 0", refused)
	}
}
