package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

type fixture struct {
	h     http.Handler
	redis *redistest.Server
}

func newFixture(t *testing.T, p market.Provider) fixture {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	cache := marketcache.New(rdb, store.NewKeys("data"), p, "test")
	return fixture{h: newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), cache), redis: srv}
}

func (f fixture) get(t *testing.T, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	f.h.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
	return w
}

func synthetic() market.Provider {
	now := time.Date(2026, 11, 20, 16, 0, 0, 0, market.JST) // a Friday after the close
	return market.NewSynthetic(market.Options{Now: func() time.Time { return now }})
}

func TestStocksBody(t *testing.T) {
	f := newFixture(t, synthetic())
	w := f.get(t, "/api/v1/data/stocks/7203.t?period=3mo&interval=1d&indicators=rsi14,sma20")
	if w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	var resp stocksResponse
	if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Symbol != "7203.T" || resp.Period != "3mo" || resp.Interval != "1d" || resp.CacheHit {
		t.Fatalf("header fields %+v", resp)
	}
	// Three months of TSE business days: about 60, never a weekend.
	if resp.TotalPoints < 55 || resp.TotalPoints > 66 || resp.TotalPoints != len(resp.DataPoints) {
		t.Fatalf("total_points %d, %d data points", resp.TotalPoints, len(resp.DataPoints))
	}
	withRSI := 0
	for i, p := range resp.DataPoints {
		if d := p.Time.In(market.JST).Weekday(); d == time.Saturday || d == time.Sunday {
			t.Errorf("bar on a %s", d)
		}
		if i > 0 && !p.Time.After(resp.DataPoints[i-1].Time) {
			t.Errorf("bars out of order at %d", i)
		}
		if p.Low > p.Open || p.Low > p.Close || p.High < p.Open || p.High < p.Close || p.Low <= 0 {
			t.Errorf("inconsistent bar %+v", p.Bar)
		}
		if v, ok := p.Indicators["rsi14"]; ok {
			withRSI++
			if v < 0 || v > 100 {
				t.Errorf("rsi %v", v)
			}
		}
	}
	// RSI-14 needs 14 changes of warm-up; those points carry no value rather than a fake one.
	if withRSI != resp.TotalPoints-14 {
		t.Errorf("%d points with rsi14 of %d", withRSI, resp.TotalPoints)
	}
	if w := f.get(t, "/api/v1/data/stocks/7203.T?period=3mo&interval=1d"); !strings.Contains(w.Body.String(), `"cache_hit":true`) {
		t.Errorf("second call not a cache hit: %.200s", w.Body)
	}
}

func TestBadInputIsA4xxProblem(t *testing.T) {
	f := newFixture(t, market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		switch q.Symbol {
		case "9999.T":
			return nil, fmt.Errorf("yahoo: %w", market.ErrUnknownSymbol)
		case "1111.T":
			return nil, &market.UnavailableError{Provider: "yahoo", RetryAfter: 30 * time.Second, Err: fmt.Errorf("status 429")}
		case "2222.T":
			return nil, &market.UnavailableError{Provider: "yahoo", Err: fmt.Errorf("bad JSON")}
		}
		return []market.Bar{}, nil
	}))
	tests := map[string]struct {
		target     string
		status     int
		field      string
		retryAfter string
	}{
		"garbage symbol":           {"/api/v1/data/stocks/%3Cscript%3E", 400, "symbol", ""},
		"symbol too long":          {"/api/v1/data/stocks/" + strings.Repeat("A", 40), 400, "symbol", ""},
		"bad period":               {"/api/v1/data/stocks/7203.T?period=7y", 400, "period", ""},
		"bad interval":             {"/api/v1/data/stocks/7203.T?interval=3m", 400, "interval", ""},
		"intraday too far back":    {"/api/v1/data/stocks/7203.T?period=1y&interval=1m", 400, "interval", ""},
		"unknown indicator":        {"/api/v1/data/stocks/7203.T?indicators=rsi14,voodoo", 400, "indicators", ""},
		"unknown symbol":           {"/api/v1/data/stocks/9999.T", 404, "", ""},
		"provider rate limited":    {"/api/v1/data/stocks/1111.T", 503, "", "30"},
		"provider answers garbage": {"/api/v1/data/stocks/2222.T", 502, "", ""},
		"unknown path":             {"/api/v1/data/stocks", 404, "", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			w := f.get(t, tc.target)
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); ct != httpx.ProblemContentType {
				t.Fatalf("content type %q", ct)
			}
			var p httpx.Problem
			if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil {
				t.Fatal(err)
			}
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Errorf("field errors %+v, want %s", p.Errors, tc.field)
			}
			if got := w.Header().Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After %q, want %q", got, tc.retryAfter)
			}
		})
	}
	// The valid values are listed, so a caller can fix the request without docs.
	w := f.get(t, "/api/v1/data/stocks/7203.T?period=7y")
	if !strings.Contains(w.Body.String(), "1mo") || !strings.Contains(w.Body.String(), "ytd") {
		t.Errorf("valid periods not listed: %s", w.Body)
	}
}

func TestRedisDownIs503NotAHang(t *testing.T) {
	f := newFixture(t, synthetic())
	f.redis.Kill()
	w := f.get(t, "/api/v1/data/stocks/7203.T")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d headers %v body %s", w.Code, w.Header(), w.Body)
	}
}

func FuzzStocksQuery(f *testing.F) {
	for _, s := range []string{"7203.T?period=1mo", "^N225?interval=1m&period=5d", "x?indicators=all", "%00", "a?period=&interval=&indicators=,,,"} {
		f.Add(s)
	}
	srv := redistest.Start(f)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		f.Fatal(err)
	}
	defer rdb.Close()
	h := newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), marketcache.New(rdb, store.NewKeys("data"), synthetic(), "synthetic"))
	f.Fuzz(func(t *testing.T, tail string) {
		req, err := http.NewRequest("GET", "http://x/api/v1/data/stocks/"+tail, nil)
		if err != nil {
			return // not a URL a client could send
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%q: status %d: %s", tail, w.Code, w.Body)
		}
	})
}
