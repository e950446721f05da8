package trading

import (
	"errors"

	"github.com/shopspring/decimal"
)

// Config is the paper account's costs and risk limits as the execution functions read them
// from the environment. Every function that decides a fill (execution-trade at the order,
// execution-fills for a resting order) embeds it, so both apply the same model.
type Config struct {
	SlippageBps    decimal.Decimal `envconfig:"PAPER_SLIPPAGE_BPS" default:"5"`
	FeeBps         decimal.Decimal `envconfig:"PAPER_FEE_BPS" default:"10"`
	MaxPositionPct decimal.Decimal `envconfig:"RISK_MAX_POSITION_PCT" default:"20"`
	MaxExposurePct decimal.Decimal `envconfig:"RISK_MAX_EXPOSURE_PCT" default:"100"`
	DailyLossLimit decimal.Decimal `envconfig:"RISK_DAILY_LOSS_LIMIT" default:"500000"`
	MaxOpenOrders  int             `envconfig:"RISK_MAX_OPEN_ORDERS" default:"10"`
}

// Validate refuses negative costs and limits.
func (c Config) Validate() error {
	var errs []error
	for _, v := range []struct {
		name string
		v    decimal.Decimal
	}{
		{"PAPER_SLIPPAGE_BPS", c.SlippageBps}, {"PAPER_FEE_BPS", c.FeeBps}, {"RISK_MAX_POSITION_PCT", c.MaxPositionPct},
		{"RISK_MAX_EXPOSURE_PCT", c.MaxExposurePct}, {"RISK_DAILY_LOSS_LIMIT", c.DailyLossLimit},
	} {
		if v.v.IsNegative() {
			errs = append(errs, errors.New(v.name+" must not be negative"))
		}
	}
	if c.MaxOpenOrders < 0 {
		errs = append(errs, errors.New("RISK_MAX_OPEN_ORDERS must not be negative"))
	}
	return errors.Join(errs...)
}

// Costs are the configured frictions.
func (c Config) Costs() Costs { return Costs{SlippageBps: c.SlippageBps, FeeBps: c.FeeBps} }

// Limits are the configured risk limits.
func (c Config) Limits() Limits {
	return Limits{MaxPositionPct: c.MaxPositionPct, MaxExposurePct: c.MaxExposurePct, DailyLossLimit: c.DailyLossLimit, MaxOpenOrders: c.MaxOpenOrders}
}
