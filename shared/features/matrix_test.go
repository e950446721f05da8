package features

import (
	"encoding/csv"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/market"
)

// mustReadBars reads a Yahoo-style daily CSV (Date,High,Low,Open,Close,Volume,Adj Close).
func mustReadBars(tb testing.TB, path string) []market.Bar {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	records, err := csv.NewReader(f).ReadAll()
	if err != nil {
		tb.Fatal(err)
	}
	if len(records) < 2 || !slices.Equal(records[0], []string{"Date", "High", "Low", "Open", "Close", "Volume", "Adj Close"}) {
		tb.Fatalf("%s: unexpected header %v", path, records[0])
	}
	bars := make([]market.Bar, 0, len(records)-1)
	for line, r := range records[1:] {
		day, err := time.ParseInLocation(time.DateOnly, r[0], market.JST)
		if err != nil {
			tb.Fatalf("%s:%d: %v", path, line+2, err)
		}
		var v [6]float64
		for j := range v {
			if v[j], err = strconv.ParseFloat(r[j+1], 64); err != nil {
				tb.Fatalf("%s:%d: %v", path, line+2, err)
			}
		}
		bars = append(bars, market.Bar{Time: day.UTC(), High: v[0], Low: v[1], Open: v[2],
			Close: v[3], Volume: v[4], AdjClose: v[5]})
	}
	return bars
}

func toyota(tb testing.TB) []market.Bar {
	tb.Helper()
	bars := mustReadBars(tb, "testdata/7203.T.csv")
	if len(bars) != 1000 {
		tb.Fatalf("7203.T: %d bars, want 1000", len(bars))
	}
	return bars
}

// same is bitwise equality, except that any NaN equals any NaN.
func same(a, b float64) bool {
	return math.Float64bits(a) == math.Float64bits(b) || (math.IsNaN(a) && math.IsNaN(b))
}

// cutPoints is every index through the longest warm-up and well past it, then every 7th, then
// the last.
func cutPoints(n int) []int {
	var cuts []int
	for t := 0; t < n; t++ {
		if t < 120 || t%7 == 0 || t == n-1 {
			cuts = append(cuts, t)
		}
	}
	return cuts
}

// lookAhead reports the first row t of compute(bars) that changes when the bars after a cut
// point are removed or rewritten, or nil when there is none. Every row up to the cut is
// compared, not only the last.
func lookAhead(bars []market.Bar, compute func([]market.Bar) [][]float64) error {
	full := compute(bars)
	for _, cut := range cutPoints(len(bars)) {
		// Rewriting the future catches code that guards i+1 < len and so looks the same on a
		// truncated series.
		rewritten := slices.Clone(bars)
		for i := cut + 1; i < len(rewritten); i++ {
			k := 1 + 0.3*math.Sin(float64(i))
			b := &rewritten[i]
			b.Open, b.High, b.Low, b.Close, b.Volume = b.Open*k, b.High*k*1.01, b.Low*k*0.99, b.Close*k, b.Volume*k*3
		}
		for variant, input := range map[string][]market.Bar{"truncated": bars[:cut+1], "rewritten": rewritten} {
			got := compute(input)
			for t := 0; t <= cut; t++ {
				if len(got[t]) != len(full[t]) {
					return fmt.Errorf("cut %d (%s): row %d has %d values, want %d", cut, variant, t, len(got[t]), len(full[t]))
				}
				for j := range full[t] {
					if !same(got[t][j], full[t][j]) {
						return fmt.Errorf("cut %d (%s): row %d column %d = %v, with all bars %v",
							cut, variant, t, j, got[t][j], full[t][j])
					}
				}
			}
		}
	}
	return nil
}

func matrixRows(bars []market.Bar) [][]float64 {
	rows, _ := Matrix(bars)
	return rows
}

func TestMatrixNoLookAhead(t *testing.T) {
	t.Parallel()
	if err := lookAhead(toyota(t), matrixRows); err != nil {
		t.Fatal(err)
	}
}

