// Command ml-predict serves POST /api/v1/ml/predict: the ensemble's call on the next daily
// close of one symbol, from features the caller sends or from the symbol's recent bars
// (read through the market-data cache). It records every directional call, scores it once
// the outcome bar is final, exports ml_prediction_accuracy and ml_prediction_latency, and
// raises com.daytrade.ml.accuracy.degraded when realised accuracy falls below its threshold.
package main

import (
	"context"
	"errors"
	"time"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/ml/alert"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/resilience"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	config.Market
	// EnsembleURL defaults to the ensemble's cluster-local Knative URL in this namespace.
	EnsembleURL string `envconfig:"ENSEMBLE_URL"`
	// EnsembleTimeout bounds one attempt; EnsembleAttempts tries in all, each retry of an
	// unavailable ensemble paid from a budget of EnsembleRetryBudget of the calls.
	EnsembleTimeout     time.Duration `envconfig:"ENSEMBLE_TIMEOUT" default:"2s"`
	EnsembleAttempts    int           `envconfig:"ENSEMBLE_ATTEMPTS" default:"3"`
	EnsembleRetryBudget float64       `envconfig:"ENSEMBLE_RETRY_BUDGET" default:"0.2"`
	// UpstreamDialAddr sends every ensemble connection to one address (the local
	// platform's activator), as the gateway does.
	UpstreamDialAddr string `envconfig:"UPSTREAM_DIAL_ADDR"`
	// History is how much daily history is read to compute the features (the slowest
	// needs 55 bars).
	History string `envconfig:"ML_HISTORY" default:"1y"`
	// FlatBand turns a call whose probability is within this distance of 0.5 into "flat".
	FlatBand float64 `envconfig:"ML_FLAT_BAND" default:"0"`
	// AccuracyWindow is how many latest scored predictions ml_prediction_accuracy covers.
	AccuracyWindow int `envconfig:"ML_ACCURACY_WINDOW" default:"500"`
	// Events is where the accuracy alert goes (K_SINK, else BROKER_URL); without either,
	// ml-predict raises no alerts (ml-batch-worker still does after its jobs).
	Events batch.EventConfig
	// Alert is the accuracy alert's settings (ACCURACY_*), the same as ml-batch-worker's: both
	// claim the same periods, so the platform sends one alert per period.
	Alert alert.Config
}

func (c cfg) Validate() error {
	var errs []error
	if _, err := market.ParsePeriod(c.History); err != nil {
		errs = append(errs, err)
	}
	if c.FlatBand < 0 || c.FlatBand >= 0.5 {
		errs = append(errs, errors.New("ML_FLAT_BAND must be in [0, 0.5)"))
	}
	if c.EnsembleTimeout <= 0 || c.AccuracyWindow <= 0 {
		errs = append(errs, errors.New("ENSEMBLE_TIMEOUT and ML_ACCURACY_WINDOW must be positive"))
	}
	if c.EnsembleAttempts < 1 || c.EnsembleAttempts > 10 || c.EnsembleRetryBudget < 0 || c.EnsembleRetryBudget > 1 {
		errs = append(errs, errors.New("ENSEMBLE_ATTEMPTS must be in [1, 10] and ENSEMBLE_RETRY_BUDGET in [0, 1]"))
	}
	return errors.Join(config.ValidateAll(c.Runtime, c.Redis, c.Market, c.Events, c.Alert), errors.Join(errs...))
}

func main() { runtime.Main[cfg]("ml-predict", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	provider, err := marketcache.NewProvider(c.Market, nil)
	if err != nil {
		return runtime.Function{}, err
	}
	url := c.EnsembleURL
	if url == "" {
		url = inference.ServiceURL(c.Namespace)
	}
	tracker := registry.NewTracker(rdb, store.NewKeys("ml"), c.AccuracyWindow)
	m, err := newMetrics(d.Telemetry.MeterProvider, c.AccuracyWindow)
	if err != nil {
		return runtime.Function{}, err
	}
	m.refresh(ctx, tracker) // best effort: the gauge starts from what earlier instances scored
	var checks *alerts
	if target := c.Events.Target(); target != "" {
		pub, err := events.NewPublisher(target, events.WithTracerProvider(d.Telemetry.TracerProvider))
		if err != nil {
			return runtime.Function{}, err
		}
		acc := alert.NewAccuracy(rdb, store.NewKeys("ml"), tracker, pub, events.Source("ml-predict"), c.Alert, alert.Options{Log: d.Log})
		checks = &alerts{check: acc.Check, log: d.Log, timeout: alertTimeout, gap: alertGap}
	} else {
		d.Log.Warn("neither K_SINK nor BROKER_URL is set: ml-predict raises no accuracy alerts")
	}
	return runtime.Function{
		Handler: newServer(server{
			log:  d.Log,
			bars: marketcache.New(rdb, store.NewKeys("data"), provider, c.Provider),
			ensemble: &resilientPredictor{
				next: inference.NewClient(url, inference.NewTransport(c.UpstreamDialAddr), c.EnsembleTimeout),
				retry: resilience.Retry{Attempts: c.EnsembleAttempts, Backoff: resilience.Backoff{Base: 50 * time.Millisecond, Max: time.Second},
					Budget: resilience.NewBudget(c.EnsembleRetryBudget, 1)},
				breaker: resilience.NewBreaker("ensemble", resilience.BreakerSettings{
					OnStateChange: func(name string, from, to resilience.State) {
						d.Log.Warn("ensemble breaker", "from", from.String(), "to", to.String())
					},
				}),
			},
			tracker:  tracker,
			alerts:   checks,
			metrics:  m,
			history:  market.Period(c.History),
			flatBand: c.FlatBand,
			now:      time.Now,
		}),
		Checks: map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop: func(ctx context.Context) error {
			// A running alert check finishes (it is bounded) before Redis closes under it.
			return errors.Join(checks.wait(ctx), rdb.Close())
		},
	}, nil
}
