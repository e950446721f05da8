// Command symbols-screen serves POST /api/v1/symbols/screen: the universe filtered on
// symbol attributes and market data, sorted, one page at a time behind an opaque cursor.
package main

import (
	"context"
	"net/http"

	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/symbols"
)

type cfg struct {
	config.Runtime
	config.Redis
	config.Market
	symbols.Config
}

func (c cfg) Validate() error { return config.ValidateAll(c.Runtime, c.Redis, c.Market, c.Config) }

func main() { runtime.Main[cfg]("symbols-screen", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	hc := &http.Client{Timeout: c.ProviderTimeout}
	provider, err := marketcache.NewProvider(c.Market, hc)
	if err != nil {
		return runtime.Function{}, err
	}
	universe := symbols.LoadUniverse(ctx, c.Config,
		&symbols.JQuants{BaseURL: c.JQuantsBaseURL, APIKey: c.JQuantsAPIKey, Client: hc}, d.Log)
	cache := marketcache.New(rdb, store.NewKeys("sym"), provider, c.Provider)
	loader := symbols.NewLoader(symbols.FromCache(cache), symbols.LoaderOptions{Concurrency: c.Concurrency, TTL: c.MetricsTTL})
	return runtime.Function{
		Handler: newServer(d.Log, universe, loader, newCursors(rdb, store.NewKeys("sym"))),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
