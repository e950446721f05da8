// Command symbols-recommend serves GET /api/v1/symbols/recommend: the top symbols by selection
// score, re-ranked with the ensemble's next-day direction and its confidence. Without the
// ensemble it answers 503 with Retry-After; it never makes a prediction up.
package main

import (
	"context"
	"net/http"
	"time"

	"github.com/day-trade/platform/functions/ensemble/inference"
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
	// EnsembleURL defaults to the ensemble's cluster-local Knative URL in POD_NAMESPACE.
	EnsembleURL     string        `envconfig:"ENSEMBLE_URL"`
	EnsembleTimeout time.Duration `envconfig:"ENSEMBLE_TIMEOUT" default:"3s"`
	// UpstreamDialAddr, set by the local platform, is where cluster-local hosts are dialled.
	UpstreamDialAddr string `envconfig:"UPSTREAM_DIAL_ADDR"`
}

func (c cfg) Validate() error { return config.ValidateAll(c.Runtime, c.Redis, c.Market, c.Config) }

func main() { runtime.Main[cfg]("symbols-recommend", build) }

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
	src := symbols.FromCache(cache)
	loader := symbols.NewLoader(src, symbols.LoaderOptions{Concurrency: c.Concurrency, TTL: c.MetricsTTL})
	url := c.EnsembleURL
	if url == "" {
		url = inference.ServiceURL(c.Namespace)
	}
	ens := inference.NewClient(url, inference.NewTransport(c.UpstreamDialAddr), c.EnsembleTimeout)
	return runtime.Function{
		Handler: newServer(d.Log, deps{universe: universe, loader: loader, bars: src, ensemble: ens, concurrency: c.Concurrency}),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
