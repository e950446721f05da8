// Command execution-schedule serves the tenant's scheduled workflows:
// POST /api/v1/execution/schedule creates one ({workflow, schedule, config} → its first run's
// job), GET lists the tenant's schedules and DELETE /api/v1/execution/schedule/{id} cancels
// one. execution-scheduler starts the runs when they are due.
package main

import (
	"context"
	"errors"

	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/schedule"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
	"github.com/day-trade/platform/shared/workflow"
	"github.com/day-trade/platform/shared/workflow/builtin"
)

type cfg struct {
	config.Runtime
	config.Redis
	MaxSchedules int `envconfig:"MAX_SCHEDULES_PER_TENANT" default:"50"`
}

func (c cfg) Validate() error {
	err := config.ValidateAll(c.Runtime, c.Redis)
	if c.MaxSchedules < 1 {
		err = errors.Join(err, errors.New("MAX_SCHEDULES_PER_TENANT must be at least 1"))
	}
	return err
}

func main() { runtime.Main[cfg]("execution-schedule", build) }

func build(_ context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	keys := store.NewKeys("exec")
	js := jobs.NewStore(rdb, jobs.Options{})
	// The tenant comes from the gateway's (or execution-scheduler's) verified token; header
	// X-Tenant only when the function runs without INTERNAL_TOKEN_PUBLIC_KEY (alone, tests).
	srv := newServer(d.Log, trading.NewTenants(c.InternalTokenPublicKey != ""), schedule.NewStore(rdb, keys, c.MaxSchedules, nil),
		workflow.NewRunner(rdb, keys, js, workflow.Options{Log: d.Log}), js,
		builtin.Workflows(nil)) // definitions only: this function never executes a run
	return runtime.Function{
		Handler: srv,
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
