package marketcache_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func countingProvider(calls *atomic.Int64) market.Provider {
	return market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		calls.Add(1)
		if q.Symbol == "NOPE.T" {
			return nil, market.ErrUnknownSymbol
		}
		t0 := time.Date(2024, 1, 4, 0, 0, 0, 0, market.JST)
		return []market.Bar{{Time: t0, Open: 1, High: 2, Low: 0.5, Close: 1.5, Volume: 100, AdjClose: 1.5}}, nil
	})
}

func open(t *testing.T) (*marketcache.Cache, *redistest.Server, *atomic.Int64) {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	var calls atomic.Int64
	return marketcache.New(rdb, store.NewKeys("data"), countingProvider(&calls), "test"), srv, &calls
}

func TestReadThroughAndStats(t *testing.T) {
	c, _, calls := open(t)
	ctx := context.Background()
	q := market.Query{Symbol: "7203.T", Period: "1mo", Interval: "1d"}
	if _, hit, err := c.Bars(ctx, q); err != nil || hit {
		t.Fatalf("first call: hit=%v err=%v", hit, err)
	}
	e, hit, err := c.Bars(ctx, q)
	if err != nil || !hit || len(e.Bars) != 1 || e.Bars[0].Close != 1.5 {
		t.Fatalf("second call: hit=%v err=%v entry=%+v", hit, err, e)
	}
	if calls.Load() != 1 {
		t.Fatalf("provider called %d times, want 1", calls.Load())
	}
	if _, _, err := c.Bars(ctx, market.Query{Symbol: "6758.T", Period: "5d", Interval: "5m"}); err != nil {
		t.Fatal(err)
	}
	s, err := c.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Entries != 2 || s.Hits != 1 || s.Misses != 2 || s.SizeBytes <= 0 {
		t.Fatalf("stats %+v", s)
	}
	if want := 1.0 / 3; s.HitRate < want-1e-9 || s.HitRate > want+1e-9 {
		t.Errorf("hit rate %v, want %v", s.HitRate, want)
	}
	// TTLs: 15 min for 1d and 1 min for 5m; the average lies between.
	if s.TTLAverageSeconds <= 60 || s.TTLAverageSeconds > 900 {
		t.Errorf("ttl average %v", s.TTLAverageSeconds)
	}
}

func TestClearByPattern(t *testing.T) {
	c, _, _ := open(t)
	ctx := context.Background()
	for _, sym := range []string{"7203.T", "7267.T", "6758.T"} {
		if _, _, err := c.Bars(ctx, market.Query{Symbol: sym, Period: "1mo", Interval: "1d"}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := c.Clear(ctx, "72*")
	if err != nil || n != 2 {
		t.Fatalf("Clear(72*) = %d, %v; want 2", n, err)
	}
	s, _ := c.Stats(ctx)
	if s.Entries != 1 {
		t.Fatalf("%d entries left, want 1", s.Entries)
	}
	for _, bad := range []string{"", "a:b", "[a-z]*", "x y", "*:*", "\\*"} {
		if _, err := c.Clear(ctx, bad); httpx.ErrorCode(err) != httpx.CodeInvalid {
			t.Errorf("Clear(%q) err = %v, want invalid", bad, err)
		}
	}
}

func TestProviderErrorsPassThroughAndAreNotCached(t *testing.T) {
	c, _, calls := open(t)
	q := market.Query{Symbol: "NOPE.T", Period: "1mo", Interval: "1d"}
	for range 2 {
		if _, _, err := c.Bars(context.Background(), q); !errors.Is(err, market.ErrUnknownSymbol) {
			t.Fatalf("err = %v", err)
		}
	}
	if calls.Load() != 2 {
		t.Fatalf("a failure was cached: %d provider calls", calls.Load())
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	c, srv, _ := open(t)
	srv.Kill()
	_, _, err := c.Bars(context.Background(), market.Query{Symbol: "7203.T", Period: "1mo", Interval: "1d"})
	if httpx.ErrorCode(err) != httpx.CodeUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if _, err := c.Stats(context.Background()); httpx.ErrorCode(err) != httpx.CodeUnavailable {
		t.Fatalf("stats err = %v, want unavailable", err)
	}
}

func TestTTLFollowsInterval(t *testing.T) {
	t.Parallel()
	tests := map[market.Interval]time.Duration{"1m": time.Minute, "5m": time.Minute, "15m": 5 * time.Minute, "1h": 5 * time.Minute, "1d": 15 * time.Minute, "1wk": 6 * time.Hour}
	for i, want := range tests {
		if got := marketcache.TTL(i); got != want {
			t.Errorf("TTL(%s) = %v, want %v", i, got, want)
		}
	}
}
