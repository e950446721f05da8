package symbols

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/day-trade/platform/shared/market"
)

// BarSource returns daily bars for a query (a market.Provider, or the Redis market cache in
// front of one).
type BarSource interface {
	Bars(ctx context.Context, q market.Query) ([]market.Bar, error)
}

// BarSourceFunc adapts a function to BarSource.
type BarSourceFunc func(ctx context.Context, q market.Query) ([]market.Bar, error)

// Bars calls f.
func (f BarSourceFunc) Bars(ctx context.Context, q market.Query) ([]market.Bar, error) {
	return f(ctx, q)
}

// Lookbacks are the windows metrics may be measured over.
var Lookbacks = []market.Period{"1mo", "3mo", "6mo", "1y"}

// DefaultLookback is the window used when a caller names none.
const DefaultLookback market.Period = "3mo"

// Skipped names a symbol that could not be measured and why.
type Skipped struct {
	Symbol string `json:"symbol"`
	Reason string `json:"reason"`
}

// LoaderOptions configure a Loader; zero values take the defaults noted.
type LoaderOptions struct {
	// Concurrency bounds the bar fetches in flight at once. Default 16.
	Concurrency int
	// TTL is how long measured metrics are reused in memory. Default 1m; negative disables.
	TTL time.Duration
	// MaxEntries bounds the in-memory cache; it is emptied when full. Default 10,000.
	MaxEntries int
	// Now is the clock for the cache. Default time.Now.
	Now func() time.Time
}

// Loader measures many symbols at once: bar fetches run concurrently up to a bound, and
// measured metrics are kept in memory for a short TTL so that a burst of select, screen and
// recommend calls does not refetch or recompute (the bars themselves are usually cached in
// Redis by the BarSource). It is safe for concurrent use.
type Loader struct {
	src  BarSource
	opts LoaderOptions

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	m       Metrics
	ok      bool
	expires time.Time
}

// NewLoader returns a Loader reading bars from src.
func NewLoader(src BarSource, opts LoaderOptions) *Loader {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 16
	}
	if opts.TTL == 0 {
		opts.TTL = time.Minute
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 10_000
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Loader{src: src, opts: opts, cache: map[string]cached{}}
}

// Measure returns the metrics of every symbol that could be measured over lookback (in the
// order of syms) and the ones that could not, with the reason. A symbol the provider does not
// know or that has too little history is skipped; any other provider failure is skipped too,
// unless every symbol failed that way, in which case that error is returned (the provider is
// down, not the symbols). A cancelled ctx is returned as such.
func (l *Loader) Measure(ctx context.Context, syms []Symbol, lookback market.Period) ([]Metrics, []Skipped, error) {
	type result struct {
		m   Metrics
		ok  bool
		err error
	}
	res := make([]result, len(syms))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.opts.Concurrency)
	for i, s := range syms {
		if m, ok, hit := l.get(s.Ticker, lookback); hit {
			res[i] = result{m: m, ok: ok}
			continue
		}
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				res[i].err = err
				return nil
			}
			bars, err := l.src.Bars(gctx, market.Query{Symbol: s.Ticker, Period: lookback, Interval: "1d"})
			if err != nil {
				res[i].err = err
				return nil
			}
			m, ok := Measure(s, bars)
			l.put(s.Ticker, lookback, m, ok)
			res[i] = result{m: m, ok: ok}
			return nil
		})
	}
	_ = g.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var (
		out      []Metrics
		skipped  []Skipped
		firstErr error
		failed   int
	)
	for i, r := range res {
		switch {
		case r.err != nil && errors.Is(r.err, market.ErrUnknownSymbol):
			skipped = append(skipped, Skipped{Symbol: syms[i].Ticker, Reason: "unknown to the market-data provider"})
		case r.err != nil:
			failed++
			if firstErr == nil {
				firstErr = r.err
			}
			skipped = append(skipped, Skipped{Symbol: syms[i].Ticker, Reason: "market data unavailable"})
		case !r.ok:
			skipped = append(skipped, Skipped{Symbol: syms[i].Ticker, Reason: fmt.Sprintf("only %d daily bars in %s (need %d)", r.m.Bars, lookback, MinBars)})
		default:
			out = append(out, r.m)
		}
	}
	if failed > 0 && failed == len(syms) {
		return nil, skipped, firstErr
	}
	return out, skipped, nil
}

func cacheKey(ticker string, lookback market.Period) string { return ticker + "|" + string(lookback) }

func (l *Loader) get(ticker string, lookback market.Period) (Metrics, bool, bool) {
	if l.opts.TTL < 0 {
		return Metrics{}, false, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	c, ok := l.cache[cacheKey(ticker, lookback)]
	if !ok || !l.opts.Now().Before(c.expires) {
		return Metrics{}, false, false
	}
	return c.m, c.ok, true
}

func (l *Loader) put(ticker string, lookback market.Period, m Metrics, ok bool) {
	if l.opts.TTL < 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.cache) >= l.opts.MaxEntries {
		clear(l.cache)
	}
	l.cache[cacheKey(ticker, lookback)] = cached{m: m, ok: ok, expires: l.opts.Now().Add(l.opts.TTL)}
}
