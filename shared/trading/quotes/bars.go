// Package quotes prices symbols from market-data bars for the execution functions: the
// fill simulation and price-band check of an order, and the marks that value open
// positions.
package quotes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/trading"
)

// Bars prices symbols from the market-data provider's bars, read through the cache: the
// previous close from daily bars, the last price from today's 1-minute bars when the
// provider has them (Yahoo, synthetic), else the latest daily close (J-Quants, CSV).
type Bars struct {
	Cache *marketcache.Cache
	Now   func() time.Time
}

var _ trading.Quoter = Bars{}

// Quote prices symbol now.
func (b Bars) Quote(ctx context.Context, symbol string) (trading.Quote, error) {
	daily, _, err := b.Cache.Bars(ctx, market.Query{Symbol: symbol, Period: "1mo", Interval: "1d"})
	if err != nil {
		return trading.Quote{}, err
	}
	if len(daily.Bars) == 0 {
		return trading.Quote{}, fmt.Errorf("%s: no daily bars: %w", symbol, market.ErrUnknownSymbol)
	}
	today := dateJST(b.Now())
	q := trading.Quote{Symbol: symbol}
	lastBar := daily.Bars[len(daily.Bars)-1]
	q.Last, q.At = price(lastBar.Close), lastBar.Time
	for i := len(daily.Bars) - 1; i >= 0; i-- {
		if dateJST(daily.Bars[i].Time) < today {
			q.PrevClose = price(daily.Bars[i].Close)
			break
		}
	}
	if q.PrevClose.IsZero() { // a listing younger than a day: its first open is the base
		q.PrevClose = price(daily.Bars[0].Open)
	}
	minute, _, err := b.Cache.Bars(ctx, market.Query{Symbol: symbol, Period: "1d", Interval: "1m"})
	switch {
	case errors.Is(err, market.ErrUnsupported):
	case err != nil:
		return trading.Quote{}, err
	case len(minute.Bars) > 0:
		m := minute.Bars[len(minute.Bars)-1]
		if dateJST(m.Time) == today {
			q.Last, q.At = price(m.Close), m.Time.Add(time.Minute)
		}
	}
	if !q.Last.IsPositive() || !q.PrevClose.IsPositive() {
		return trading.Quote{}, fmt.Errorf("%s: no usable price: %w", symbol, market.ErrUnavailable)
	}
	return q, nil
}

func dateJST(t time.Time) string { return t.In(market.JST).Format(time.DateOnly) }

// price converts a provider's float price to decimal. Providers quote yen with at most one
// decimal (the finest TSE tick is 0.1), so rounding to two places only removes float noise.
func price(f float64) decimal.Decimal { return decimal.NewFromFloat(f).Round(2) }