func TestComputeNoLookAhead(t *testing.T) {
	t.Parallel()
	computeRows := func(bars []market.Bar) [][]float64 {
		series, err := Compute(bars, []string{"all"})
		if err != nil {
			t.Fatal(err)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range series {
				if !yield(k) {
					return
				}
			}
		})
		rows := make([][]float64, len(bars))
		for i := range rows {
			for _, k := range keys {
				rows[i] = append(rows[i], series[k][i])
			}
		}
		return rows
	}
	if err := lookAhead(toyota(t), computeRows); err != nil {
		t.Fatal(err)
	}
}

// TestLookAheadCatchesLeaks shows that the check above can fail.
func TestLookAheadCatchesLeaks(t *testing.T) {
	t.Parallel()
	leaks := map[string]func([]market.Bar) [][]float64{
		// A centred average that peeks at the next bar when there is one.
		"next bar": func(bars []market.Bar) [][]float64 {
			rows := make([][]float64, len(bars))
			for i := range bars {
				v := bars[i].Close
				if i+1 < len(bars) {
					v = (v + bars[i+1].Close) / 2
				}
				rows[i] = []float64{v}
			}
			return rows
		},
		// Scaling by a statistic of the whole series.
		"full-series max": func(bars []market.Bar) [][]float64 {
			var hi float64
			for _, b := range bars {
				hi = max(hi, b.High)
			}
			rows := make([][]float64, len(bars))
			for i, b := range bars {
				rows[i] = []float64{b.Close / hi}
			}
			return rows
		},
	}
	bars := toyota(t)
	for name, leak := range leaks {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := lookAhead(bars, leak); err == nil {
				t.Error("look-ahead not detected")
			}
		})
	}
}

func TestNames(t *testing.T) {
	t.Parallel()
	// Trained models store columns by position: reordering breaks them, appending does not.
	want := []string{
		"ret_1", "ret_5", "ret_10", "ret_20", "log_ret_1",
		"range_hl", "body", "upper_shadow", "lower_shadow",
		"sma5_ratio", "sma10_ratio", "sma20_ratio", "sma50_ratio",
		"sma5_slope", "sma10_slope", "sma20_slope", "sma50_slope",
		"ema12_ratio", "ema26_ratio", "macd", "macd_signal", "macd_hist",
		"rsi14", "bb_percent_b", "atr14", "rvol_5", "rvol_10", "rvol_20", "log_volume_ratio20",
	}
	names := Names()
	if !slices.Equal(names[:min(len(names), len(want))], want) {
		t.Errorf("Names() = %v\nwant prefix %v", names, want)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(names)))) != len(names) {
		t.Errorf("duplicate names in %v", names)
	}
	names[0] = "changed"
	if Names()[0] != "ret_1" {
		t.Error("Names() shares its backing array")
	}
}

