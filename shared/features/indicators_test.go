package features

import (
	"math"
	"testing"

	"github.com/day-trade/platform/shared/market"
)

var nan = math.NaN()

// assertSeries fails unless got and want have the same length and agree within tol at every
// index, where NaN only matches NaN.
func assertSeries(tb testing.TB, name string, got, want []float64, tol float64) {
	tb.Helper()
	if len(got) != len(want) {
		tb.Fatalf("%s: len = %d, want %d", name, len(got), len(want))
	}
	for i := range want {
		g, w := got[i], want[i]
		if math.IsNaN(w) || math.IsNaN(g) {
			if math.IsNaN(w) != math.IsNaN(g) {
				tb.Errorf("%s[%d] = %v, want %v", name, i, g, w)
			}
			continue
		}
		if math.Abs(g-w) > tol {
			tb.Errorf("%s[%d] = %.15g, want %.15g", name, i, g, w)
		}
	}
}

// Expected values below were worked by hand and cross-checked with an independent plain
// python3 implementation (loops, no libraries) of the same definitions.

func TestSMA(t *testing.T) {
	t.Parallel()
	oneToTen := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	tests := map[string]struct {
		x    []float64
		n    int
		want []float64
	}{
		// (1+2+3)/3 = 2, (2+3+4)/3 = 3, ...
		"1..10 n=3": {oneToTen, 3, []float64{nan, nan, 2, 3, 4, 5, 6, 7, 8, 9}},
		// (1+...+10)/10 = 5.5
		"1..10 n=10": {oneToTen, 10, []float64{nan, nan, nan, nan, nan, nan, nan, nan, nan, 5.5}},
		"n=1 is x":   {[]float64{3, 1, 4}, 1, []float64{3, 1, 4}},
		"too short":  {[]float64{1, 2}, 3, []float64{nan, nan}},
		"empty":      {nil, 3, []float64{}},
		"n=0":        {[]float64{1, 2}, 0, []float64{nan, nan}},
		// A NaN spoils only the windows that hold it.
		"NaN inside": {[]float64{1, nan, 3, 5, 7}, 2, []float64{nan, nan, nan, 4, 6}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			assertSeries(t, "SMA", SMA(tc.x, tc.n), tc.want, 1e-12)
		})
	}
}

func TestEMA(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		x    []float64
		n    int
		want []float64
	}{
		// n=2, alpha=2/3. Seed (2+4)/2 = 3; then 2/3*6+1/3*3 = 5; 2/3*8+1/3*5 = 7;
		// 2/3*4+1/3*7 = 5; 2/3*2+1/3*5 = 3.
		"n=2": {[]float64{2, 4, 6, 8, 4, 2}, 2, []float64{nan, 3, 5, 7, 5, 3}},
		// n=3, alpha=1/2 on a ramp: seed 2, then (4+2)/2 = 3, (5+3)/2 = 4: the EMA lags by one.
		"ramp n=3": {[]float64{1, 2, 3, 4, 5, 6}, 3, []float64{nan, nan, 2, 3, 4, 5}},
		// Leading NaNs move the seed: SMA of 2,4 at index 3.
		"leading NaN": {[]float64{nan, nan, 2, 4, 6}, 2, []float64{nan, nan, nan, 3, 5}},
		"too short":   {[]float64{1, 2}, 3, []float64{nan, nan}},
		"empty":       {nil, 3, []float64{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			assertSeries(t, "EMA", EMA(tc.x, tc.n), tc.want, 1e-12)
		})
	}
}

