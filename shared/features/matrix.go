package features

import (
	"math"
	"strconv"

	"github.com/day-trade/platform/shared/market"
)

// featureNames fixes the column order of Matrix. Ratios are price-free (divided by the close or
// by an average) so that one model serves stocks at ¥500 and at ¥50,000.
var featureNames = []string{
	"ret_1", "ret_5", "ret_10", "ret_20", // close[i]/close[i-k] - 1
	"log_ret_1",                                        // ln(close[i]/close[i-1])
	"range_hl", "body", "upper_shadow", "lower_shadow", // candle shape / close
	"sma5_ratio", "sma10_ratio", "sma20_ratio", "sma50_ratio", // close/sma - 1
	"sma5_slope", "sma10_slope", "sma20_slope", "sma50_slope", // sma[i]/sma[i-5] - 1
	"ema12_ratio", "ema26_ratio", // close/ema - 1
	"macd", "macd_signal", "macd_hist", // 12/26/9, / close
	"rsi14",                        // Wilder RSI / 100
	"bb_percent_b",                 // Bollinger(20, 2) %B
	"atr14",                        // Wilder ATR / close
	"rvol_5", "rvol_10", "rvol_20", // RealisedVol
	"log_volume_ratio20", // ln(VolumeRatio(20)), floored at ln(1/20)
}

// slopeLag is how many bars back the SMA slopes compare against.
const slopeLag = 5

// volumeWindow is the VolumeRatio window of log_volume_ratio20.
const volumeWindow = 20

// Names returns the feature names in Matrix's column order. The order is stable: trained models
// depend on it, so new features go at the end.
func Names() []string {
	return append([]string(nil), featureNames...)
}

// Matrix returns one row per bar, with the features of Names in order. Row i is computed from
// bars[0..i] only. Rows before first contain NaN (warm-up: 54 bars, for the 50-bar SMA's 5-bar
// slope); rows[first:] are all finite, with every division by zero (a zero close or volume, a
// flat price) answered by the feature's neutral value rather than NaN or Inf. first is
// len(bars) when no such row exists.
func Matrix(bars []market.Bar) (rows [][]float64, first int) {
	n := len(bars)
	open, high, low, closes, vol := make([]float64, n), make([]float64, n), make([]float64, n),
		make([]float64, n), make([]float64, n)
	for i, b := range bars {
		open[i], high[i], low[i], closes[i], vol[i] = b.Open, b.High, b.Low, b.Close, b.Volume
	}

	cols := make(map[string][]float64, len(featureNames))
	for _, k := range []int{1, 5, 10, 20} {
		cols["ret_"+strconv.Itoa(k)] = change(closes, closes, k)
	}
	cols["log_ret_1"] = logReturns(closes)

	hl, body, upper, lower := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for i := range n {
		c := closes[i]
		hl[i] = safeDiv(high[i]-low[i], c)
		body[i] = safeDiv(c-open[i], c)
		upper[i] = safeDiv(high[i]-max(open[i], c), c)
		lower[i] = safeDiv(min(open[i], c)-low[i], c)
	}
	cols["range_hl"], cols["body"], cols["upper_shadow"], cols["lower_shadow"] = hl, body, upper, lower

	for _, k := range []int{5, 10, 20, 50} {
		sma := SMA(closes, k)
		cols["sma"+strconv.Itoa(k)+"_ratio"] = change(closes, sma, 0)
		cols["sma"+strconv.Itoa(k)+"_slope"] = change(sma, sma, slopeLag)
	}
	cols["ema12_ratio"] = change(closes, EMA(closes, 12), 0)
	cols["ema26_ratio"] = change(closes, EMA(closes, 26), 0)

	macd, sig, hist := MACD(closes, 12, 26, 9)
	cols["macd"], cols["macd_signal"], cols["macd_hist"] = perClose(macd, closes), perClose(sig, closes), perClose(hist, closes)

	rsi := RSI(closes, 14)
	for i := range rsi {
		rsi[i] /= 100
	}
	cols["rsi14"] = rsi
	_, _, _, cols["bb_percent_b"] = Bollinger(closes, 20, 2)
	cols["atr14"] = perClose(ATR(bars, 14), closes)
	for _, k := range []int{5, 10, 20} {
		cols["rvol_"+strconv.Itoa(k)] = RealisedVol(closes, k)
	}

	// The ratio is at most volumeWindow, since bar i is in its own window; flooring it at
	// 1/volumeWindow makes the log symmetric and keeps zero-volume days (the holiday rows some
	// vendors emit) finite.
	vr := VolumeRatio(vol, volumeWindow)
	for i, r := range vr {
		vr[i] = math.Log(max(r, 1.0/volumeWindow))
	}
	cols["log_volume_ratio20"] = vr

	nf := len(featureNames)
	cells := make([]float64, n*nf)
	rows = make([][]float64, n)
	for i := range rows {
		rows[i] = cells[i*nf : (i+1)*nf : (i+1)*nf]
	}
	for j, name := range featureNames {
		col := cols[name]
		for i := range rows {
			rows[i][j] = col[i]
		}
	}

	first = n
	for first > 0 && allFinite(rows[first-1]) {
		first--
	}
	return rows, first
}

// change[i] = x[i]/base[i-lag] - 1: NaN while either is NaN or i < lag, 0 when the base is 0.
func change(x, base []float64, lag int) []float64 {
	out := nans(len(x))
	for i := lag; i < len(x); i++ {
		if b := base[i-lag]; b == 0 && !math.IsNaN(x[i]) {
			out[i] = 0
		} else {
			out[i] = x[i]/b - 1
		}
	}
	return out
}

// perClose[i] = x[i]/close[i], 0 when the close is 0.
func perClose(x, close []float64) []float64 {
	out := make([]float64, len(x))
	for i := range x {
		out[i] = safeDiv(x[i], close[i])
	}
	return out
}

// safeDiv is a/b, or 0 when b is 0 (a NaN a stays NaN).
func safeDiv(a, b float64) float64 {
	if b == 0 && !math.IsNaN(a) {
		return 0
	}
	return a / b
}

func allFinite(row []float64) bool {
	for _, v := range row {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return false
		}
	}
	return true
}

// LabelUnknown marks a bar whose next return is unknown: the last bar, or one whose close is 0.
const LabelUnknown = -1

// Labels returns, for each bar i, the direction of the next bar's close-to-close return
// r = bars[i+1].Close/bars[i].Close - 1, so labels[i] is what a model sees row i of Matrix to
// predict. With deadBand <= 0 the labels are binary:
//
//	1  up    r > 0
//	0  down  r <= 0 (an unchanged close counts as down: it did not go up)
//
// With deadBand > 0 there are three classes, ordered so that larger means higher:
//
//	2  up    r > +deadBand
//	1  flat  -deadBand <= r <= +deadBand
//	0  down  r < -deadBand
//
// The last bar, and any bar whose return is undefined (a zero close), is LabelUnknown (-1).
func Labels(bars []market.Bar, deadBand float64) []int {
	labels := make([]int, len(bars))
	for i := range labels {
		labels[i] = LabelUnknown
		if i+1 >= len(bars) || bars[i].Close == 0 {
			continue
		}
		r := bars[i+1].Close/bars[i].Close - 1
		switch {
		case math.IsNaN(r) || math.IsInf(r, 0):
		case deadBand > 0 && r > deadBand:
			labels[i] = 2
		case deadBand > 0 && r < -deadBand:
			labels[i] = 0
		case deadBand > 0:
			labels[i] = 1
		case r > 0:
			labels[i] = 1
		default:
			labels[i] = 0
		}
	}
	return labels
}
