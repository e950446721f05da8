package tests

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/store"
)

// DevKey waits for the key the gateway creates in local mode (it is in Redis at
// gateway.DevKeyRedisKey) and returns it; e2e requests through the gateway need it.
func DevKey(t *testing.T, e env) string {
	t.Helper()
	rdb, err := store.Open(e.redis.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	var key string
	waitFor(t, "the gateway's development key", func() bool {
		key, err = rdb.Get(context.Background(), gateway.DevKeyRedisKey).Result()
		return err == nil && key != ""
	})
	return key
}

func (e env) call(t *testing.T, method, path, key, body string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.p.GatewayURL()+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestGatewayAuthenticatesThroughThePlatform runs the real gateway binary in local mode:
// without a key it answers 401 with WWW-Authenticate; the development key (admin, trader)
// reaches a cold function; an admin-created viewer key works until it is revoked.
func TestGatewayAuthenticatesThroughThePlatform(t *testing.T) {
	e := startPlatform(t, time.Minute)
	resp, b := e.call(t, "GET", "/api/v1/data/stocks/7203.T", "", "")
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" || resp.Header.Get("Content-Type") != httpx.ProblemContentType {
		t.Fatalf("no key: %d %s", resp.StatusCode, b)
	}
	dev := DevKey(t, e)
	if !strings.HasPrefix(dev, "dt_local_") {
		t.Fatalf("dev key %q", dev)
	}
	resp, b = e.call(t, "GET", "/api/v1/data/stocks/7203.T?period=1mo&interval=1d", dev, "")
	if resp.StatusCode != 200 || resp.Header.Get("X-Ratelimit-Limit") == "" {
		t.Fatalf("dev key: %d %s", resp.StatusCode, b)
	}
	resp, b = e.call(t, "POST", "/api/v1/gateway/keys", dev, `{"owner":"e2e","roles":["viewer"]}`)
	if resp.StatusCode != 201 {
		t.Fatalf("create key: %d %s", resp.StatusCode, b)
	}
	var created gateway.KeyCreated
	if err := json.Unmarshal(b, &created); err != nil {
		t.Fatal(err)
	}
	if resp, b := e.call(t, "GET", "/api/v1/data/stocks/6758.T", created.Key, ""); resp.StatusCode != 200 {
		t.Fatalf("viewer key: %d %s", resp.StatusCode, b)
	}
	if resp, _ := e.call(t, "DELETE", "/api/v1/data/cache", created.Key, ""); resp.StatusCode != 403 {
		t.Fatalf("viewer deleting the cache: %d", resp.StatusCode)
	}
	if resp, b := e.call(t, "DELETE", "/api/v1/gateway/keys/"+created.Record.ID, dev, ""); resp.StatusCode != 200 {
		t.Fatalf("revoke: %d %s", resp.StatusCode, b)
	}
	// Revocation reaches the gateway's in-process key cache within API_KEY_CACHE_TTL (5s).
	waitFor(t, "the revoked key refused", func() bool {
		resp, _ := e.call(t, "GET", "/api/v1/data/stocks/6758.T", created.Key, "")
		return resp.StatusCode == 401
	})
	resp, b = e.call(t, "GET", "/api/v1/gateway/sla", dev, "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), "/api/v1/data/stocks/{symbol}") {
		t.Fatalf("sla: %d %s", resp.StatusCode, b)
	}
}
