// Command execution-positions serves GET /api/v1/execution/positions: the caller's paper
// account (cash, positions at their last fill price, realised and unrealised P&L, fees),
// projected from the tenant's order ledger.
package main

import (
	"context"

	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
)

type cfg struct {
	config.Runtime
	config.Redis
}

func (c cfg) Validate() error { return config.ValidateAll(c.Runtime, c.Redis) }

func main() { runtime.Main[cfg]("execution-positions", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	return runtime.Function{
		// The tenant comes from the gateway's verified token (header X-Tenant only when the
		// function runs without INTERNAL_TOKEN_PUBLIC_KEY, alone or in tests).
		Handler: newServer(d.Log, ledger.New(rdb, store.NewKeys("exec")), trading.NewTenants(c.InternalTokenPublicKey != "")),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
