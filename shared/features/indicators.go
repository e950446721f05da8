package features

import (
	"math"

	"github.com/day-trade/platform/shared/market"
)

func nans(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	return out
}

// mean of w, summed left to right. Windowed indicators call it afresh for every index rather
// than keeping a running total: n additions per value for the small n used here buys no drift,
// a NaN that spoils only its own windows, and a value at i that is the same sum of the same
// numbers in the same order however long the series is.
func mean(w []float64) float64 {
	var s float64
	for _, v := range w {
		s += v
	}
	return s / float64(len(w))
}

// stdDev of w around its mean, dividing by len(w)-ddof. Two passes, which is stable where
// E[x²]-E[x]² is not.
func stdDev(w []float64, ddof int) float64 {
	m := mean(w)
	var ss float64
	for _, v := range w {
		d := v - m
		ss += d * d
	}
	return math.Sqrt(ss / float64(len(w)-ddof))
}

// SMA is the simple moving average of the last n values, first defined at index n-1.
func SMA(x []float64, n int) []float64 {
	out := nans(len(x))
	if n < 1 {
		return out
	}
	for i := n - 1; i < len(x); i++ {
		out[i] = mean(x[i-n+1 : i+1])
	}
	return out
}

// EMA is the exponential moving average with alpha = 2/(n+1), seeded with the SMA of the first
// n values and then e[i] = alpha*x[i] + (1-alpha)*e[i-1]. This is TradingView's ta.ema and
// TA-Lib's convention; pandas ewm(span=n, adjust=False) differs only in seeding with x[0].
// Leading NaNs (another indicator's warm-up, as in the MACD signal line) are skipped: the seed
// is the SMA of the first n values after them.
func EMA(x []float64, n int) []float64 {
	out := nans(len(x))
	if n < 1 {
		return out
	}
	start := 0
	for start < len(x) && math.IsNaN(x[start]) {
		start++
	}
	seed := start + n - 1
	if seed >= len(x) {
		return out
	}
	alpha := 2 / float64(n+1)
	e := mean(x[start : seed+1])
	out[seed] = e
	for i := seed + 1; i < len(x); i++ {
		e = alpha*x[i] + (1-alpha)*e
		out[i] = e
	}
	return out
}

// RSI is Wilder's relative strength index. The first value, at index n, uses the plain averages
// of the gains and losses over the first n changes; after that each average is smoothed as
// avg = (avg*(n-1) + today)/n. When both averages are 0 (a flat series) there is no strength
// either way and RSI is 50; when only the loss average is 0 it is 100.
func RSI(close []float64, n int) []float64 {
	out := nans(len(close))
	if n < 1 || len(close) <= n {
		return out
	}
	var gain, loss float64
	for i := 1; i <= n; i++ {
		g, l := gainLoss(close[i] - close[i-1])
		gain += g
		loss += l
	}
	gain /= float64(n)
	loss /= float64(n)
	out[n] = rsiValue(gain, loss)
	for i := n + 1; i < len(close); i++ {
		g, l := gainLoss(close[i] - close[i-1])
		gain = (gain*float64(n-1) + g) / float64(n)
		loss = (loss*float64(n-1) + l) / float64(n)
		out[i] = rsiValue(gain, loss)
	}
	return out
}

func gainLoss(d float64) (gain, loss float64) {
	if d > 0 {
		return d, 0
	}
	return 0, -d
}

func rsiValue(gain, loss float64) float64 {
	switch {
	case loss == 0 && gain == 0:
		return 50
	case loss == 0:
		return 100
	}
	return 100 - 100/(1+gain/loss)
}

// MACD returns the MACD line EMA(fast) - EMA(slow), its signal line EMA(macd, signal) and the
// histogram macd - signal. The line starts at index slow-1 and the signal, seeded with the SMA
// of the first signal line values, at slow+signal-2 (33 for 12/26/9).
func MACD(close []float64, fast, slow, signal int) (macd, sig, hist []float64) {
	f, s := EMA(close, fast), EMA(close, slow)
	macd = make([]float64, len(close))
	for i := range macd {
		macd[i] = f[i] - s[i]
	}
	sig = EMA(macd, signal)
	hist = make([]float64, len(close))
	for i := range hist {
		hist[i] = macd[i] - sig[i]
	}
	return macd, sig, hist
}

