package market

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// friday is the close of an ordinary week (Mon 2024-06-10 – Fri 2024-06-14).
var friday = jst(2024, 6, 14, 15, 45)

func mustBars(tb testing.TB, p Provider, q Query) []Bar {
	tb.Helper()
	bars, err := p.Bars(context.Background(), q)
	if err != nil {
		tb.Fatalf("Bars(%+v): %v", q, err)
	}
	checkBars(tb, bars)
	return bars
}

func TestSyntheticIsDeterministic(t *testing.T) {
	t.Parallel()
	q := Query{Symbol: "7203.T", Period: "1mo", Interval: "1d", End: friday}
	a := mustBars(t, NewSynthetic(Options{}), q)
	b := mustBars(t, NewSynthetic(Options{}), q)
	if len(a) == 0 || !reflect.DeepEqual(a, b) {
		t.Fatalf("two providers disagree on the same query: %d vs %d bars", len(a), len(b))
	}
	q.Symbol = "6758.T"
	c := mustBars(t, NewSynthetic(Options{}), q)
	if reflect.DeepEqual(a, c) || a[0].Close == c[0].Close {
		t.Fatalf("7203.T and 6758.T have the same bars")
	}
}

// A bar depends on its symbol and time, not on the query that asks for it.
func TestSyntheticBarsDoNotDependOnThePeriod(t *testing.T) {
	t.Parallel()
	tests := []struct {
		interval   Interval
		long, shrt Period
		wantShort  int // bars in the short query, 0 = don't check
	}{
		{"1d", "1mo", "5d", 5},
		{"1d", "10y", "1mo", 0},
		{"1m", "5d", "1d", 300}, // 09:00–11:30 and 12:30–15:00 in June 2024
		{"5m", "1mo", "5d", 5 * 60},
		{"90m", "1mo", "5d", 5 * 4}, // 09:00, 10:30 (to 11:30), 12:30, 14:00
		{"1h", "1y", "1mo", 0},
		{"1wk", "1y", "3mo", 0},
		{"1mo", "5y", "1y", 13},
	}
	s := NewSynthetic(Options{})
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %s vs %s", tc.interval, tc.long, tc.shrt), func(t *testing.T) {
			t.Parallel()
			long := mustBars(t, s, Query{Symbol: "9984.T", Period: tc.long, Interval: tc.interval, End: friday})
			short := mustBars(t, s, Query{Symbol: "9984.T", Period: tc.shrt, Interval: tc.interval, End: friday})
			if tc.wantShort > 0 && len(short) != tc.wantShort {
				t.Errorf("short query has %d bars, want %d", len(short), tc.wantShort)
			}
			if len(short) == 0 || len(long) <= len(short) {
				t.Fatalf("long query has %d bars, short %d", len(long), len(short))
			}
			tail := long[len(long)-len(short):]
			if !reflect.DeepEqual(tail, short) {
				t.Errorf("the last %d bars of %s differ from %s:\n%+v\n%+v", len(short), tc.long, tc.shrt, tail[0], short[0])
			}
		})
	}
}

