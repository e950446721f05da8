// Package dataset turns bars into ml.Datasets with shared/features. It is the one place
// where the models meet the indicators, so package ml stays independent of both.
package dataset

import (
	"fmt"
	"math"
	"slices"

	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/ml"
)

// momentumBars is the look-back of the momentum baseline.
const momentumBars = 20

// FromBars returns one symbol's rows that have finite features and a known label: row i
// holds features.Matrix row i (bars[0..i] only), the binary label features.Labels gives bar
// i (the direction of bar i+1), the bar's time, and the 1- and 20-bar close-to-close returns
// the baselines use. Warm-up rows and the last bar (whose next bar is unknown) are dropped.
// Columns follow features.Names().
func FromBars(symbol string, bars []market.Bar) (ml.Dataset, error) {
	rows, first := features.Matrix(bars)
	labels := features.Labels(bars, 0)
	d := ml.Dataset{}
	for i := max(first, momentumBars); i < len(bars); i++ {
		if labels[i] != 0 && labels[i] != 1 {
			continue
		}
		d.X = append(d.X, rows[i])
		d.Y = append(d.Y, labels[i])
		d.Time = append(d.Time, bars[i].Time)
		d.Symbol = append(d.Symbol, symbol)
		d.Ret1 = append(d.Ret1, change(bars[i].Close, bars[i-1].Close))
		d.Mom20 = append(d.Mom20, change(bars[i].Close, bars[i-momentumBars].Close))
	}
	if d.Len() == 0 {
		return ml.Dataset{}, fmt.Errorf("%w: %s: no bar with both features and a label in %d bars", ml.ErrBadInput, symbol, len(bars))
	}
	return d, d.Validate()
}

// FromSymbols builds every symbol's rows and merges them in time order, symbols in sorted
// order within a time, so the result does not depend on map iteration.
func FromSymbols(bars map[string][]market.Bar) (ml.Dataset, error) {
	symbols := make([]string, 0, len(bars))
	for s := range bars {
		symbols = append(symbols, s)
	}
	slices.Sort(symbols)
	parts := make([]ml.Dataset, 0, len(symbols))
	for _, s := range symbols {
		d, err := FromBars(s, bars[s])
		if err != nil {
			return ml.Dataset{}, err
		}
		parts = append(parts, d)
	}
	return ml.Concat(parts...)
}

// change is x/base - 1, or 0 when base is 0 (matching the features' neutral value).
func change(x, base float64) float64 {
	if base == 0 || math.IsNaN(base) {
		return 0
	}
	return x/base - 1
}
