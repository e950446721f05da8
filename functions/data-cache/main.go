// Command data-cache serves the market-data cache's statistics (GET /api/v1/data/cache) and
// its invalidation (DELETE /api/v1/data/cache?pattern=), over the same Redis key space that
// data-stocks fills.
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
}

func (c cfg) Validate() error { return config.ValidateAll(c.Runtime, c.Redis) }

func main() { runtime.Main[cfg]("data-cache", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	// Stats and Clear never fetch, so the cache needs no provider.
	cache := marketcache.New(rdb, store.NewKeys("data"), nil, "")
	return runtime.Function{
		Handler: newServer(d.Log, cache),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
