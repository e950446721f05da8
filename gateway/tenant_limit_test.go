package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/gateway"
)

// A tenant limit holds all of a tenant's keys together: a second key of the same tenant gets
// what the first left of the tenant's cell, not a budget of its own, while another tenant's
// key is untouched. Without the tenant limit the same two keys get their own budgets each.
func TestTenantRateLimitHoldsAcrossKeys(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	perKey := gateway.Limit{Rate: 5, Burst: 5, Period: time.Minute}
	perTenant := gateway.Limit{Rate: 6, Burst: 6, Period: time.Minute}
	const path = "/api/v1/data/stocks/X"
	count := func(h *harness, key string, n int) (ok int, last *http.Response) {
		for i := 0; i < n; i++ {
			last = h.do(t, "GET", path, key)
			if last.StatusCode == http.StatusOK {
				ok++
			}
		}
		return ok, last
	}

	h := newHarness(t, dial, gateway.Config{RateLimit: perKey, TenantRateLimit: perTenant}, nil)
	a, b, other := h.newKey(t, "t1", "viewer"), h.newKey(t, "t1", "viewer"), h.newKey(t, "t2", "viewer")
	if ok, last := count(h, a, 5); ok != 5 {
		t.Fatalf("first key of t1: %d of 5 admitted (last %d)", ok, last.StatusCode)
	} else if p := last.Header.Get("Ratelimit-Policy"); p != `"default";q=5;w=60, "tenant";q=6;w=60` {
		t.Errorf("RateLimit-Policy %q", p)
	} else if rl := last.Header.Get("Ratelimit"); !strings.Contains(rl, `"tenant";r=1;`) || !strings.Contains(rl, `"default";r=0;`) {
		t.Errorf("RateLimit %q, want the key's 0 and the tenant's 1 left", rl)
	}
	ok, last := count(h, b, 2)
	if ok != 1 || last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("second key of t1: %d admitted, last %d; want 1 (the tenant's 6th) and then 429 with Retry-After", ok, last.StatusCode)
	}
	if p := decodeProblem(t, last); !strings.Contains(p.Detail, "tenant") {
		t.Errorf("refusal detail %q does not say it was the tenant's limit", p.Detail)
	}
	// The key has 3 left, the tenant none: the X- headers follow the tenant's cell.
	if got, rem := last.Header.Get("X-Ratelimit-Limit"), last.Header.Get("X-Ratelimit-Remaining"); got != "6" || rem != "0" {
		t.Errorf("X-RateLimit-Limit %q remaining %q, want the binding (tenant) limit 6 with 0 left", got, rem)
	}
	if ok, _ := count(h, b, 3); ok != 0 {
		t.Fatalf("second key of t1 after the tenant's cell ran out: %d admitted", ok)
	}
	if ok, _ := count(h, other, 5); ok != 5 {
		t.Fatalf("another tenant's key: %d of 5 admitted", ok)
	}

	// The control: the same keys without a tenant limit have 5 each.
	h2 := newHarness(t, dial, gateway.Config{RateLimit: perKey}, nil)
	a2, b2 := h2.newKey(t, "t1", "viewer"), h2.newKey(t, "t1", "viewer")
	if okA, _ := count(h2, a2, 5); okA != 5 {
		t.Fatalf("control, first key: %d", okA)
	}
	if okB, last := count(h2, b2, 5); okB != 5 || last.Header.Get("Ratelimit-Policy") != `"default";q=5;w=60` {
		t.Fatalf("control, second key: %d admitted, policy %q", okB, last.Header.Get("Ratelimit-Policy"))
	}
}
