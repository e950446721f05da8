// Command execution-scheduler receives the execution ticks (com.daytrade.execution.tick, and
// the PingSource's dev.knative.sources.ping that stands for it) and starts the scheduled
// workflows that are due: each (schedule, due time) exactly once however often, however late
// and on however many replicas the ticks arrive, with missed due times caught up within a
// bounded window. Runs execute as sagas (shared/workflow) under their schedule's tenant and
// call other functions over HTTP.
package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/schedule"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/workflow"
	"github.com/day-trade/platform/shared/workflow/builtin"
)

type cfg struct {
	config.Runtime
	config.Redis
	// UpstreamDialAddr, set by the local platform, is where calls to other functions are
	// dialled (the activator); in the cluster their hosts resolve on their own.
	UpstreamDialAddr string        `envconfig:"UPSTREAM_DIAL_ADDR"`
	CallTimeout      time.Duration `envconfig:"WORKFLOW_CALL_TIMEOUT" default:"30s"`
	// RunLease bounds one execution of a run; EventLease (the tick's) must exceed it.
	RunLease       time.Duration `envconfig:"WORKFLOW_RUN_LEASE" default:"4m"`
	EventLease     time.Duration `envconfig:"EVENT_LEASE" default:"5m"`
	CatchUp        time.Duration `envconfig:"SCHEDULER_CATCH_UP" default:"15m"`
	MaxPerSchedule int           `envconfig:"SCHEDULER_MAX_RUNS_PER_SCHEDULE" default:"5"`
	Concurrency    int           `envconfig:"SCHEDULER_CONCURRENCY" default:"8"`
	// InternalTokenKey (optional) is the gateway's signing key (a base64 Ed25519 seed). With
	// it, every workflow call carries a signed identity token for the schedule's tenant, as a
	// call through the gateway would; callees that verify tokens need it. Without it calls
	// carry only the X-Tenant header, which only callees run without
	// INTERNAL_TOKEN_PUBLIC_KEY accept.
	InternalTokenKey string `envconfig:"INTERNAL_TOKEN_KEY"`
}

func (c cfg) Validate() error {
	err := config.ValidateAll(c.Runtime, c.Redis)
	if c.CallTimeout <= 0 || c.RunLease <= c.CallTimeout || c.EventLease <= c.RunLease {
		err = errors.Join(err, errors.New("want 0 < WORKFLOW_CALL_TIMEOUT < WORKFLOW_RUN_LEASE < EVENT_LEASE"))
	}
	if c.InternalTokenKey != "" {
		if _, perr := auth.ParsePrivateKey(c.InternalTokenKey); perr != nil {
			err = errors.Join(err, fmt.Errorf("INTERNAL_TOKEN_KEY: %w", perr))
		}
	}
	if c.CatchUp < time.Minute || c.MaxPerSchedule < 1 || c.Concurrency < 1 {
		err = errors.Join(err, errors.New("SCHEDULER_CATCH_UP >= 1m, SCHEDULER_MAX_RUNS_PER_SCHEDULE >= 1, SCHEDULER_CONCURRENCY >= 1"))
	}
	return err
}

func main() { runtime.Main[cfg]("execution-scheduler", build) }

func build(_ context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	keys := store.NewKeys("exec")
	recv, err := events.NewReceiver(rdb, keys, events.ReceiverOptions{Logger: d.Log, Lease: c.EventLease, Consumer: "execution-scheduler"})
	if err != nil {
		return runtime.Function{}, err
	}
	js := jobs.NewStore(rdb, jobs.Options{})
	caller := &builtin.Caller{
		Client:    &http.Client{Transport: gateway.NewTransport(c.UpstreamDialAddr)},
		Namespace: c.Runtime.Namespace,
		Timeout:   c.CallTimeout,
	}
	if c.InternalTokenKey != "" {
		key, err := auth.ParsePrivateKey(c.InternalTokenKey)
		if err != nil {
			return runtime.Function{}, err
		}
		caller.Signer = auth.NewSigner(key)
	} else {
		d.Log.Warn("no INTERNAL_TOKEN_KEY: workflow calls carry only X-Tenant; callees that verify identity tokens will refuse them")
	}
	s := &scheduler{
		log: d.Log, rdb: rdb, keys: keys, jobs: js,
		schedules: schedule.NewStore(rdb, keys, 1, nil), // never creates
		runner:    workflow.NewRunner(rdb, keys, js, workflow.Options{Lease: c.RunLease, Log: d.Log}),
		workflows: builtin.Workflows(caller),
		set: settings{CatchUp: c.CatchUp, MaxPerSchedule: c.MaxPerSchedule, Concurrency: c.Concurrency,
			ClaimTTL: max(24*time.Hour, 2*c.CatchUp)},
		now: time.Now,
	}
	return runtime.Function{
		Handler: newServer(s, recv),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