// TestMatrixColumns recomputes every feature of a few rows of real data from its definition,
// which also pins the column order.
func TestMatrixColumns(t *testing.T) {
	t.Parallel()
	bars := toyota(t)
	rows, first := Matrix(bars)
	if len(rows) != len(bars) {
		t.Fatalf("len(rows) = %d, want %d", len(rows), len(bars))
	}
	// The slowest feature is the 5-bar slope of the 50-bar SMA: 49 + 5.
	if first != 54 {
		t.Errorf("first = %d, want 54", first)
	}
	if allFinite(rows[first-1]) {
		t.Errorf("row %d before first is all finite: %v", first-1, rows[first-1])
	}
	for i := first; i < len(rows); i++ {
		if !allFinite(rows[i]) {
			t.Fatalf("row %d after first is not finite: %v", i, rows[i])
		}
	}

	c := make([]float64, len(bars))
	for i, b := range bars {
		c[i] = b.Close
	}
	sma := func(i, n int) float64 {
		var s float64
		for _, v := range c[i-n+1 : i+1] {
			s += v
		}
		return s / float64(n)
	}
	macd, sig, hist := MACD(c, 12, 26, 9)
	_, _, _, pb := Bollinger(c, 20, 2)
	ema12, ema26, rsi, atr := EMA(c, 12), EMA(c, 26), RSI(c, 14), ATR(bars, 14)
	rv5, rv10, rv20 := RealisedVol(c, 5), RealisedVol(c, 10), RealisedVol(c, 20)

	// Yahoo emits zero-volume rows on some holidays (the first is 2016-07-11).
	zeroVol := slices.IndexFunc(bars[first:], func(b market.Bar) bool { return b.Volume == 0 }) + first
	if zeroVol < first {
		t.Fatal("no zero-volume row after warm-up in 7203.T")
	}
	for _, i := range []int{60, zeroVol, 500, 999} {
		b := bars[i]
		var vsum float64
		for _, bb := range bars[i-19 : i+1] {
			vsum += bb.Volume
		}
		want := map[string]float64{
			"ret_1": c[i]/c[i-1] - 1, "ret_5": c[i]/c[i-5] - 1, "ret_10": c[i]/c[i-10] - 1, "ret_20": c[i]/c[i-20] - 1,
			"log_ret_1":    math.Log(c[i] / c[i-1]),
			"range_hl":     (b.High - b.Low) / c[i],
			"body":         (c[i] - b.Open) / c[i],
			"upper_shadow": (b.High - max(b.Open, c[i])) / c[i],
			"lower_shadow": (min(b.Open, c[i]) - b.Low) / c[i],
			"sma5_ratio":   c[i]/sma(i, 5) - 1, "sma10_ratio": c[i]/sma(i, 10) - 1,
			"sma20_ratio": c[i]/sma(i, 20) - 1, "sma50_ratio": c[i]/sma(i, 50) - 1,
			"sma5_slope": sma(i, 5)/sma(i-5, 5) - 1, "sma10_slope": sma(i, 10)/sma(i-5, 10) - 1,
			"sma20_slope": sma(i, 20)/sma(i-5, 20) - 1, "sma50_slope": sma(i, 50)/sma(i-5, 50) - 1,
			"ema12_ratio": c[i]/ema12[i] - 1, "ema26_ratio": c[i]/ema26[i] - 1,
			"macd": macd[i] / c[i], "macd_signal": sig[i] / c[i], "macd_hist": hist[i] / c[i],
			"rsi14": rsi[i] / 100, "bb_percent_b": pb[i], "atr14": atr[i] / c[i],
			"rvol_5": rv5[i], "rvol_10": rv10[i], "rvol_20": rv20[i],
			"log_volume_ratio20": math.Log(max(b.Volume/(vsum/20), 1.0/20)),
		}
		if len(want) != len(Names()) {
			t.Fatalf("test checks %d features, Names has %d", len(want), len(Names()))
		}
		for j, name := range Names() {
			if got := rows[i][j]; math.Abs(got-want[name]) > 1e-12 {
				t.Errorf("row %d %s = %.15g, want %.15g", i, name, got, want[name])
			}
		}
	}
	if v := rows[zeroVol][len(Names())-1]; v != math.Log(1.0/20) {
		t.Errorf("zero-volume day: log_volume_ratio20 = %v, want ln(1/20)", v)
	}
}

func synthetic(n int, bar func(i int) market.Bar) []market.Bar {
	bars := make([]market.Bar, n)
	for i := range bars {
		bars[i] = bar(i)
	}
	return bars
}

