// Command notifications-dispatcher receives CloudEvents through Triggers (notification
// requests, batch completions, accuracy degradations, order fills) and delivers the
// notifications over their channels, retrying each channel with backoff and recording its
// delivery status.
package main

import (
	"context"
	"time"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/notify"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

type cfg struct {
	config.Runtime
	config.Redis
	notify.Config
}

func (c cfg) Validate() error { return config.ValidateAll(c.Runtime, c.Redis, c.Config) }

func main() { runtime.Main[cfg]("notifications-dispatcher", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	keys := store.NewKeys("notif")
	st := notify.NewStore(rdb, keys, 0)
	defaults, _ := c.Defaults() // validated with the config
	disp := &notify.Dispatcher{Store: st, Senders: c.Senders(d.Log), Policy: notify.DefaultPolicy(), Log: d.Log, Lease: 5 * time.Minute}
	// The receiver's lease must outlast a whole retry run of one channel.
	rcv, err := events.NewReceiver(rdb, keys, events.ReceiverOptions{Logger: d.Log, Lease: 4 * time.Minute,
		TracerProvider: d.Telemetry.TracerProvider})
	if err != nil {
		return runtime.Function{}, err
	}
	register(rcv, handler{store: st, disp: disp, defaults: defaults, log: d.Log})
	return runtime.Function{
		Handler: newServer(rcv),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
