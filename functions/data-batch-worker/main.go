// Command data-batch-worker carries out batch fetches: on com.daytrade.data.batch.requested
// (from data-batch-fetch, through a Trigger) it warms the market-data cache symbol by symbol,
// records each symbol's outcome once, reports progress on the job and publishes
// com.daytrade.data.batch.completed.
package main

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	config.Market
	batch.PublisherConfig
	Chunk    int `envconfig:"BATCH_CHUNK" default:"5"`
	Parallel int `envconfig:"BATCH_PARALLEL" default:"4"`
}

func (c cfg) Validate() error {
	return config.ValidateAll(c.Runtime, c.Redis, c.Market, c.PublisherConfig)
}

func main() { runtime.Main[cfg]("data-batch-worker", build) }

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
	keys := store.NewKeys("data")
	recv, err := events.NewReceiver(rdb, keys, events.ReceiverOptions{
		Logger: d.Log, Lease: c.Lease, DedupTTL: c.DedupTTL, TracerProvider: d.Telemetry.TracerProvider,
	})
	if err != nil {
		return runtime.Function{}, err
	}
	w := &worker{
		runner: &batch.Runner{
			Jobs: jobs.NewStore(rdb, jobs.Options{}), Results: batch.NewResults(rdb, keys, 0),
			Chunk: c.Chunk, Parallel: c.Parallel, Log: d.Log,
		},
		cache: marketcache.New(rdb, keys, provider, c.Provider),
		pub:   pub,
	}
	recv.Handle(events.TypeDataBatchRequested, w.handle)
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