func TestMatrixEdgeCases(t *testing.T) {
	t.Parallel()
	wavy := func(i int) market.Bar {
		c := 100 + 10*math.Sin(float64(i)/5)
		return market.Bar{Open: c - 0.5, High: c + 1, Low: c - 1, Close: c, Volume: 1000 + float64(i%7)*100}
	}
	col := func(name string) int { return slices.Index(Names(), name) }
	tests := map[string]struct {
		bars      []market.Bar
		wantFirst int
		// want maps a column to its value on every row from first on.
		want map[string]float64
	}{
		"empty":                {bars: nil, wantFirst: 0},
		"one bar":              {bars: synthetic(1, wavy), wantFirst: 1},
		"shorter than warm-up": {bars: synthetic(54, wavy), wantFirst: 54},
		"just warmed up":       {bars: synthetic(55, wavy), wantFirst: 54},
		"constant prices": {
			bars:      synthetic(80, func(int) market.Bar { return market.Bar{Open: 50, High: 50, Low: 50, Close: 50, Volume: 10} }),
			wantFirst: 54,
			want: map[string]float64{"ret_20": 0, "log_ret_1": 0, "range_hl": 0, "sma50_ratio": 0, "sma50_slope": 0,
				"macd_hist": 0, "rsi14": 0.5, "bb_percent_b": 0.5, "atr14": 0, "rvol_20": 0, "log_volume_ratio20": 0},
		},
		// An index: no volume ever.
		"zero volume": {
			bars: synthetic(80, func(i int) market.Bar {
				b := wavy(i)
				b.Volume = 0
				return b
			}),
			wantFirst: 54,
			want:      map[string]float64{"log_volume_ratio20": 0},
		},
		// A vendor's zero print must not leave NaN or Inf behind once warmed up.
		"zero close": {
			bars: synthetic(120, func(i int) market.Bar {
				if i == 70 {
					return market.Bar{}
				}
				return wavy(i)
			}),
			wantFirst: 54,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			rows, first := Matrix(tc.bars)
			if len(rows) != len(tc.bars) || first != tc.wantFirst {
				t.Fatalf("len(rows), first = %d, %d; want %d, %d", len(rows), first, len(tc.bars), tc.wantFirst)
			}
			for i := range rows {
				if len(rows[i]) != len(Names()) {
					t.Fatalf("row %d has %d features, want %d", i, len(rows[i]), len(Names()))
				}
				if i >= first && !allFinite(rows[i]) {
					t.Errorf("row %d: %v", i, rows[i])
				}
				if i < first && allFinite(rows[i]) {
					t.Errorf("row %d before first %d is finite", i, first)
				}
			}
			for name, want := range tc.want {
				for i := first; i < len(rows); i++ {
					if got := rows[i][col(name)]; got != want {
						t.Errorf("row %d %s = %v, want %v", i, name, got, want)
					}
				}
			}
		})
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	closes := func(cs ...float64) []market.Bar {
		bars := make([]market.Bar, len(cs))
		for i, c := range cs {
			bars[i].Close = c
		}
		return bars
	}
	// Returns: +1%, 0, -0.495%, +1.492%, -2%.
	series := closes(100, 101, 101, 100.5, 102, 99.96)
	tests := map[string]struct {
		bars     []market.Bar
		deadBand float64
		want     []int
	}{
		"binary":                  {series, 0, []int{1, 0, 0, 1, 0, -1}},
		"negative band is binary": {series, -0.01, []int{1, 0, 0, 1, 0, -1}},
		// |-0.495%| is inside a 0.5% band: flat.
		"dead band 0.5%":     {series, 0.005, []int{2, 1, 1, 2, 0, -1}},
		"dead band 1.5%":     {series, 0.015, []int{1, 1, 1, 1, 0, -1}},
		"empty":              {nil, 0, []int{}},
		"one bar":            {closes(100), 0.01, []int{-1}},
		"zero close unknown": {closes(0, 5, 6), 0, []int{-1, 1, -1}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := Labels(tc.bars, tc.deadBand); !slices.Equal(got, tc.want) {
				t.Errorf("Labels(%v) = %v, want %v", tc.deadBand, got, tc.want)
			}
		})
	}

	// On real data every label but the last is known, and label i agrees with ret_1 of row i+1.
	bars := toyota(t)
	labels := Labels(bars, 0)
	rows, _ := Matrix(bars)
	for i := 0; i+1 < len(bars); i++ {
		want := 0
		if rows[i+1][0] > 0 {
			want = 1
		}
		if labels[i] != want {
			t.Fatalf("label %d = %d, next return %v", i, labels[i], rows[i+1][0])
		}
	}
	if labels[len(labels)-1] != LabelUnknown {
		t.Errorf("last label = %d, want %d", labels[len(labels)-1], LabelUnknown)
	}
}

func BenchmarkMatrix(b *testing.B) {
	bars := toyota(b)
	b.ReportAllocs()
	for b.Loop() {
		Matrix(bars)
	}
}
