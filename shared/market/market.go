// Package market defines OHLCV bars and the Provider interface that every market-data source
// implements (synthetic, yahoo, jquants, csv). Prices for features and ML are float64; money
// in orders is decimal elsewhere.
package market

import (
	"context"
	"errors"
	"time"
)

// Bar is one OHLCV bar. Timestamp is the bar's start in UTC; daily bars start at 00:00 JST.
type Bar struct {
	Time     time.Time `json:"timestamp"`
	Open     float64   `json:"open"`
	High     float64   `json:"high"`
	Low      float64   `json:"low"`
	Close    float64   `json:"close"`
	Volume   float64   `json:"volume"`
	AdjClose float64   `json:"adjusted_close"` // equals Close when the source has no adjustment
}

// Query asks a provider for bars.
type Query struct {
	Symbol   string // Yahoo-style: "7203.T", "^N225"
	Period   Period
	Interval Interval
	// End is the last instant to include; zero means now.
	End time.Time
}

// Provider returns bars for a query, oldest first.
type Provider interface {
	Bars(ctx context.Context, q Query) ([]Bar, error)
}

// ProviderFunc adapts a function to Provider.
type ProviderFunc func(ctx context.Context, q Query) ([]Bar, error)

// Bars calls f.
func (f ProviderFunc) Bars(ctx context.Context, q Query) ([]Bar, error) { return f(ctx, q) }

// Errors every provider returns (wrapped) so callers can act on the kind, not the message.
var (
	// ErrUnknownSymbol: the provider has no such symbol (404).
	ErrUnknownSymbol = errors.New("unknown symbol")
	// ErrUnsupported: the provider cannot serve this period/interval combination (400).
	ErrUnsupported = errors.New("unsupported period or interval for this provider")
	// ErrUnavailable: the provider is down, rate-limiting or answering garbage (502/503).
	ErrUnavailable = errors.New("market data provider unavailable")
)

// UnavailableError is an ErrUnavailable with the provider's Retry-After, when it sent one.
type UnavailableError struct {
	Provider   string
	RetryAfter time.Duration
	Err        error
}

func (e *UnavailableError) Error() string {
	return e.Provider + ": " + ErrUnavailable.Error() + ": " + e.Err.Error()
}

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// Unwrap returns the cause.
func (e *UnavailableError) Unwrap() error { return e.Err }

// JST is Japan Standard Time (no daylight saving).
var JST = time.FixedZone("JST", 9*60*60)
