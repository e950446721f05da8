package gateway_test

import (
	"context"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/httpx"
)

func nextUTCMonth(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, time.UTC)
}

func nextUTCDay(t time.Time) time.Time {
	return t.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
}

// quotaRefused checks a quota's 429: problem+json naming the quota, and Retry-After until the
// period resets (next is computed from the times before and after the call, so that a test
// running across midnight still passes).
func quotaRefused(t testing.TB, resp *http.Response, before time.Time, next func(time.Time) time.Time, what string) {
	t.Helper()
	after := time.Now()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429 (%s)", resp.StatusCode, what)
	}
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil {
		t.Fatalf("Retry-After %q", resp.Header.Get("Retry-After"))
	}
	near := func(at time.Time) bool {
		return math.Abs(float64(secs)-next(at).Sub(at).Seconds()) <= 2
	}
	if !near(before) && !near(after) {
		t.Fatalf("Retry-After %ds; want until %s", secs, next(after))
	}
	p := decodeProblem(t, resp)
	if p.Code != httpx.CodeRateLimited || p.Type != "https://day-trade.dev/problems/rate_limited" || !strings.Contains(p.Detail, what) {
		t.Fatalf("problem %+v", p)
	}
}

func TestMonthlyQuota(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	h := newHarness(t, dial, gateway.Config{MonthlyQuota: 3}, nil)
	for i := range 3 {
		resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key)
		if resp.StatusCode != 200 {
			t.Fatalf("call %d: %d", i, resp.StatusCode)
		}
		if got, want := resp.Header.Get("X-Quota-Monthly-Remaining"), strconv.Itoa(2-i); got != want || resp.Header.Get("X-Quota-Monthly-Limit") != "3" {
			t.Fatalf("call %d: monthly remaining %q limit %q, want %s of 3", i, got, resp.Header.Get("X-Quota-Monthly-Limit"), want)
		}
		if resp.Header.Get("X-Quota-Limit") != "" {
			t.Fatal("a daily quota header without a daily quota")
		}
	}
	before := time.Now()
	resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key)
	if resp.Header.Get("X-Quota-Monthly-Remaining") != "0" {
		t.Errorf("monthly remaining %q", resp.Header.Get("X-Quota-Monthly-Remaining"))
	}
	quotaRefused(t, resp, before, nextUTCMonth, "monthly quota of 3")
	// Per caller and per route: another key, and another route, are untouched.
	if resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.newKey(t, "t1", "viewer")); resp.StatusCode != 200 {
		t.Fatalf("other key: %d", resp.StatusCode)
	}
	if resp := h.do(t, "DELETE", "/api/v1/data/cache", h.key); resp.StatusCode != 200 {
		t.Fatalf("other route: %d", resp.StatusCode)
	}
	// The counter is a Redis key of its own, apart from the rate-limit cells, and outlives
	// the month it counts only by a bounded margin.
	ctx := context.Background()
	month := time.Now().UTC().Format("2006-01")
	keys, err := h.rdb.Keys(ctx, gateway.Keys.Pattern("quota:*:"+month)).Result()
	if err != nil || len(keys) != 3 {
		t.Fatalf("monthly quota keys %v (%v); want one per caller and route", keys, err)
	}
	for _, k := range keys {
		if ttl := h.rdb.TTL(ctx, k).Val(); ttl < 31*24*time.Hour || ttl > 62*24*time.Hour {
			t.Errorf("%s expires in %v", k, ttl)
		}
	}
}

// TestQuotasAreCountedApart configures both quotas on one route (per route, as the routes
// file does): a call refused by one quota does not use up the other.
func TestQuotasAreCountedApart(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	routes := slices.Clone(defaultRoutes)
	routes[0].DailyQuota, routes[0].MonthlyQuota = 3, 2 // GET /api/v1/data/stocks/{symbol}
	h := newHarness(t, dial, gateway.Config{}, routes)

	for i := range 2 {
		if resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key); resp.StatusCode != 200 {
			t.Fatalf("call %d: %d", i, resp.StatusCode)
		}
	}
	for i := range 2 { // refused by the month: the day keeps its third call
		before := time.Now()
		resp := h.do(t, "GET", "/api/v1/data/stocks/X", h.key)
		if resp.Header.Get("X-Quota-Remaining") != "1" || resp.Header.Get("X-Quota-Monthly-Remaining") != "0" {
			t.Fatalf("refusal %d: daily remaining %q, monthly %q; want 1 and 0", i,
				resp.Header.Get("X-Quota-Remaining"), resp.Header.Get("X-Quota-Monthly-Remaining"))
		}
		quotaRefused(t, resp, before, nextUTCMonth, "monthly quota of 2")
	}
	if resp := h.do(t, "DELETE", "/api/v1/data/cache", h.key); resp.StatusCode != 200 || resp.Header.Get("X-Quota-Limit") != "" {
		t.Fatalf("a route without quotas: %d, X-Quota-Limit %q", resp.StatusCode, resp.Header.Get("X-Quota-Limit"))
	}

	// The other way round, from the gateway's defaults: refused by the day, the month keeps
	// its calls.
	h2 := newHarness(t, dial, gateway.Config{DailyQuota: 1, MonthlyQuota: 5}, nil)
	if resp := h2.do(t, "GET", "/api/v1/data/stocks/X", h2.key); resp.StatusCode != 200 || resp.Header.Get("X-Quota-Monthly-Remaining") != "4" {
		t.Fatalf("first call: %d, monthly remaining %q", resp.StatusCode, resp.Header.Get("X-Quota-Monthly-Remaining"))
	}
	for i := range 2 {
		before := time.Now()
		resp := h2.do(t, "GET", "/api/v1/data/stocks/X", h2.key)
		if resp.Header.Get("X-Quota-Remaining") != "0" || resp.Header.Get("X-Quota-Monthly-Remaining") != "4" {
			t.Fatalf("refusal %d: daily remaining %q, monthly %q; want 0 and 4", i,
				resp.Header.Get("X-Quota-Remaining"), resp.Header.Get("X-Quota-Monthly-Remaining"))
		}
		quotaRefused(t, resp, before, nextUTCDay, "daily quota of 1")
	}
}