func TestSyntheticSessionsAndCalendar(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		end         time.Time
		closed      []string // weekdays in the window without trading
		wantMinutes int      // 1m bars in a full day
		closeAt     time.Time
	}{
		"Golden Week 2024": {
			end: jst(2024, 5, 10, 16, 0), closed: []string{"2024-04-29", "2024-05-03", "2024-05-06"},
			wantMinutes: 300, closeAt: jst(2024, 5, 10, 15, 0),
		},
		"first weeks of 15:30 closes": {
			end: jst(2024, 11, 29, 16, 0), closed: []string{"2024-11-04"},
			wantMinutes: 330, closeAt: jst(2024, 11, 29, 15, 30),
		},
		"year end 2024": {
			end: jst(2025, 1, 10, 16, 0), closed: []string{"2024-12-31", "2025-01-01", "2025-01-02", "2025-01-03"},
			wantMinutes: 330, closeAt: jst(2025, 1, 10, 15, 30),
		},
	}
	s := NewSynthetic(Options{})
	for name, tc := range tests {
		for _, iv := range []Interval{"1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d"} {
			t.Run(name+" "+string(iv), func(t *testing.T) {
				t.Parallel()
				p := Period("1mo")
				if iv == "1m" {
					p = "5d"
				}
				bars := mustBars(t, s, Query{Symbol: "8306.T", Period: p, Interval: iv, End: tc.end})
				got := map[string]int{}
				for _, b := range bars {
					if iv.Intraday() && !InSession(b.Time) {
						t.Fatalf("bar at %v is outside the sessions", b.Time.In(JST))
					}
					got[b.Time.In(JST).Format(time.DateOnly)]++
				}
				want := map[string]bool{}
				for d := p.Span(tc.end).AddDate(0, 0, 1); !d.After(tc.end); d = d.AddDate(0, 0, 1) {
					if d.Weekday() != time.Saturday && d.Weekday() != time.Sunday && !slices.Contains(tc.closed, d.Format(time.DateOnly)) {
						want[d.Format(time.DateOnly)] = true
					}
				}
				for day, n := range got {
					if !want[day] {
						t.Errorf("bars on %s, which is not a trading day", day)
					}
					if iv == "1m" && n != tc.wantMinutes {
						t.Errorf("%s has %d minute bars, want %d", day, n, tc.wantMinutes)
					}
				}
				if len(got) != len(want) {
					t.Errorf("bars on %d days, want %d", len(got), len(want))
				}
				if iv == "1m" {
					if end := bars[len(bars)-1].Time.Add(time.Minute); !end.Equal(tc.closeAt) {
						t.Errorf("last minute ends %v, want %v", end.In(JST), tc.closeAt)
					}
				}
			})
		}
	}
}

func TestSyntheticPricesAndVolumes(t *testing.T) {
	t.Parallel()
	s := NewSynthetic(Options{})
	symbols := []string{"7203.T", "6758.T", "9984.T", "8306.T", "4502.T", "1301.T", "130A.T", "AAPL", "^N225", "^TOPX"}
	for _, sym := range symbols {
		for _, iv := range []Interval{"1m", "15m", "1d", "1wk", "3mo"} {
			p := map[Interval]Period{"1m": "5d", "15m": "1mo", "1d": "1y", "1wk": "1y", "3mo": "2y"}[iv]
			t.Run(sym+" "+string(iv), func(t *testing.T) {
				t.Parallel()
				bars := mustBars(t, s, Query{Symbol: sym, Period: p, Interval: iv, End: friday})
				index := strings.HasPrefix(sym, "^")
				for _, b := range bars {
					if index {
						if b.Volume != 0 || b.Low < 10_000 || b.High > 80_000 {
							t.Fatalf("index bar %+v: want volume 0 and a level in 10,000–80,000", b)
						}
						continue
					}
					if b.Low < 50 || b.High > 100_000 {
						t.Fatalf("bar %+v is outside a plausible price range", b)
					}
					for _, px := range []float64{b.Open, b.High, b.Low, b.Close} {
						if math.Mod(px, TickSize(px)) != 0 {
							t.Fatalf("price %v is off the tick grid (%v) in %+v", px, TickSize(px), b)
						}
					}
					if math.Mod(b.Volume, 100) != 0 {
						t.Fatalf("volume %v is not whole lots of 100", b.Volume)
					}
				}
			})
		}
	}
}

