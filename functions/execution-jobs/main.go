// Command execution-jobs serves a tenant's batch jobs: GET /api/v1/execution/jobs/{job_id}
// returns one, GET /api/v1/execution/jobs/{job_id}/events streams its progress as
// Server-Sent Events until it ends.
package main

import (
	"context"
	"time"

	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	// StreamMax ends an event stream before the platform's request timeout; the client
	// reconnects with Last-Event-ID and misses nothing.
	StreamMax time.Duration `envconfig:"JOB_STREAM_MAX" default:"4m"`
	Heartbeat time.Duration `envconfig:"JOB_STREAM_HEARTBEAT" default:"15s"`
}

func (c cfg) Validate() error {
	return config.ValidateAll(c.Runtime, c.Redis, positive{"JOB_STREAM_MAX", c.StreamMax}, positive{"JOB_STREAM_HEARTBEAT", c.Heartbeat})
}

func main() { runtime.Main[cfg]("execution-jobs", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	id := batch.NewIdentity(c.InternalTokenPublicKey != "")
	st := jobs.NewStore(rdb, jobs.Options{})
	return runtime.Function{
		Handler: newServer(d.Log, st, id, streamOptions{Max: c.StreamMax, Heartbeat: c.Heartbeat}),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
