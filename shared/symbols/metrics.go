package symbols

import (
	"math"
	"slices"

	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/market"
)

// TradingDaysPerYear annualises daily volatility and trend (TSE: about 245 sessions a year).
const TradingDaysPerYear = 245

// MinBars is the shortest history a symbol needs to be measured at all.
const MinBars = 10

// Metrics are one symbol's market statistics over a lookback window of daily bars.
type Metrics struct {
	Symbol Symbol `json:"symbol"`
	Bars   int    `json:"bars"`
	// Close is the last close; Return the close-to-close change over the window.
	Close  float64 `json:"close"`
	Return float64 `json:"return"`
	// AvgVolume is mean shares a day; AvgTurnover mean yen a day (close × volume).
	AvgVolume   float64 `json:"avg_volume"`
	AvgTurnover float64 `json:"avg_turnover_jpy"`
	// Volatility is the annualised standard deviation of daily log returns.
	Volatility float64 `json:"volatility"`
	// VolumeCV is the coefficient of variation of daily volume (lower is steadier).
	VolumeCV float64 `json:"volume_cv"`
	// Trend is the annualised slope of a least-squares line through log closes, and TrendR2
	// how well that line fits (0..1).
	Trend   float64 `json:"trend"`
	TrendR2 float64 `json:"trend_r2"`
	// Indicators are the last warmed-up values of features.Compute's indicators (rsi14, macd,
	// bb_percent_b, ...); an indicator still in warm-up is absent.
	Indicators map[string]float64 `json:"indicators,omitempty"`
}

// IndicatorKeys are the names Metrics.Indicators may hold, as features.Compute names them.
var IndicatorKeys = []string{
	"rsi14", "macd", "macd_signal", "macd_hist",
	"bb_middle", "bb_upper", "bb_lower", "bb_percent_b",
	"sma20", "ema12", "ema26",
}

// Measure computes a symbol's metrics from daily bars, oldest first. ok is false when there
// are fewer than MinBars usable bars (a non-positive close is unusable).
func Measure(sym Symbol, bars []market.Bar) (m Metrics, ok bool) {
	bars = slices.DeleteFunc(slices.Clone(bars), func(b market.Bar) bool {
		return !(b.Close > 0) || math.IsInf(b.Close, 0) || !(b.Volume >= 0) || math.IsInf(b.Volume, 0)
	})
	n := len(bars)
	m = Metrics{Symbol: sym, Bars: n}
	if n < MinBars {
		return m, false
	}
	m.Close = bars[n-1].Close
	m.Return = bars[n-1].Close/bars[0].Close - 1

	var vols, turnover []float64
	for _, b := range bars {
		vols = append(vols, b.Volume)
		turnover = append(turnover, b.Close*b.Volume)
	}
	m.AvgVolume = mean(vols)
	m.AvgTurnover = mean(turnover)
	if m.AvgVolume > 0 {
		m.VolumeCV = stddev(vols) / m.AvgVolume
	}

	rets := make([]float64, 0, n-1)
	for i := 1; i < n; i++ {
		rets = append(rets, math.Log(bars[i].Close/bars[i-1].Close))
	}
	m.Volatility = stddev(rets) * math.Sqrt(TradingDaysPerYear)

	logs := make([]float64, n)
	for i, b := range bars {
		logs[i] = math.Log(b.Close)
	}
	slope, r2 := regress(logs)
	m.Trend, m.TrendR2 = slope*TradingDaysPerYear, r2

	if series, err := features.Compute(bars, []string{"all"}); err == nil {
		for name, s := range series {
			if v := s[n-1]; !math.IsNaN(v) && !math.IsInf(v, 0) {
				if m.Indicators == nil {
					m.Indicators = make(map[string]float64, len(series))
				}
				m.Indicators[name] = v
			}
		}
	}
	return m, true
}

func mean(x []float64) float64 {
	if len(x) == 0 {
		return 0
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// stddev is the sample standard deviation (n-1); 0 for fewer than two values.
func stddev(x []float64) float64 {
	if len(x) < 2 {
		return 0
	}
	mu := mean(x)
	var ss float64
	for _, v := range x {
		ss += (v - mu) * (v - mu)
	}
	return math.Sqrt(ss / float64(len(x)-1))
}

// regress fits y = a + b·i by least squares and returns b and R².
func regress(y []float64) (slope, r2 float64) {
	n := float64(len(y))
	if n < 2 {
		return 0, 0
	}
	xm := (n - 1) / 2
	ym := mean(y)
	var sxy, sxx, syy float64
	for i, v := range y {
		dx, dy := float64(i)-xm, v-ym
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	slope = sxy / sxx
	if syy > 0 {
		r2 = sxy * sxy / (sxx * syy)
	}
	return slope, r2
}
