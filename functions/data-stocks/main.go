// Command data-stocks serves GET /api/v1/data/stocks/{symbol}: OHLCV bars for one symbol,
// with optional indicators, read through the Redis market-data cache.
package main

import (
	"context"

	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	config.Market
}

func (c cfg) Validate() error { return config.ValidateAll(c.Runtime, c.Redis, c.Market) }

func main() { runtime.Main[cfg]("data-stocks", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	cache, err := marketcache.Open(rdb, c.Market)
	if err != nil {
		return runtime.Function{}, err
	}
	return runtime.Function{
		Handler: newServer(d.Log, cache),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
