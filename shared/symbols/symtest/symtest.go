// Package symtest provides a cheap deterministic market for tests of symbol scoring: daily
// bars from a random walk seeded by the symbol, so that a test can measure the whole universe
// in milliseconds (the synthetic provider simulates every minute, which the race detector
// makes slow). Each symbol has its own drift, volatility and volume level, so rankings are
// stable and differ across symbols.
package symtest

import (
	"context"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"

	"github.com/day-trade/platform/shared/market"
)

// End is the last day the walk reaches (a Friday).
var End = time.Date(2026, 11, 20, 0, 0, 0, 0, market.JST)

// Walk returns daily bars for any ".T" symbol; other symbols are market.ErrUnknownSymbol.
func Walk() market.Provider {
	return market.ProviderFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if len(q.Symbol) < 3 || q.Symbol[len(q.Symbol)-2:] != ".T" {
			return nil, fmt.Errorf("symtest: %s: %w", q.Symbol, market.ErrUnknownSymbol)
		}
		if q.Interval != "" && q.Interval != "1d" {
			return nil, fmt.Errorf("symtest: %w: daily only", market.ErrUnsupported)
		}
		p := q.Period
		if p == "" {
			p = market.DefaultPeriod
		}
		from := p.Span(End)
		h := fnv.New64a()
		h.Write([]byte(q.Symbol))
		seed := h.Sum64()
		rng := rand.New(rand.NewPCG(seed, 7))
		base := 500 + float64(seed%20000)
		drift := (rng.Float64() - 0.5) * 0.004
		vol := 0.008 + rng.Float64()*0.03
		volume := 1e5 * (1 + float64(seed%200))
		var bars []market.Bar
		price := base
		// Walk from a fixed start so that a bar does not depend on the query's period.
		for d := End.AddDate(-3, 0, 0); !d.After(End); d = d.AddDate(0, 0, 1) {
			if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
				continue
			}
			r := drift + vol*rng.NormFloat64()
			open := price
			price = math.Max(1, price*math.Exp(r))
			hi, lo := math.Max(open, price)*(1+vol/3), math.Min(open, price)*(1-vol/3)
			v := math.Round(volume*(0.5+rng.Float64())/100) * 100
			if d.Before(from) {
				continue
			}
			bars = append(bars, market.Bar{Time: d.UTC(), Open: open, High: hi, Low: lo, Close: price, Volume: v, AdjClose: price})
		}
		return bars, nil
	})
}
