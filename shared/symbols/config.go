package symbols

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Config chooses the universe and tunes measuring; main loads it with envconfig.
type Config struct {
	// Universe is "starter" (the embedded list) or "jquants" (the listed-issue master, read at
	// start with the market config's J-Quants key; the starter list serves if that fails).
	Universe    string        `envconfig:"SYMBOLS_UNIVERSE" default:"starter"`
	Concurrency int           `envconfig:"SYMBOLS_CONCURRENCY" default:"16"`
	MetricsTTL  time.Duration `envconfig:"SYMBOLS_METRICS_TTL" default:"1m"`
}

// UniverseConfig is the universe choice alone, for functions that check orders against the
// universe without measuring symbols (execution-trade, execution-fills). They must be given
// the same SYMBOLS_UNIVERSE as the symbol functions, which choose what gets traded.
type UniverseConfig struct {
	Universe string `envconfig:"SYMBOLS_UNIVERSE" default:"starter"`
}

// Validate checks the choice.
func (c UniverseConfig) Validate() error {
	if c.Universe != "starter" && c.Universe != "jquants" {
		return fmt.Errorf("SYMBOLS_UNIVERSE %q: want starter or jquants", c.Universe)
	}
	return nil
}

// Validate checks the settings.
func (c Config) Validate() error {
	if err := (UniverseConfig{Universe: c.Universe}).Validate(); err != nil {
		return err
	}
	if c.Concurrency < 1 || c.Concurrency > 256 {
		return fmt.Errorf("SYMBOLS_CONCURRENCY %d: want 1..256", c.Concurrency)
	}
	if c.MetricsTTL < 0 {
		return fmt.Errorf("SYMBOLS_METRICS_TTL %s is negative", c.MetricsTTL)
	}
	return nil
}

// LoadUniverse returns the universe c asks for. A J-Quants failure is logged and the starter
// list serves instead: a stale list beats no list, and the starter's as-of date says how
// stale it is.
func LoadUniverse(ctx context.Context, c Config, jq Lister, log *slog.Logger) *Universe {
	if c.Universe != "jquants" || jq == nil {
		return Starter()
	}
	u, err := jq.List(ctx, time.Time{})
	if err != nil {
		log.Warn("symbol universe: J-Quants listed-issue master unavailable; serving the starter list", "err", err)
		return Starter()
	}
	log.Info("symbol universe loaded from J-Quants", "symbols", u.Len(), "as_of", u.AsOf().Format(time.DateOnly))
	return u
}
