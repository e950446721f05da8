// Command execution-trade serves POST /api/v1/execution/trade: paper orders (market and
// limit, in lots of 100, on the TSE tick grid and inside the daily price band) checked
// against the account's risk limits with every open position marked to market, filled
// against market-data bars, recorded in the tenant's event-sourced ledger and published as
// com.daytrade.execution.order.filled. Every request needs an Idempotency-Key; a retry
// never places a second order.
package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/idempotency"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/symbols"
	"github.com/day-trade/platform/shared/trading"
	"github.com/day-trade/platform/shared/trading/quotes"
)

type cfg struct {
	config.Runtime
	config.Redis
	config.Market
	// UniverseConfig chooses the symbol universe orders are checked against: only its symbols
	// trade, and its TOPIX 500 flags pick the tick table.
	symbols.UniverseConfig
	Paper
	Sink      string `envconfig:"K_SINK"`
	BrokerURL string `envconfig:"BROKER_URL"`
}

// Paper is the paper account's money, costs and risk limits, and the idempotency timing.
type Paper struct {
	InitialCash decimal.Decimal `envconfig:"PAPER_INITIAL_CASH" default:"10000000"`
	// Config (costs and limits) is shared with execution-fills, which fills resting orders.
	trading.Config
	// MarkTimeout bounds the quotes that mark the account's other positions for the risk
	// checks; a position not quoted in time is valued at its last fill price.
	MarkTimeout time.Duration `envconfig:"MARK_TIMEOUT" default:"2s"`
	// LockTTL is the function's timeout (30s in the catalog) plus a margin.
	LockTTL   time.Duration `envconfig:"IDEMPOTENCY_LOCK_TTL" default:"40s"`
	ResultTTL time.Duration `envconfig:"IDEMPOTENCY_RESULT_TTL" default:"24h"`
}

// Validate checks the paper settings.
func (p Paper) Validate() error {
	errs := []error{p.Config.Validate()}
	if !p.InitialCash.IsPositive() {
		errs = append(errs, errors.New("PAPER_INITIAL_CASH must be positive"))
	}
	if p.MarkTimeout <= 0 {
		errs = append(errs, errors.New("MARK_TIMEOUT must be positive"))
	}
	if p.LockTTL <= 0 || p.ResultTTL < p.LockTTL {
		errs = append(errs, errors.New("want 0 < IDEMPOTENCY_LOCK_TTL <= IDEMPOTENCY_RESULT_TTL"))
	}
	return errors.Join(errs...)
}

func (c cfg) Validate() error {
	err := config.ValidateAll(c.Runtime, c.Redis, c.Market, c.UniverseConfig, c.Paper)
	if t := c.sink(); t != "" {
		if u, perr := url.Parse(t); perr != nil || (u.Scheme != "http" && u.Scheme != "https") {
			err = errors.Join(err, errors.New("K_SINK/BROKER_URL must be an http(s) URL"))
		}
	}
	return err
}

func (c cfg) sink() string {
	if c.Sink != "" {
		return c.Sink
	}
	return c.BrokerURL
}

func main() { runtime.Main[cfg]("execution-trade", build) }

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
	var pub ledger.Publisher
	if t := c.sink(); t != "" {
		p, err := events.NewPublisher(t)
		if err != nil {
			return runtime.Function{}, err
		}
		pub = p
	} else {
		d.Log.Info("no K_SINK or BROKER_URL: order.filled events stay in the ledger's outbox")
	}
	led := ledger.New(rdb, keys)
	universe := symbols.LoadUniverse(ctx, symbols.Config{Universe: c.Universe},
		&symbols.JQuants{BaseURL: c.JQuantsBaseURL, APIKey: c.JQuantsAPIKey, Client: hc}, d.Log)
	dp := deps{
		log:    d.Log,
		ledger: led,
		idem:   idempotency.NewStore(rdb, keys, idempotency.Options{LockTTL: c.LockTTL, ResultTTL: c.ResultTTL}),
		quotes: quotes.Bars{Cache: marketcache.New(rdb, keys, provider, c.Provider), Now: time.Now},
		settings: Settings{
			InitialCash: c.InitialCash,
			Limits:      c.Limits(),
			Costs:       c.Costs(),
			Universe:    universe,
			MaxBody:     c.MaxBodyBytes,
			MarkTimeout: c.MarkTimeout,
		},
		now:   time.Now,
		relay: ledger.Relay{Ledger: led, Pub: pub, Log: d.Log},

		// The tenant comes from the gateway's verified token (header X-Tenant only when the
		// function runs without INTERNAL_TOKEN_PUBLIC_KEY, alone or in tests).
		tenants: trading.NewTenants(c.InternalTokenPublicKey != ""),
	}
	return runtime.Function{
		Handler: newServer(dp),
		Checks:  map[string]runtime.Checker{"redis": store.Checker{Client: rdb}},
		Stop:    func(context.Context) error { return rdb.Close() },
	}, nil
}
