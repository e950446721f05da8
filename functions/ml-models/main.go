// Command ml-models serves GET /api/v1/ml/models: every registered model version with its
// walk-forward metrics and the accuracy its predictions have realised since, and which
// version is promoted.
package main

import (
	"context"

	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	AccuracyWindow int `envconfig:"ML_ACCURACY_WINDOW" default:"500"`
}

func (c cfg) Validate() error { return config.ValidateAll(c.Runtime, c.Redis) }

func main() { runtime.Main[cfg]("ml-models", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	keys := store.NewKeys("ml")
	return runtime.Function{
		Handler: newServer(d.Log, registry.New(rdb, keys), registry.NewTracker(rdb, keys, c.AccuracyWindow)),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
