// Command ml-batch-worker carries out batch predictions: on com.daytrade.ml.batch.requested
// (from ml-batch-predict, through a Trigger) it builds each symbol's latest feature row,
// asks the always-warm ensemble for a chunk of rows at a time, records each symbol's
// prediction once, reports progress, publishes com.daytrade.ml.batch.completed, and raises
// com.daytrade.ml.accuracy.degraded when realised accuracy falls below its threshold.
package main

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/ml/alert"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	config.Market
	batch.PublisherConfig
	// EnsembleURL defaults to the ensemble's cluster-local Knative URL; UPSTREAM_DIAL_ADDR
	// (the local platform's activator) is where its connections go when set.
	EnsembleURL      string        `envconfig:"ENSEMBLE_URL"`
	UpstreamDialAddr string        `envconfig:"UPSTREAM_DIAL_ADDR"`
	EnsembleTimeout  time.Duration `envconfig:"ENSEMBLE_TIMEOUT" default:"15s"`
	Chunk            int           `envconfig:"BATCH_CHUNK" default:"20"`
	Parallel         int           `envconfig:"BATCH_PARALLEL" default:"4"`
	// History is how much data each symbol's features are computed from.
	History string `envconfig:"ML_BATCH_HISTORY" default:"1y"`
	// Alert is the accuracy alert's settings (ACCURACY_*), the same as ml-predict's.
	Alert alert.Config
}

func (c cfg) Validate() error {
	var err error
	if _, perr := market.ParsePeriod(c.History); perr != nil {
		err = errors.New("ML_BATCH_HISTORY: " + perr.Error())
	}
	return errors.Join(err, config.ValidateAll(c.Runtime, c.Redis, c.Market, c.PublisherConfig, c.Alert))
}

func main() { runtime.Main[cfg]("ml-batch-worker", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	provider, err := marketcache.NewProvider(c.Market, nil)
	if err != nil {
		return runtime.Function{}, err
	}
	pub, err := events.NewPublisher(c.Target(), events.WithTracerProvider(d.Telemetry.TracerProvider))
	if err != nil {
		return runtime.Function{}, err
	}
	keys := store.NewKeys("ml")
	recv, err := events.NewReceiver(rdb, keys, events.ReceiverOptions{
		Logger: d.Log, Lease: c.Lease, DedupTTL: c.DedupTTL, TracerProvider: d.Telemetry.TracerProvider,
	})
	if err != nil {
		return runtime.Function{}, err
	}
	url := c.EnsembleURL
	if url == "" {
		url = inference.ServiceURL(c.Namespace)
	}
	tracker := registry.NewTracker(rdb, keys, 0)
	w := &worker{
		runner: &batch.Runner{
			Jobs: jobs.NewStore(rdb, jobs.Options{}), Results: batch.NewResults(rdb, keys, 0),
			Chunk: c.Chunk, Parallel: c.Parallel, Log: d.Log,
		},
		// The market-data cache data-stocks and ml-predict read (and data-batch-worker warms).
		bars:     marketcache.New(rdb, store.NewKeys("data"), provider, c.Provider),
		ensemble: inference.NewClient(url, inference.NewTransport(c.UpstreamDialAddr), c.EnsembleTimeout),
		tracker:  tracker,
		alerts:   alert.NewAccuracy(rdb, keys, tracker, pub, events.SourceMLBatchWorker, c.Alert, alert.Options{Log: d.Log}),
		pub:      pub,
		history:  market.Period(c.History),
		log:      d.Log,
	}
	recv.Handle(events.TypeMLBatchRequested, w.handle)
	return runtime.Function{
		Handler: newServer(recv),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}

// newServer mounts the CloudEvents receiver where the Trigger delivers (POST /).
func newServer(recv *events.Receiver) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/", recv.HTTPHandler())
	return r
}
