// Command data-batch-fetch serves POST /api/v1/data/batch-fetch: it validates a list of up
// to 50 symbols, creates a job and publishes com.daytrade.data.batch.requested for
// data-batch-worker, answering 202 with the job's status URL.
package main

import (
	"context"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	batch.PublisherConfig
}

func (c cfg) Validate() error {
	return config.ValidateAll(c.Runtime, c.Redis, c.PublisherConfig)
}

func main() { runtime.Main[cfg]("data-batch-fetch", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	pub, err := events.NewPublisher(c.Target(), events.WithTracerProvider(d.Telemetry.TracerProvider))
	if err != nil {
		return runtime.Function{}, err
	}
	id := batch.NewIdentity(c.InternalTokenPublicKey != "")
	sub := &batch.Submitter{
		Jobs: jobs.NewStore(rdb, jobs.Options{}), Publisher: pub,
		Kind: JobKind, Type: events.TypeDataBatchRequested, Source: events.SourceDataBatchFetch,
	}
	return runtime.Function{
		Handler: newServer(d.Log, sub, id),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