func TestRSI(t *testing.T) {
	t.Parallel()
	// StockCharts' RSI worked example (Wilder, 14). Its spreadsheet holds the closes to four
	// decimals; with them our series matches the published table to the cent (70.53, 66.32, ...).
	stockCharts := []float64{
		44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
		45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439,
		46.2122, 46.2521, 45.7137, 46.4515, 45.7835, 45.3548, 44.0288, 44.1783, 44.2181, 44.5672,
		43.4205, 42.6628, 43.1314,
	}
	published := []float64{
		70.53, 66.32, 66.55, 69.41, 66.36, 57.97, 62.93, 63.26, 56.06, 62.38,
		54.71, 50.42, 39.99, 41.46, 41.87, 45.46, 37.30, 33.08, 37.77,
	}
	got := RSI(stockCharts, 14)
	assertSeries(t, "RSI warm-up", got[:14], nans(14), 0)
	assertSeries(t, "RSI vs StockCharts", got[14:], published, 0.005)
	// Full precision from the python cross-check, first and last.
	assertSeries(t, "RSI exact", []float64{got[14], got[32]},
		[]float64{70.53278948369497, 37.77295211443486}, 1e-9)

	// The same closes rounded to two decimals, as the page prints them. Gains over the 14
	// changes sum to 3.34 and losses to 1.40, so RS = 3.34/1.40 and RSI = 100-100/(1+RS)
	// = 70.464...: the page's 70.53 comes from the unrounded closes above.
	rounded := []float64{
		44.34, 44.09, 44.15, 43.61, 44.33, 44.83, 45.10, 45.42, 45.84, 46.08,
		45.89, 46.03, 45.61, 46.28, 46.28, 46.00,
	}
	got = RSI(rounded, 14)
	assertSeries(t, "RSI rounded", got[14:], []float64{70.46413502109705, 66.24961855355505}, 1e-9)

	tests := map[string]struct {
		x    []float64
		want []float64
	}{
		// Both averages 0: no strength either way.
		"flat is 50":  {[]float64{5, 5, 5, 5}, []float64{nan, nan, 50, 50}},
		"only gains":  {[]float64{1, 2, 3, 4}, []float64{nan, nan, 100, 100}},
		"only losses": {[]float64{4, 3, 2, 1}, []float64{nan, nan, 0, 0}},
		// n=2: changes +2, -1 -> gain 1, loss 0.5, RS 2, RSI 66.67; then change +1:
		// gain (1+1)/2 = 1, loss (0.5+0)/2 = 0.25, RS 4, RSI 80.
		"n=2 by hand": {[]float64{1, 3, 2, 3}, []float64{nan, nan, 200.0 / 3, 80}},
		"too short":   {[]float64{1, 2}, []float64{nan, nan}},
		"empty":       {nil, []float64{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			assertSeries(t, "RSI", RSI(tc.x, 2), tc.want, 1e-12)
		})
	}
}

func TestMACD(t *testing.T) {
	t.Parallel()
	x := []float64{10, 11, 12, 11, 13, 14, 13, 15, 16, 15, 17}
	// MACD(2, 4, 3). EMA4 seeds at index 3 with 11, EMA2 there is 11.1666..., so the line
	// starts at 0.1666...; the signal seeds at index 5 with the mean of the first three line
	// values (0.16667+0.58889+0.78296)/3 = 0.51284.
	macd, sig, hist := MACD(x, 2, 4, 3)
	assertSeries(t, "macd", macd, []float64{nan, nan, nan,
		0.16666666666666785, 0.5888888888888886, 0.7829629629629622, 0.3463209876543196,
		0.6999736625514412, 0.8507112208504797, 0.38733574028349516, 0.7247044467611641}, 1e-12)
	assertSeries(t, "signal", sig, []float64{nan, nan, nan, nan, nan,
		0.5128395061728396, 0.4295802469135796, 0.5647769547325104, 0.7077440877914951,
		0.5475399140374951, 0.6361221803993296}, 1e-12)
	assertSeries(t, "hist", hist, []float64{nan, nan, nan, nan, nan,
		0.2701234567901226, -0.08325925925925998, 0.13519670781893078, 0.14296713305898456,
		-0.16020417375399998, 0.08858226636183453}, 1e-12)

	// 12/26/9: the line starts at 25 and the signal at 25+8 = 33.
	ramp := make([]float64, 40)
	for i := range ramp {
		ramp[i] = 100 + float64(i)
	}
	macd, sig, _ = MACD(ramp, 12, 26, 9)
	if !math.IsNaN(macd[24]) || math.IsNaN(macd[25]) || !math.IsNaN(sig[32]) || math.IsNaN(sig[33]) {
		t.Errorf("MACD(12,26,9) warm-up: macd[24..25] = %v %v, signal[32..33] = %v %v",
			macd[24], macd[25], sig[32], sig[33])
	}
}

