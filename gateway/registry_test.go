package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/gateway/registry"
	"github.com/day-trade/platform/shared/httpx"
)

// TestRegistryAdminNeedsAdmin: every registry route answers 401 without a key and 403 to a
// caller without the admin role, and does nothing for them.
func TestRegistryAdminNeedsAdmin(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{})
	a := startServer(t, "a", nil)
	trader := h.newKey(t, "t1", "trader", "viewer")
	body := `{"url":"` + a.url() + `"}`
	routes := []struct{ method, path, body string }{
		{"GET", "/api/v1/gateway/upstreams", ""},
		{"GET", "/api/v1/gateway/upstreams/data-stocks/instances", ""},
		{"POST", "/api/v1/gateway/upstreams/data-stocks/instances", body},
		{"DELETE", "/api/v1/gateway/upstreams/data-stocks/instances/x", ""},
	}
	for _, rt := range routes {
		if resp := h.call(t, rt.method, rt.path, "", rt.body); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s %s without a key: %d", rt.method, rt.path, resp.StatusCode)
		}
		resp := h.call(t, rt.method, rt.path, trader, rt.body)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s %s as trader: %d", rt.method, rt.path, resp.StatusCode)
		}
		decodeProblem(t, resp)
	}
	if u := h.upstream(t, "data-stocks"); u.Source != "catalog" {
		t.Fatalf("a refused caller registered an instance: %+v", u)
	}
}

func TestRegistryAdminLifecycle(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{})
	a := startServer(t, "a", nil)
	id := h.register(t, a, 2, 60)
	if id != registry.IDFor(a.url()) {
		t.Fatalf("id %q", id)
	}
	resp := h.call(t, "GET", "/api/v1/gateway/upstreams/data-stocks/instances", h.key, "")
	var list struct {
		Upstream  string
		Instances []gateway.InstanceView
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 {
		t.Fatalf("list: %d %v", resp.StatusCode, err)
	}
	if len(list.Instances) != 1 || list.Instances[0].URL != a.url() || list.Instances[0].Weight != 2 || list.Instances[0].State != "healthy" || list.Instances[0].ExpiresAt == nil {
		t.Fatalf("instances %+v", list.Instances)
	}
	h.get(t, "/api/v1/data/stocks/7203.T", 2)
	if a.hits.Load() != 2 {
		t.Fatalf("a served %d of 2", a.hits.Load())
	}
	if resp := h.call(t, "DELETE", "/api/v1/gateway/upstreams/data-stocks/instances/"+id, h.key, ""); resp.StatusCode != 200 {
		t.Fatalf("deregister: %d", resp.StatusCode)
	}
	// This replica stops at once, without waiting for its next poll.
	h.get(t, "/api/v1/data/stocks/7203.T", 2)
	if a.hits.Load() != 2 || h.catalog.hits.Load() != 2 {
		t.Fatalf("after deregister: a %d, catalog %d", a.hits.Load(), h.catalog.hits.Load())
	}
	resp = h.call(t, "DELETE", "/api/v1/gateway/upstreams/data-stocks/instances/"+id, h.key, "")
	if resp.StatusCode != 404 {
		t.Fatalf("second deregister: %d", resp.StatusCode)
	}
	decodeProblem(t, resp)
}

func TestRegistryAdminBadInput(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{})
	cases := []struct {
		name, path, body string
		status           int
		field            string
	}{
		{"unknown upstream", "/api/v1/gateway/upstreams/no-such-fn/instances", `{"url":"http://127.0.0.1:1"}`, 404, ""},
		{"not json", "/api/v1/gateway/upstreams/data-stocks/instances", `{"url":`, 400, ""},
		{"unknown field", "/api/v1/gateway/upstreams/data-stocks/instances", `{"url":"http://127.0.0.1:1","host":"x"}`, 400, ""},
		{"weight", "/api/v1/gateway/upstreams/data-stocks/instances", `{"url":"http://127.0.0.1:1","weight":5000}`, 400, "weight"},
		{"ttl", "/api/v1/gateway/upstreams/data-stocks/instances", `{"url":"http://127.0.0.1:1","ttl_seconds":-1}`, 400, "ttl_seconds"},
		{"id", "/api/v1/gateway/upstreams/data-stocks/instances", `{"url":"http://127.0.0.1:1","id":"../x"}`, 400, "id"},
		{"host", "/api/v1/gateway/upstreams/data-stocks/instances", `{"url":"http://example.com"}`, 422, "url"},
		{"path", "/api/v1/gateway/upstreams/data-stocks/instances", `{"url":"http://127.0.0.1:1/admin"}`, 422, "url"},
		{"scheme", "/api/v1/gateway/upstreams/data-stocks/instances", `{"url":"file:///etc/passwd"}`, 422, "url"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := h.call(t, "POST", c.path, h.key, c.body)
			if resp.StatusCode != c.status {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			p := decodeProblem(t, resp)
			if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
				t.Fatalf("problem %+v: want an error on %s", p, c.field)
			}
		})
	}
}

