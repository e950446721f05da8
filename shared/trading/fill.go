package trading

import (
	"time"

	"github.com/shopspring/decimal"
)

// Quote is what the fill simulation and the price-limit check need to know about a symbol
// now: the last traded price and the previous session's close (the base of today's limits).
type Quote struct {
	Symbol    string          `json:"symbol"`
	Last      decimal.Decimal `json:"last"`
	PrevClose decimal.Decimal `json:"prev_close"`
	At        time.Time       `json:"at"` // when Last traded
}

// Costs are the simulated frictions of a fill, in basis points of the price or notional.
type Costs struct {
	SlippageBps decimal.Decimal // price moves against the order by this much before rounding
	FeeBps      decimal.Decimal // commission and fees on the notional, rounded up to whole yen
}

var bp = decimal.NewFromInt(10_000)

// Simulate fills order o against quote q, or returns nil when a limit order does not cross
// the market and rests. Market orders fill in full at the last price moved against them by
// the slippage and rounded onto the tick grid the unfavourable way, never beyond the day's
// price band. A marketable limit order fills at that price or its limit, whichever is
// better for the limit. Fills are whole: the simulation has no order book depth.
func Simulate(o Order, q Quote, topix500 bool, c Costs) *Fill {
	slip := q.Last.Mul(c.SlippageBps).Div(bp)
	lower, upper := PriceBand(q.PrevClose, topix500)
	var px decimal.Decimal
	switch o.Side {
	case Buy:
		px = decimal.Min(RoundToTick(q.Last.Add(slip), topix500, RoundUp), upper)
	default:
		px = decimal.Max(RoundToTick(q.Last.Sub(slip), topix500, RoundDown), lower)
	}
	if o.Type == Limit && o.LimitPrice != nil {
		lim := *o.LimitPrice
		switch {
		case o.Side == Buy && lim.LessThan(q.Last), o.Side == Sell && lim.GreaterThan(q.Last):
			return nil // not marketable: rests
		case o.Side == Buy:
			px = decimal.Min(px, lim)
		default:
			px = decimal.Max(px, lim)
		}
	}
	f := &Fill{Quantity: o.Quantity, Price: px, Reference: q.Last}
	f.Fee = f.Notional().Mul(c.FeeBps).Div(bp).Ceil()
	return f
}

// EstimatePrice is the price the risk checks assume: the limit for a limit order, the
// slipped last price for a market order.
func EstimatePrice(o Order, q Quote, topix500 bool, c Costs) decimal.Decimal {
	if o.Type == Limit && o.LimitPrice != nil {
		return *o.LimitPrice
	}
	slip := q.Last.Mul(c.SlippageBps).Div(bp)
	if o.Side == Buy {
		return RoundToTick(q.Last.Add(slip), topix500, RoundUp)
	}
	return RoundToTick(q.Last.Sub(slip), topix500, RoundDown)
}

// CheckPriceBand refuses a limit price outside today's price band.
func CheckPriceBand(o Order, q Quote, topix500 bool) *Rejection {
	if o.Type != Limit || o.LimitPrice == nil || !q.PrevClose.IsPositive() {
		return nil
	}
	lower, upper := PriceBand(q.PrevClose, topix500)
	if p := *o.LimitPrice; p.LessThan(lower) || p.GreaterThan(upper) {
		return reject(RuleDailyPriceLimit, "limit_price %s is outside today's band %s–%s (previous close %s)", p, lower, upper, q.PrevClose)
	}
	return nil
}

// Bar is the part of a market-data bar a resting order is checked against.
type Bar struct {
	Open, High, Low decimal.Decimal
}

// SimulateBar fills a resting limit order against a later bar, or returns nil when the bar
// does not reach the limit (a buy needs low ≤ limit, a sell high ≥ limit). The reference
// price is the limit, or the bar's open when the market gapped through it (a better price
// for the order); the slippage of Simulate then moves it against the order, never past the
// limit. The price band needs no check: the bar itself traded inside it.
func SimulateBar(o Order, b Bar, topix500 bool, c Costs) *Fill {
	if o.Type != Limit || o.LimitPrice == nil {
		return nil
	}
	lim := *o.LimitPrice
	var ref, px decimal.Decimal
	switch o.Side {
	case Buy:
		if b.Low.GreaterThan(lim) {
			return nil
		}
		ref = decimal.Min(b.Open, lim)
		px = decimal.Min(RoundToTick(ref.Add(ref.Mul(c.SlippageBps).Div(bp)), topix500, RoundUp), lim)
	default:
		if b.High.LessThan(lim) {
			return nil
		}
		ref = decimal.Max(b.Open, lim)
		px = decimal.Max(RoundToTick(ref.Sub(ref.Mul(c.SlippageBps).Div(bp)), topix500, RoundDown), lim)
	}
	f := &Fill{Quantity: o.Quantity, Price: px, Reference: ref}
	f.Fee = f.Notional().Mul(c.FeeBps).Div(bp).Ceil()
	return f
}
