// Command notifications-send serves POST /api/v1/notifications/send: it validates and stores a
// notification, then publishes one com.daytrade.notification.requested event per channel to
// the Broker (BROKER_URL, or K_SINK from a SinkBinding) for notifications-dispatcher. Without
// a sink it dispatches inline, in this process, and says so in its log.
package main

import (
	"context"
	"net/http"
	"time"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/notify"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	notify.Config
	BrokerURL string `envconfig:"BROKER_URL"`
	Sink      string `envconfig:"K_SINK"` // a SinkBinding's sink wins over the Broker URL
}

func (c cfg) Validate() error { return config.ValidateAll(c.Runtime, c.Redis, c.Config) }

func main() { runtime.Main[cfg]("notifications-send", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	st := notify.NewStore(rdb, store.NewKeys("notif"), 0)
	s := &sender{cfg: c.Config, store: st, log: d.Log, ident: batch.NewIdentity(c.InternalTokenPublicKey != "")}
	target := c.Sink
	if target == "" {
		target = c.BrokerURL
	}
	if target != "" {
		if s.pub, err = events.NewPublisher(target, events.WithHTTPClient(&http.Client{Timeout: 5 * time.Second})); err != nil {
			return runtime.Function{}, err
		}
		d.Log.Info("notifications are published to the broker", "sink", target)
	} else {
		s.inline = &notify.Dispatcher{Store: st, Senders: c.Senders(d.Log), Policy: notify.DefaultPolicy(), Log: d.Log}
		d.Log.Warn("no BROKER_URL or K_SINK configured: notifications are dispatched inline by notifications-send")
	}
	return runtime.Function{
		Handler: newServer(d.Log, s),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop: func(ctx context.Context) error {
			s.wait(ctx)
			return rdb.Close()
		},
	}, nil
}
