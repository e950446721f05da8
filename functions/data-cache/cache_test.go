package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func TestStatsAndClear(t *testing.T) {
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	keys := store.NewKeys("data")
	// Fill the cache the way data-stocks does, through the same package.
	filler := marketcache.New(rdb, keys, market.ProviderFunc(func(context.Context, market.Query) ([]market.Bar, error) {
		return []market.Bar{{Time: time.Unix(0, 0), Close: 1}}, nil
	}), "synthetic")
	for _, s := range []string{"7203.T", "6758.T"} {
		for range 2 {
			if _, _, err := filler.Bars(context.Background(), market.Query{Symbol: s, Period: "1mo", Interval: "1d"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	h := newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), marketcache.New(rdb, keys, nil, ""))

	do := func(method, target string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(method, target, nil))
		return w
	}
	w := do("GET", "/api/v1/data/cache")
	var s marketcache.Stats
	if err := json.Unmarshal(w.Body.Bytes(), &s); err != nil || w.Code != 200 {
		t.Fatalf("GET: %d %s", w.Code, w.Body)
	}
	if s.Entries != 2 || s.HitRate != 0.5 || s.SizeBytes == 0 || s.TTLAverageSeconds <= 0 {
		t.Fatalf("stats %+v", s)
	}
	if w := do("DELETE", "/api/v1/data/cache?pattern=7203.T"); w.Code != 200 || !json.Valid(w.Body.Bytes()) {
		t.Fatalf("DELETE: %d %s", w.Code, w.Body)
	}
	if w := do("DELETE", "/api/v1/data/cache?pattern=a:b"); w.Code != http.StatusBadRequest {
		t.Fatalf("bad pattern: %d %s", w.Code, w.Body)
	}
	if w := do("PUT", "/api/v1/data/cache"); w.Code != http.StatusMethodNotAllowed {
		t.Fatalf("PUT: %d", w.Code)
	}
	_ = json.Unmarshal(do("GET", "/api/v1/data/cache").Body.Bytes(), &s)
	if s.Entries != 1 {
		t.Fatalf("after clearing one symbol: %+v", s)
	}
	srv.Kill()
	if w := do("GET", "/api/v1/data/cache"); w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("redis down: %d %v", w.Code, w.Header())
	}
}