// Daily bars are the day's minutes folded, so intervals never disagree.
func TestSyntheticDailyBarsFoldMinutes(t *testing.T) {
	t.Parallel()
	s := NewSynthetic(Options{})
	for _, end := range []time.Time{friday, jst(2024, 6, 14, 10, 17)} { // after the close, mid-morning
		daily := mustBars(t, s, Query{Symbol: "7203.T", Period: "5d", Interval: "1d", End: end})
		minutes := mustBars(t, s, Query{Symbol: "7203.T", Period: "5d", Interval: "1m", End: end})
		folded := map[time.Time]Bar{}
		for _, m := range minutes {
			day := dayStart(m.Time)
			if f, ok := folded[day]; ok {
				folded[day] = merge(f, m)
			} else {
				m.Time = day
				folded[day] = m
			}
		}
		if len(folded) != len(daily) {
			t.Fatalf("End %v: %d days of minutes, %d daily bars", end, len(folded), len(daily))
		}
		for _, d := range daily {
			if f := folded[d.Time]; f != d {
				t.Errorf("End %v: daily bar %+v != folded minutes %+v", end, d, f)
			}
		}
	}
}

// Query.End hides the future: a minute appears once it has ended.
func TestSyntheticEndCutsTheLiveBar(t *testing.T) {
	t.Parallel()
	s := NewSynthetic(Options{Now: clock(jst(2024, 6, 14, 10, 17).Add(30 * time.Second))})
	mins := mustBars(t, s, Query{Symbol: "7203.T", Period: "1d", Interval: "1m"})
	if last := mins[len(mins)-1].Time; !last.Equal(jst(2024, 6, 14, 10, 16).UTC()) {
		t.Errorf("last minute starts %v, want 10:16 JST", last.In(JST))
	}
	hours := mustBars(t, s, Query{Symbol: "7203.T", Period: "1d", Interval: "1h"})
	last, prev := hours[len(hours)-1], hours[len(hours)-2]
	if !prev.Time.Equal(jst(2024, 6, 14, 9, 0).UTC()) || !last.Time.Equal(jst(2024, 6, 14, 10, 0).UTC()) || last.Close != mins[len(mins)-1].Close {
		t.Errorf("want a whole 09:00 bar and a partial 10:00 bar closing at the last minute, got %+v", hours)
	}
	before := NewSynthetic(Options{Now: clock(jst(2024, 6, 14, 8, 0))})
	daily := mustBars(t, before, Query{Symbol: "7203.T", Period: "5d", Interval: "1d"})
	if last := daily[len(daily)-1].Time; !last.Equal(jst(2024, 6, 13, 0, 0).UTC()) {
		t.Errorf("before the open the last daily bar is %v, want Thursday", last.In(JST))
	}
}

func TestSyntheticErrors(t *testing.T) {
	t.Parallel()
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := map[string]struct {
		ctx  context.Context
		q    Query
		want error
	}{
		"invalid symbol":          {context.Background(), Query{Symbol: "7203.T/../x"}, ErrUnknownSymbol},
		"5d interval":             {context.Background(), Query{Symbol: "7203.T", Interval: "5d"}, ErrUnsupported},
		"1m for a month":          {context.Background(), Query{Symbol: "7203.T", Period: "1mo", Interval: "1m"}, ErrUnsupported},
		"beyond the market's end": {context.Background(), Query{Symbol: "7203.T", End: jst(2100, 1, 5, 0, 0)}, ErrUnsupported},
		"canceled":                {canceled, Query{Symbol: "7203.T", Period: "max"}, context.Canceled},
	}
	s := NewSynthetic(Options{Now: clock(friday)})
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := s.Bars(tc.ctx, tc.q); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if bars, err := s.Bars(context.Background(), Query{Symbol: "7203.T", End: jst(1999, 6, 1, 0, 0)}); err != nil || len(bars) != 0 {
		t.Errorf("before the epoch: %d bars, %v; want none", len(bars), err)
	}
}

