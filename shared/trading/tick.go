package trading

import "github.com/shopspring/decimal"

// band is one row of a price table: prices up to (and including) upTo use step.
type band struct {
	upTo decimal.Decimal
	step decimal.Decimal
}

func bands(rows ...[2]string) []band {
	out := make([]band, len(rows))
	for i, r := range rows {
		out[i] = band{decimal.RequireFromString(r[0]), decimal.RequireFromString(r[1])}
	}
	return out
}

// The TSE tick-size tables (JPX "Tick Size", in force since 2014-07-22). TOPIX 500
// constituents trade on the finer table; every other issue on the coarser one. The last row
// of each table is open-ended.
var (
	topix500Ticks = bands(
		[2]string{"1000", "0.1"},
		[2]string{"3000", "0.5"},
		[2]string{"10000", "1"},
		[2]string{"30000", "5"},
		[2]string{"100000", "10"},
		[2]string{"300000", "50"},
		[2]string{"1000000", "100"},
		[2]string{"3000000", "500"},
		[2]string{"10000000", "1000"},
		[2]string{"30000000", "5000"},
	)
	topix500TopTick = decimal.NewFromInt(10_000)

	otherTicks = bands(
		[2]string{"3000", "1"},
		[2]string{"5000", "5"},
		[2]string{"30000", "10"},
		[2]string{"50000", "50"},
		[2]string{"300000", "100"},
		[2]string{"500000", "500"},
		[2]string{"3000000", "1000"},
		[2]string{"5000000", "5000"},
		[2]string{"30000000", "10000"},
		[2]string{"50000000", "50000"},
	)
	otherTopTick = decimal.NewFromInt(100_000)
)

// TickSize returns the price step at price for a TOPIX 500 constituent or another issue.
func TickSize(price decimal.Decimal, topix500 bool) decimal.Decimal {
	table, top := otherTicks, otherTopTick
	if topix500 {
		table, top = topix500Ticks, topix500TopTick
	}
	for _, b := range table {
		if price.LessThanOrEqual(b.upTo) {
			return b.step
		}
	}
	return top
}

// OnTick reports whether price is a valid quote: positive and a whole number of ticks.
func OnTick(price decimal.Decimal, topix500 bool) bool {
	if !price.IsPositive() {
		return false
	}
	return price.Mod(TickSize(price, topix500)).IsZero()
}

// Rounding says which way a price moves onto the tick grid.
type Rounding int

const (
	RoundNearest Rounding = iota
	RoundUp               // a buyer's slippage: never better than the raw price
	RoundDown             // a seller's slippage
)

// RoundToTick moves price onto the tick grid in the given direction, never below one tick.
// The tick is the one at the raw price; at a band edge the result is still on the grid of
// its own band because every coarser step is a multiple of the finer one below it.
func RoundToTick(price decimal.Decimal, topix500 bool, how Rounding) decimal.Decimal {
	tick := TickSize(price, topix500)
	n := price.Div(tick)
	switch how {
	case RoundUp:
		n = n.Ceil()
	case RoundDown:
		n = n.Floor()
	default:
		n = n.Round(0)
	}
	out := n.Mul(tick)
	if out.LessThan(tick) {
		return tick
	}
	return out
}

// dailyLimits is the TSE daily price-limit table: a stock whose base price (normally the
// previous close) is below the first column may trade at most the second column above or
// below it that day. Prices at or above the last row's bound use limitTop.
var dailyLimits = bands(
	[2]string{"100", "30"},
	[2]string{"200", "50"},
	[2]string{"500", "80"},
	[2]string{"700", "100"},
	[2]string{"1000", "150"},
	[2]string{"1500", "300"},
	[2]string{"2000", "400"},
	[2]string{"3000", "500"},
	[2]string{"5000", "700"},
	[2]string{"7000", "1000"},
	[2]string{"10000", "1500"},
	[2]string{"15000", "3000"},
	[2]string{"20000", "4000"},
	[2]string{"30000", "5000"},
	[2]string{"50000", "7000"},
	[2]string{"70000", "10000"},
	[2]string{"100000", "15000"},
	[2]string{"150000", "30000"},
	[2]string{"200000", "40000"},
	[2]string{"300000", "50000"},
	[2]string{"500000", "70000"},
	[2]string{"700000", "100000"},
	[2]string{"1000000", "150000"},
	[2]string{"1500000", "300000"},
	[2]string{"2000000", "400000"},
	[2]string{"3000000", "500000"},
	[2]string{"5000000", "700000"},
	[2]string{"7000000", "1000000"},
	[2]string{"10000000", "1500000"},
	[2]string{"15000000", "3000000"},
	[2]string{"20000000", "4000000"},
	[2]string{"30000000", "5000000"},
	[2]string{"50000000", "7000000"},
)

var limitTop = decimal.NewFromInt(10_000_000)

// DailyLimit returns the day's maximum move from base (the previous close).
func DailyLimit(base decimal.Decimal) decimal.Decimal {
	for _, b := range dailyLimits {
		if base.LessThan(b.upTo) { // the table's bounds are "less than"
			return b.step
		}
	}
	return limitTop
}

// PriceBand returns the lowest and highest price a stock may trade at today, given its
// previous close: base ∓ DailyLimit(base), the lower bound never below one tick.
func PriceBand(base decimal.Decimal, topix500 bool) (lower, upper decimal.Decimal) {
	w := DailyLimit(base)
	lower, upper = base.Sub(w), base.Add(w)
	if minTick := TickSize(decimal.NewFromInt(1), topix500); lower.LessThan(minTick) {
		lower = minTick
	}
	return lower, upper
}
