package marketcache

import (
	"context"
	"errors"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/store"
)

// Open builds the configured provider and the cache in front of it, in the data service's
// key space, so every function that reads market data shares one cache.
func Open(rdb redis.UniversalClient, c config.Market) (*Cache, error) {
	p, err := NewProvider(c, nil)
	if err != nil {
		return nil, err
	}
	return New(rdb, store.NewKeys("data"), p, c.Provider), nil
}

// NewProvider builds the provider DATA_PROVIDER names from the market settings. hc sends its
// requests; nil means a client whose Timeout is DATA_PROVIDER_TIMEOUT.
func NewProvider(c config.Market, hc *http.Client) (market.Provider, error) {
	if hc == nil {
		hc = &http.Client{Timeout: c.ProviderTimeout}
	}
	return market.New(c.Provider, market.Options{
		CSVDir:         c.CSVDir,
		JQuantsAPIKey:  c.JQuantsAPIKey,
		YahooBaseURL:   c.YahooBaseURL,
		JQuantsBaseURL: c.JQuantsBaseURL,
		HTTPClient:     hc,
	})
}

// HTTPError turns the market package's error kinds into the HTTP vocabulary: an unknown
// symbol is a 404, an unsupported query a 400, a provider that asked us to wait a 503 with
// its Retry-After, any other provider failure a 502, a deadline a 504.
func HTTPError(err error) error {
	var (
		he *httpx.Error
		ue *market.UnavailableError
	)
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, market.ErrUnknownSymbol):
		return httpx.Wrap(err, httpx.CodeNotFound, "unknown symbol")
	case errors.Is(err, market.ErrUnsupported):
		return httpx.Wrap(err, httpx.CodeInvalid, err.Error())
	case errors.As(err, &ue) && ue.RetryAfter > 0:
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "market data provider unavailable", RetryAfter: ue.RetryAfter, Err: err}
	case errors.Is(err, market.ErrUnavailable):
		return httpx.Wrap(err, httpx.CodeUpstream, "market data provider failed")
	case errors.Is(err, context.DeadlineExceeded):
		return httpx.Wrap(err, httpx.CodeTimeout, "market data provider timed out")
	}
	return err
}