// The stylised facts the simulator promises, measured on five years of bars.
func TestSyntheticStylisedFacts(t *testing.T) {
	t.Parallel()
	s := NewSynthetic(Options{})
	for _, sym := range []string{"7203.T", "6758.T", "9432.T", "2914.T"} {
		t.Run(sym, func(t *testing.T) {
			t.Parallel()
			bars := mustBars(t, s, Query{Symbol: sym, Period: "5y", Interval: "1d", End: friday})
			var absRet, vol []float64
			for i := 1; i < len(bars); i++ {
				absRet = append(absRet, math.Abs(math.Log(bars[i].Close/bars[i-1].Close)))
				vol = append(vol, bars[i].Volume)
			}
			if ac := corr(absRet[1:], absRet[:len(absRet)-1]); ac < 0.05 {
				t.Errorf("lag-1 autocorrelation of |returns| = %.3f, want volatility clustering (> 0.05)", ac)
			}
			if c := corr(absRet, vol); c < 0.2 {
				t.Errorf("corr(|return|, volume) = %.3f, want > 0.2", c)
			}
			// Volume is U-shaped over the day: the first and last quarter hours trade more
			// per minute than the middle of the morning.
			mins := mustBars(t, s, Query{Symbol: sym, Period: "5d", Interval: "1m", End: friday})
			var edge, middle, ne, nm float64
			for _, m := range mins {
				hm := m.Time.In(JST).Hour()*60 + m.Time.In(JST).Minute()
				switch {
				case hm < 9*60+15 || hm >= 15*60+15:
					edge, ne = edge+m.Volume, ne+1
				case hm >= 10*60 && hm < 11*60:
					middle, nm = middle+m.Volume, nm+1
				}
			}
			if edge/ne < 2*middle/nm {
				t.Errorf("volume per minute at the open/close %.0f is not well above mid-morning %.0f", edge/ne, middle/nm)
			}
		})
	}
}

// The daily walk switches regimes every few weeks, as documented.
func TestSyntheticRegimesSwitch(t *testing.T) {
	t.Parallel()
	m := newSymbolModel("7203.T")
	switches, seen := 0, map[int]bool{}
	prev := m.regime
	d := jst(2010, 1, 4, 0, 0)
	for range 2000 {
		m.step(d)
		d = d.AddDate(0, 0, 1)
		seen[m.regime] = true
		if m.regime != prev {
			switches++
			prev = m.regime
		}
	}
	if switches < 25 || switches > 100 || len(seen) != 3 {
		t.Errorf("%d regime switches over 2000 days through %d regimes, want ~57 through 3", switches, len(seen))
	}
}

func corr(x, y []float64) float64 {
	n := float64(len(x))
	var sx, sy, sxx, syy, sxy float64
	for i := range x {
		sx, sy = sx+x[i], sy+y[i]
		sxx, syy, sxy = sxx+x[i]*x[i], syy+y[i]*y[i], sxy+x[i]*y[i]
	}
	return (sxy - sx*sy/n) / math.Sqrt((sxx-sx*sx/n)*(syy-sy*sy/n))
}

func BenchmarkSyntheticDaily10y(b *testing.B) {
	s := NewSynthetic(Options{})
	for b.Loop() {
		if _, err := s.Bars(context.Background(), Query{Symbol: "7203.T", Period: "10y", Interval: "1d", End: friday}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSynthetic5m1mo(b *testing.B) {
	s := NewSynthetic(Options{})
	for b.Loop() {
		if _, err := s.Bars(context.Background(), Query{Symbol: "7203.T", Period: "1mo", Interval: "5m", End: friday}); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleNewSynthetic() {
	now := time.Date(2024, 6, 14, 15, 45, 0, 0, JST)
	p := NewSynthetic(Options{Now: func() time.Time { return now }})
	bars, err := p.Bars(context.Background(), Query{Symbol: "7203.T", Period: "5d", Interval: "1d"})
	if err != nil {
		panic(err)
	}
	for _, b := range bars {
		fmt.Printf("%s open %.0f close %.0f volume %.0f\n", b.Time.In(JST).Format("Mon 01-02"), b.Open, b.Close, b.Volume)
	}
	// Output:
	// Mon 06-10 open 1192 close 1181 volume 891200
	// Tue 06-11 open 1164 close 1172 volume 1877000
	// Wed 06-12 open 1180 close 1174 volume 1531100
	// Thu 06-13 open 1158 close 1152 volume 1696100
	// Fri 06-14 open 1138 close 1144 volume 1596800
}