// TestRegistryRefusesMetadataSSRF: registering the cloud metadata address is refused with
// 422 even when the allowed hosts are "*", an entry written straight into Redis behind the
// API's back is ignored by the gateway, and nothing is ever sent there.
func TestRegistryRefusesMetadataSSRF(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{Registry: gateway.RegistryConfig{AllowedHosts: []string{"*"}}})
	for _, u := range []string{"http://169.254.169.254/", "http://169.254.169.254:80", "http://[::ffff:a9fe:a9fe]/", "http://metadata.google.internal/", "http://127.0.0.1:6379"} {
		resp := h.call(t, "POST", "/api/v1/gateway/upstreams/data-stocks/instances", h.key, `{"url":"`+u+`"}`)
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("%s: status %d, want 422", u, resp.StatusCode)
		}
		if p := decodeProblem(t, resp); p.Code != httpx.CodeUnprocessable {
			t.Fatalf("%s: problem %+v", u, p)
		}
	}
	// Something with Redis access writes the entry directly: the gateway must still refuse it.
	if _, err := registry.New(h.rdb, gateway.Keys).Register(context.Background(), "data-stocks",
		registry.Instance{URL: "http://169.254.169.254", ID: "evil"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := h.g.RefreshRegistry(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.get(t, "/api/v1/data/stocks/7203.T", 5)
	if h.catalog.hits.Load() != 5 {
		t.Fatalf("catalog served %d of 5", h.catalog.hits.Load())
	}
	resp := h.call(t, "GET", "/api/v1/gateway/upstreams/data-stocks/instances", h.key, "")
	var list struct{ Instances []gateway.InstanceView }
	_ = json.NewDecoder(resp.Body).Decode(&list)
	if len(list.Instances) != 1 || list.Instances[0].State != "refused" {
		t.Fatalf("instances %+v: want the planted entry shown as refused", list.Instances)
	}
	if h.sent.any(func(host string) bool {
		return strings.HasPrefix(host, "169.254.") || strings.Contains(host, "metadata")
	}) {
		t.Fatal("a request was sent to the metadata address")
	}
	if !strings.Contains(h.log.String(), `"msg":"registry entry refused; not routing to it"`) {
		t.Fatal("no log line for the refused entry")
	}
}

// TestRegistryKeepsInstancesWhileRedisIsDown: a failed registry read keeps the instances in
// force instead of dropping back to the catalog host.
func TestRegistryKeepsInstancesWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	h := newLB(t, gateway.Config{Registry: gateway.RegistryConfig{Poll: time.Hour}})
	a := startServer(t, "a", nil)
	h.register(t, a, 1, 60)
	h.redis.Kill()
	if err := h.g.RefreshRegistry(context.Background()); err == nil {
		t.Fatal("a read from a dead Redis succeeded")
	}
	h.redis.Restart() // empty: the registration is gone, and so are the keys
	h.key = h.newKey(t, "t1", "admin")
	if u := h.upstream(t, "data-stocks"); u.Source != "registry" || len(u.Instances) != 1 {
		t.Fatalf("after a failed read: %+v", u)
	}
	if !strings.Contains(h.log.String(), `"msg":"registry unreachable; keeping the upstream instances in force"`) {
		t.Fatal("no log line for the unreachable registry")
	}
	if err := h.g.RefreshRegistry(context.Background()); err != nil {
		t.Fatal(err)
	}
	if u := h.upstream(t, "data-stocks"); u.Source != "catalog" {
		t.Fatalf("after a successful read of the empty registry: %+v", u)
	}
}
