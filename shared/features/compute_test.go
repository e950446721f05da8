package features

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseIndicatorList(t *testing.T) {
	t.Parallel()
	every := IndicatorNames()
	tests := map[string]struct {
		in      string
		want    []string
		wantErr string // substring of the error; empty means no error
	}{
		"one":             {in: "rsi14", want: []string{"rsi14"}},
		"two in order":    {in: "macd,rsi14", want: []string{"macd", "rsi14"}},
		"spaces and case": {in: " RSI14 , Bollinger ", want: []string{"rsi14", "bollinger"}},
		"duplicates":      {in: "sma20,sma20,SMA20", want: []string{"sma20"}},
		"all":             {in: "all", want: every},
		"all and more":    {in: "ema26,all", want: []string{"ema26", "rsi14", "macd", "bollinger", "sma20", "ema12"}},
		"unknown":         {in: "rsi14,vwap", wantErr: `unknown indicator "vwap" (valid: rsi14, macd, bollinger, sma20, ema12, ema26, all)`},
		"empty":           {in: "", wantErr: "empty list"},
		"blank":           {in: "  ", wantErr: "empty list"},
		"empty item":      {in: "rsi14,,macd", wantErr: `unknown indicator ""`},
		"trailing comma":  {in: "rsi14,", wantErr: `unknown indicator ""`},
		"long name cut":   {in: strings.Repeat("x", 1000), wantErr: `"` + strings.Repeat("x", 32) + `..."`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseIndicatorList(tc.in)
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrUnknownIndicator) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseIndicatorList(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("ParseIndicatorList(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
			}
		})
	}
}

func FuzzParseIndicatorList(f *testing.F) {
	for _, s := range []string{"rsi14", "rsi14,macd", "all", " Bollinger ,ema12", "", ",", "sma20,,", "RSI14,rsi14", "\xff,all"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		names, err := ParseIndicatorList(s)
		if err != nil {
			if !errors.Is(err, ErrUnknownIndicator) || names != nil {
				t.Fatalf("ParseIndicatorList(%q) = %v, %v", s, names, err)
			}
			// %q spends at most 4 bytes (\xNN) per byte of the truncated name.
			if limit := len(unknownName("").Error()) + 4*maxNameInError + len("..."); len(err.Error()) > limit {
				t.Fatalf("error echoes too much input: %d bytes > %d", len(err.Error()), limit)
			}
			return
		}
		if len(names) == 0 || len(names) > len(IndicatorNames()) {
			t.Fatalf("ParseIndicatorList(%q) = %v", s, names)
		}
		seen := map[string]bool{}
		for _, n := range names {
			if seen[n] || !slices.Contains(IndicatorNames(), n) {
				t.Fatalf("ParseIndicatorList(%q) = %v: duplicate or unknown %q", s, names, n)
			}
			seen[n] = true
		}
		// Canonical output parses to itself, and Compute accepts it.
		again, err := ParseIndicatorList(strings.Join(names, ","))
		if err != nil || !slices.Equal(again, names) {
			t.Fatalf("reparse of %v = %v, %v", names, again, err)
		}
		if _, err := Compute(nil, names); err != nil {
			t.Fatalf("Compute(%v): %v", names, err)
		}
	})
}

func TestCompute(t *testing.T) {
	t.Parallel()
	bars := toyota(t)
	closes := make([]float64, len(bars))
	for i, b := range bars {
		closes[i] = b.Close
	}
	macd, sig, hist := MACD(closes, 12, 26, 9)
	mid, up, lo, pb := Bollinger(closes, 20, 2)
	want := map[string][]float64{
		"rsi14": RSI(closes, 14),
		"macd":  macd, "macd_signal": sig, "macd_hist": hist,
		"bb_middle": mid, "bb_upper": up, "bb_lower": lo, "bb_percent_b": pb,
		"sma20": SMA(closes, 20), "ema12": EMA(closes, 12), "ema26": EMA(closes, 26),
	}
	tests := map[string]struct {
		names []string
		keys  []string
	}{
		"all":       {[]string{"all"}, []string{"bb_lower", "bb_middle", "bb_percent_b", "bb_upper", "ema12", "ema26", "macd", "macd_hist", "macd_signal", "rsi14", "sma20"}},
		"rsi14":     {[]string{"rsi14"}, []string{"rsi14"}},
		"macd":      {[]string{"macd"}, []string{"macd", "macd_hist", "macd_signal"}},
		"bollinger": {[]string{"bollinger", "sma20"}, []string{"bb_lower", "bb_middle", "bb_percent_b", "bb_upper", "sma20"}},
		"repeated":  {[]string{"ema12", "ema12", "all"}, []string{"bb_lower", "bb_middle", "bb_percent_b", "bb_upper", "ema12", "ema26", "macd", "macd_hist", "macd_signal", "rsi14", "sma20"}},
		"none":      {nil, nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := Compute(bars, tc.names)
			if err != nil {
				t.Fatal(err)
			}
			var keys []string
			for k := range got {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			if !slices.Equal(keys, tc.keys) {
				t.Fatalf("keys = %v, want %v", keys, tc.keys)
			}
			for k, series := range got {
				assertSeries(t, k, series, want[k], 0)
			}
		})
	}

	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		if _, err := Compute(bars, []string{"rsi14", "RSI14"}); !errors.Is(err, ErrUnknownIndicator) {
			t.Errorf("Compute(RSI14) error = %v, want ErrUnknownIndicator (names must be canonical)", err)
		}
	})
	t.Run("empty bars", func(t *testing.T) {
		t.Parallel()
		got, err := Compute(nil, []string{"all"})
		if err != nil || len(got) != 11 {
			t.Fatalf("Compute(nil) = %v, %v", got, err)
		}
		for k, s := range got {
			if len(s) != 0 {
				t.Errorf("%s has %d values", k, len(s))
			}
		}
	})
	t.Run("warm-up", func(t *testing.T) {
		t.Parallel()
		got, err := Compute(bars[:30], []string{"macd", "rsi14"})
		if err != nil {
			t.Fatal(err)
		}
		// 30 bars: RSI from 14, the MACD line from 25, no signal yet (33).
		assertSeries(t, "rsi14 warm-up", got["rsi14"][13:15], []float64{nan, want["rsi14"][14]}, 0)
		assertSeries(t, "macd warm-up", got["macd"][24:26], []float64{nan, want["macd"][25]}, 0)
		assertSeries(t, "signal warm-up", got["macd_signal"], nans(30), 0)
	})
}
