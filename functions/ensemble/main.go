// Command ensemble is the always-warm inference service: it holds the promoted model in
// memory, answers POST /v1/predict (batches of feature rows) and GET /v1/models, and swaps
// models when the registry announces a promotion. It is internal: functions call it by its
// cluster-local host; the gateway routes nothing here.
//
// Readiness fails until a model is loaded. In local mode (PLATFORM_MODE=local) an empty
// registry gets a bootstrap model trained on the synthetic market, so `make run` works with
// no setup; anywhere else the service stays unready until a model is promoted.
package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	// PlatformMode is "local" on the local platform; only there may the service train a
	// bootstrap model by itself.
	PlatformMode string        `envconfig:"PLATFORM_MODE"`
	Poll         time.Duration `envconfig:"ML_REGISTRY_POLL" default:"5s"`
}

func (c cfg) Validate() error { return config.ValidateAll(c.Runtime, c.Redis) }

func main() { runtime.Main[cfg]("ensemble", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	reg := registry.New(rdb, store.NewKeys("ml"))
	svc := inference.NewService(reg, d.Log)
	opts := inference.RunOptions{Poll: c.Poll}
	if c.PlatformMode == "local" {
		opts.Bootstrap = bootstrap(reg, d.Log)
	}
	go svc.Run(ctx, opts)
	return runtime.Function{
		Handler: inference.NewServer(d.Log, svc),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}, "model": svc},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}

// bootstrap trains a small model on the synthetic market and registers and promotes it. A
// claim in Redis keeps two replicas from training at once; the loser just waits for the
// winner's promotion.
func bootstrap(reg *registry.Registry, log *slog.Logger) inference.Bootstrap {
	return func(ctx context.Context) (registry.Version, error) {
		ok, err := reg.Claim(ctx, "bootstrap", 5*time.Minute)
		if err != nil {
			return registry.Version{}, err
		}
		if !ok {
			log.Info("another replica is training the bootstrap model; waiting for its promotion")
			return registry.Version{}, nil
		}
		wf := ml.DefaultWalkForwardConfig()
		wf.Split.Folds = 3
		wf.Ensemble.GBDT.Rounds, wf.Ensemble.Forest.Trees = 60, 30
		tr, err := registry.Train(ctx, registry.TrainConfig{
			Provider: market.NewSynthetic(market.Options{}),
			Symbols:  registry.DefaultSymbols[:5], Period: "2y", Evaluate: true, WalkForward: wf,
		})
		if err != nil {
			return registry.Version{}, err
		}
		v, err := reg.Register(ctx, tr.Artifact, registry.Meta{Source: market.ProviderSynthetic,
			Note: "bootstrap: trained by the ensemble in local mode because the registry was empty"})
		if err != nil {
			return registry.Version{}, err
		}
		if ens, ok := tr.Report.Result(ml.NameEnsemble); ok {
			log.Info("bootstrap model evaluated walk-forward on the synthetic market", "version", v.Version,
				"rows", tr.Rows, "accuracy", ens.Accuracy, "balanced_accuracy", ens.BalancedAccuracy)
		}
		return reg.Promote(ctx, v.Version)
	}
}