func TestBollinger(t *testing.T) {
	t.Parallel()
	// n=3, k=2 on 1,2,3,5,4. Window 1,2,3: mean 2, population variance (1+0+1)/3 = 2/3,
	// sd 0.81650, bands 2 ± 1.63299, %B = (3-0.36701)/3.26599 = 0.80619.
	// Window 2,3,5: mean 10/3, variance (16+1+25)/27 = 14/9, sd 1.24722, upper 5.82777.
	// Window 3,5,4: mean 4, and the close 4 sits on the middle band: %B 0.5.
	mid, up, lo, pb := Bollinger([]float64{1, 2, 3, 5, 4}, 3, 2)
	assertSeries(t, "middle", mid, []float64{nan, nan, 2, 3.3333333333333335, 4}, 1e-12)
	assertSeries(t, "upper", up, []float64{nan, nan, 3.632993161855452, 5.8277715911826276, 5.6329931618554525}, 1e-12)
	assertSeries(t, "lower", lo, []float64{nan, nan, 0.36700683814454793, 0.8388950754840394, 2.367006838144548}, 1e-12)
	assertSeries(t, "%B", pb, []float64{nan, nan, 0.8061862178478972, 0.8340765523905305, 0.5}, 1e-12)

	// A flat window collapses the bands; %B is 0.5 by convention.
	_, up, lo, pb = Bollinger([]float64{7, 7, 7}, 3, 2)
	assertSeries(t, "flat", []float64{up[2], lo[2], pb[2]}, []float64{7, 7, 0.5}, 0)
}

func TestATR(t *testing.T) {
	t.Parallel()
	bars := []market.Bar{
		{High: 10, Low: 8, Close: 9},
		{High: 11, Low: 9, Close: 10.5},    // TR max(2, |11-9|, |9-9|) = 2
		{High: 12, Low: 10, Close: 11},     // max(2, 1.5, 0.5) = 2
		{High: 11.5, Low: 9.5, Close: 10},  // max(2, 0.5, 1.5) = 2
		{High: 13, Low: 10.5, Close: 12.5}, // max(2.5, 3, 0.5) = 3: the gap up counts
		{High: 12, Low: 11, Close: 11.5},   // max(1, 0.5, 1.5) = 1.5
	}
	// n=3: first ATR at index 3 = (2+2+2)/3 = 2; then (2*2+3)/3 = 7/3; then (7/3*2+1.5)/3 = 37/18.
	assertSeries(t, "ATR", ATR(bars, 3), []float64{nan, nan, nan, 2, 7.0 / 3, 37.0 / 18}, 1e-12)
	assertSeries(t, "ATR short", ATR(bars[:3], 3), []float64{nan, nan, nan}, 0)
	assertSeries(t, "ATR empty", ATR(nil, 3), []float64{}, 0)
}

func TestRealisedVol(t *testing.T) {
	t.Parallel()
	// Log returns of 100, 110, 99, 99, 108.9: a = ln 1.1, ln 0.9, 0, ln 1.1.
	// Window a, ln0.9, 0 at index 3; sample sd (divide by 2).
	a, b := math.Log(1.1), math.Log(0.9)
	sd := func(w ...float64) float64 {
		m := (w[0] + w[1] + w[2]) / 3
		return math.Sqrt(((w[0]-m)*(w[0]-m) + (w[1]-m)*(w[1]-m) + (w[2]-m)*(w[2]-m)) / 2)
	}
	got := RealisedVol([]float64{100, 110, 99, 99, 108.9}, 3)
	assertSeries(t, "RealisedVol", got, []float64{nan, nan, nan, sd(a, b, 0), sd(b, 0, a)}, 1e-12)
	// python: 0.10037728548770321 at both indices.
	assertSeries(t, "RealisedVol python", got[3:], []float64{0.10037728548770321, 0.10037728548770321}, 1e-12)
	assertSeries(t, "flat", RealisedVol([]float64{5, 5, 5, 5}, 2), []float64{nan, nan, 0, 0}, 0)
	assertSeries(t, "n=1", RealisedVol([]float64{1, 2, 3}, 1), []float64{nan, nan, nan}, 0)
}

func TestVolumeRatio(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		vol  []float64
		want []float64
	}{
		// 3 / mean(1,2,3) = 1.5; 6 / mean(2,3,6) = 18/11.
		"by hand": {[]float64{1, 2, 3, 6}, []float64{nan, nan, 1.5, 18.0 / 11}},
		// An index reports no volume: neutral 1, not NaN.
		"no volume": {[]float64{0, 0, 0, 0}, []float64{nan, nan, 1, 1}},
		// A zero-volume day in a traded stock.
		"zero day": {[]float64{3, 3, 0}, []float64{nan, nan, 0}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			assertSeries(t, "VolumeRatio", VolumeRatio(tc.vol, 3), tc.want, 1e-12)
		})
	}
}
