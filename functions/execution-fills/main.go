// Command execution-fills runs on every execution tick (com.daytrade.execution.tick, and the
// PingSource's dev.knative.sources.ping standing for it). It fills the paper account's
// resting limit orders whose price a later market-data bar reached, expires the day orders
// the session's close ended, and relays the ledger's outbox: every fill still unpublished
// (because the process that recorded it died first, or the Broker was down) goes out as
// com.daytrade.execution.order.filled, under an id derived from its ledger entry.
package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/symbols"
	"github.com/day-trade/platform/shared/trading"
)

type cfg struct {
	config.Runtime
	config.Redis
	config.Market
	// UniverseConfig must match execution-trade's: its TOPIX 500 flags pick the tick table a
	// resting order fills on.
	symbols.UniverseConfig
	// Config must match execution-trade's: the same costs and limits decide every fill.
	trading.Config
	Sink      string `envconfig:"K_SINK"`
	BrokerURL string `envconfig:"BROKER_URL"`
	// OutboxGrace leaves a fresh fill to the request that recorded it (which publishes it
	// straight away) before the relay sends it too; the receivers' dedup would absorb the
	// duplicate anyway, this only saves the traffic.
	OutboxGrace time.Duration `envconfig:"OUTBOX_GRACE" default:"30s"`
	EventLease  time.Duration `envconfig:"EVENT_LEASE" default:"90s"`
}

func (c cfg) Validate() error {
	err := config.ValidateAll(c.Runtime, c.Redis, c.Market, c.UniverseConfig, c.Config)
	if t := c.sink(); t != "" {
		if u, perr := url.Parse(t); perr != nil || (u.Scheme != "http" && u.Scheme != "https") {
			err = errors.Join(err, errors.New("K_SINK/BROKER_URL must be an http(s) URL"))
		}
	}
	if c.OutboxGrace < 0 || c.EventLease <= 0 {
		err = errors.Join(err, errors.New("OUTBOX_GRACE >= 0 and EVENT_LEASE > 0"))
	}
	return err
}

func (c cfg) sink() string {
	if c.Sink != "" {
		return c.Sink
	}
	return c.BrokerURL
}

func main() { runtime.Main[cfg]("execution-fills", build) }

func build(ctx context.Context, c *cfg, d runtime.Deps) (runtime.Function, error) {
	rdb, err := store.Open(c.Redis.URL)
	if err != nil {
		return runtime.Function{}, err
	}
	hc := &http.Client{Timeout: c.ProviderTimeout}
	provider, err := marketcache.NewProvider(c.Market, hc)
	if err != nil {
		return runtime.Function{}, err
	}
	keys := store.NewKeys("exec")
	recv, err := events.NewReceiver(rdb, keys, events.ReceiverOptions{Logger: d.Log, Lease: c.EventLease, Consumer: "execution-fills"})
	if err != nil {
		return runtime.Function{}, err
	}
	var pub ledger.Publisher
	if t := c.sink(); t != "" {
		p, err := events.NewPublisher(t)
		if err != nil {
			return runtime.Function{}, err
		}
		pub = p
	} else {
		d.Log.Info("no K_SINK or BROKER_URL: fills stay in the ledger's outbox")
	}
	universe := symbols.LoadUniverse(ctx, symbols.Config{Universe: c.Universe},
		&symbols.JQuants{BaseURL: c.JQuantsBaseURL, APIKey: c.JQuantsAPIKey, Client: hc}, d.Log)
	led := ledger.New(rdb, keys)
	s := &sweeper{
		log:      d.Log,
		ledger:   led,
		relay:    ledger.Relay{Ledger: led, Pub: pub, Log: d.Log},
		bars:     cachedBars{cache: marketcache.New(rdb, keys, provider, c.Provider)},
		costs:    c.Costs(),
		limits:   c.Limits(),
		universe: universe,
		grace:    c.OutboxGrace,
		now:      time.Now,
	}
	return runtime.Function{
		Handler: newServer(s, recv),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
