// Command execution-positions serves GET /api/v1/execution/positions: the caller's paper
// account (cash, positions, realised, unrealised and the day's P&L, fees), projected from
// the tenant's order ledger and marked to market at read time: each open position at the
// market-data provider's last price, or at its last fill price when no quote can be had.
package main

import (
	"context"
	"errors"
	"time"

	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
	"github.com/day-trade/platform/shared/trading/quotes"
)

type cfg struct {
	config.Runtime
	config.Redis
	// Market is the provider execution-trade prices orders with (the catalog gives both the
	// same DATA_PROVIDER); quotes are read through the same "exec" market cache.
	config.Market
	// MarkTimeout bounds the quotes for one response; a position not quoted in time is
	// shown at its last fill price.
	MarkTimeout time.Duration `envconfig:"MARK_TIMEOUT" default:"2s"`
}

func (c cfg) Validate() error {
	err := config.ValidateAll(c.Runtime, c.Redis, c.Market)
	if c.MarkTimeout <= 0 {
		err = errors.Join(err, errors.New("MARK_TIMEOUT must be positive"))
	}
	return err
}

func main() { runtime.Main[cfg]("execution-positions", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	provider, err := marketcache.NewProvider(c.Market, nil)
	if err != nil {
		return runtime.Function{}, err
	}
	keys := store.NewKeys("exec")
	return runtime.Function{
		Handler: newServer(deps{
			log:    d.Log,
			ledger: ledger.New(rdb, keys),
			quotes: quotes.Bars{Cache: marketcache.New(rdb, keys, provider, c.Provider), Now: time.Now},
			now:    time.Now,
			// The tenant comes from the gateway's verified token (header X-Tenant only when
			// the function runs without INTERNAL_TOKEN_PUBLIC_KEY, alone or in tests).
			tenants:     trading.NewTenants(c.InternalTokenPublicKey != ""),
			markTimeout: c.MarkTimeout,
		}),
		Checks: map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:   func(context.Context) error { return rdb.Close() },
	}, nil
}