// Bollinger returns the bands SMA(n) ± k standard deviations and %B = (close-lower)/(upper-lower).
// The deviation is the population one (divide by n), as TradingView and pandas rolling
// std(ddof=0) compute it. When the bands collapse (a flat window) %B is 0.5: the close sits on
// the middle band.
func Bollinger(close []float64, n int, k float64) (middle, upper, lower, percentB []float64) {
	middle = SMA(close, n)
	upper, lower, percentB = nans(len(close)), nans(len(close)), nans(len(close))
	if n < 1 {
		return middle, upper, lower, percentB
	}
	for i := n - 1; i < len(close); i++ {
		sd := stdDev(close[i-n+1:i+1], 0)
		upper[i] = middle[i] + k*sd
		lower[i] = middle[i] - k*sd
		if w := upper[i] - lower[i]; w != 0 {
			percentB[i] = (close[i] - lower[i]) / w
		} else {
			percentB[i] = 0.5
		}
	}
	return middle, upper, lower, percentB
}

// ATR is Wilder's average true range. True range needs the previous close, so it starts at
// index 1; the first ATR, at index n, is the mean of the first n true ranges, and later values
// are smoothed as atr = (atr*(n-1) + tr)/n. This is TA-Lib's alignment; StockCharts instead
// counts bar 0's high-low as a true range and starts one bar earlier.
func ATR(bars []market.Bar, n int) []float64 {
	out := nans(len(bars))
	if n < 1 || len(bars) <= n {
		return out
	}
	tr := func(i int) float64 {
		h, l, pc := bars[i].High, bars[i].Low, bars[i-1].Close
		return max(h-l, math.Abs(h-pc), math.Abs(l-pc))
	}
	var atr float64
	for i := 1; i <= n; i++ {
		atr += tr(i)
	}
	atr /= float64(n)
	out[n] = atr
	for i := n + 1; i < len(bars); i++ {
		atr = (atr*float64(n-1) + tr(i)) / float64(n)
		out[i] = atr
	}
	return out
}

// RealisedVol is the sample standard deviation (divide by n-1, as pandas rolling std) of the
// last n log returns ln(close[i]/close[i-1]), first defined at index n. It is per bar, not
// annualised. n must be at least 2. A non-positive close counts as a zero return.
func RealisedVol(close []float64, n int) []float64 {
	out := nans(len(close))
	if n < 2 || len(close) <= n {
		return out
	}
	r := logReturns(close)
	for i := n; i < len(close); i++ {
		out[i] = stdDev(r[i-n+1:i+1], 1)
	}
	return out
}

// logReturns[i] = ln(close[i]/close[i-1]), NaN at 0 and 0 when either close is not positive
// (a vendor's missing price), so that one bad print does not poison every window after it.
func logReturns(close []float64) []float64 {
	r := nans(len(close))
	for i := 1; i < len(close); i++ {
		if close[i] > 0 && close[i-1] > 0 {
			r[i] = math.Log(close[i] / close[i-1])
		} else if !math.IsNaN(close[i]) && !math.IsNaN(close[i-1]) {
			r[i] = 0
		}
	}
	return r
}

// VolumeRatio is vol[i] divided by the mean volume of the last n bars, bar i included, first
// defined at index n-1; it lies in [0, n]. A window with no volume at all (an index, which
// reports none) has nothing to compare against and gives the neutral ratio 1.
func VolumeRatio(vol []float64, n int) []float64 {
	out := nans(len(vol))
	if n < 1 {
		return out
	}
	for i := n - 1; i < len(vol); i++ {
		if m := mean(vol[i-n+1 : i+1]); m != 0 {
			out[i] = vol[i] / m
		} else {
			out[i] = 1
		}
	}
	return out
}
