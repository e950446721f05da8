// Command ml-train retrains the ensemble when a com.daytrade.ml.train.requested CloudEvent
// arrives: it reads the requested symbols' daily bars from the configured provider,
// evaluates walk-forward, trains, registers the new version and promotes it according to
// ML_TRAIN_PROMOTE (never, always, or if-better: only when its walk-forward balanced
// accuracy is at least the promoted version's).
package main

import (
	"context"
	"fmt"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	config.Market
	Promote string `envconfig:"ML_TRAIN_PROMOTE" default:"if-better"`
	// Period is the history trained on when the event names none.
	Period string `envconfig:"ML_TRAIN_PERIOD" default:"5y"`
}

func (c cfg) Validate() error {
	err := config.ValidateAll(c.Runtime, c.Redis, c.Market)
	switch c.Promote {
	case promoteNever, promoteAlways, promoteIfBetter:
	default:
		return fmt.Errorf("ML_TRAIN_PROMOTE %q is not never|always|if-better", c.Promote)
	}
	if _, perr := market.ParsePeriod(c.Period); perr != nil {
		return perr
	}
	return err
}

func main() { runtime.Main[cfg]("ml-train", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	provider, err := marketcache.NewProvider(c.Market, nil)
	if err != nil {
		return runtime.Function{}, err
	}
	keys := store.NewKeys("ml")
	recv, err := events.NewReceiver(rdb, keys, events.ReceiverOptions{Logger: d.Log, TracerProvider: d.Telemetry.TracerProvider})
	if err != nil {
		return runtime.Function{}, err
	}
	t := trainer{log: d.Log, reg: registry.New(rdb, keys), provider: provider, source: c.Provider,
		policy: c.Promote, period: market.Period(c.Period), walkForward: ml.DefaultWalkForwardConfig()}
	recv.Handle(events.TypeMLTrainRequested, t.handle)
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
