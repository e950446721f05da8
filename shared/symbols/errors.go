package symbols

import (
	"context"
	"errors"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
)

// ProviderError turns a market-data failure into the HTTP vocabulary: a provider that
// asked us to come back later is 503 with its Retry-After, any other provider failure 502,
// a timeout 504. Errors that already carry a code keep it.
func ProviderError(err error) error {
	var (
		he *httpx.Error
		ue *market.UnavailableError
	)
	switch {
	case errors.As(err, &he):
		return he
	case errors.As(err, &ue) && ue.RetryAfter > 0:
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "market data provider unavailable", RetryAfter: ue.RetryAfter, Err: err}
	case errors.Is(err, market.ErrUnavailable):
		return httpx.Wrap(err, httpx.CodeUpstream, "market data provider failed")
	case errors.Is(err, context.DeadlineExceeded):
		return httpx.Wrap(err, httpx.CodeTimeout, "market data provider timed out")
	case errors.Is(err, market.ErrUnsupported):
		return httpx.Wrap(err, httpx.CodeInvalid, err.Error())
	}
	return err
}

// FromCache reads bars through the Redis market-data cache.
func FromCache(c *marketcache.Cache) BarSource {
	return BarSourceFunc(func(ctx context.Context, q market.Query) ([]market.Bar, error) {
		e, _, err := c.Bars(ctx, q)
		return e.Bars, err
	})
}
