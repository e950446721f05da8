// Command dead-letter is every Trigger's deadLetterSink: it keeps the events the Broker
// could not deliver, with the error attributes the Broker added (knativeerrordest,
// knativeerrorcode, knativeerrordata), and serves the admin routes to list them
// (GET /api/v1/events/dead-letters) and to replay one to the Broker
// (POST /api/v1/events/dead-letters/{id}/replay).
package main

import (
	"context"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/config"
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

func main() { runtime.Main[cfg]("dead-letter", build) }

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
	return runtime.Function{
		Handler: newServer(d.Log, newStore(rdb, store.NewKeys("events")), pub, id),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
