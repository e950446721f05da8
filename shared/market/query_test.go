package market

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestResolve(t *testing.T) {
	t.Parallel()
	now := jst(2024, 6, 14, 15, 40)
	tests := map[string]struct {
		q        Query
		wantErr  error
		wantSym  string
		wantEnd  time.Time
		wantFrom time.Time
	}{
		"defaults and clock": {
			q:       Query{Symbol: " 7203.t "},
			wantSym: "7203.T", wantEnd: now.UTC(), wantFrom: jst(2024, 5, 14, 15, 40).UTC(),
		},
		"explicit end": {
			q:       Query{Symbol: "^N225", Period: "5d", Interval: "1d", End: jst(2024, 6, 7, 15, 30)},
			wantSym: "^N225", wantEnd: jst(2024, 6, 7, 15, 30).UTC(), wantFrom: jst(2024, 6, 2, 15, 30).UTC(),
		},
		"weekly bars start on the Monday": {
			q:       Query{Symbol: "7203.T", Period: "1mo", Interval: "1wk"},
			wantSym: "7203.T", wantEnd: now.UTC(), wantFrom: jst(2024, 5, 13, 0, 0).UTC(),
		},
		"bad symbol":   {q: Query{Symbol: "../etc/passwd"}, wantErr: ErrUnknownSymbol},
		"bad period":   {q: Query{Symbol: "7203.T", Period: "2d"}, wantErr: ErrUnsupported},
		"bad interval": {q: Query{Symbol: "7203.T", Interval: "4h"}, wantErr: ErrUnsupported},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := resolve(tc.q, clock(now))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Symbol != tc.wantSym || !r.End.Equal(tc.wantEnd) || !r.from.Equal(tc.wantFrom) {
				t.Errorf("got %s %v from %v, want %s %v from %v", r.Symbol, r.End, r.from, tc.wantSym, tc.wantEnd, tc.wantFrom)
			}
		})
	}
}

func TestBucketStart(t *testing.T) {
	t.Parallel()
	at := jst(2024, 8, 15, 10, 0) // a Thursday
	tests := map[Interval]time.Time{
		"1d":  jst(2024, 8, 15, 0, 0),
		"1wk": jst(2024, 8, 12, 0, 0),
		"1mo": jst(2024, 8, 1, 0, 0),
		"3mo": jst(2024, 7, 1, 0, 0),
	}
	for iv, want := range tests {
		if got := bucketStart(at, iv); !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("bucketStart(%s) = %v, want %v in UTC", iv, got, want)
		}
	}
}

func TestAggregateDaily(t *testing.T) {
	t.Parallel()
	day := func(d int, o, h, l, c, v float64) Bar {
		return Bar{Time: jst(2024, 7, d, 0, 0).UTC(), Open: o, High: h, Low: l, Close: c, Volume: v, AdjClose: c - 1}
	}
	daily := []Bar{
		day(4, 10, 12, 9, 11, 100), // Thu
		day(5, 11, 13, 10, 12, 200),
		day(8, 12, 15, 11, 14, 300), // Mon
		day(9, 14, 14, 8, 9, 400),
	}
	got := aggregateDaily(daily, "1wk")
	want := []Bar{
		{Time: jst(2024, 7, 1, 0, 0).UTC(), Open: 10, High: 13, Low: 9, Close: 12, Volume: 300, AdjClose: 11},
		{Time: jst(2024, 7, 8, 0, 0).UTC(), Open: 12, High: 15, Low: 8, Close: 9, Volume: 700, AdjClose: 8},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d bars, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bar %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestWindowSortsAndKeepsTheLastDuplicate(t *testing.T) {
	t.Parallel()
	t1, t2, t3 := jst(2024, 7, 1, 0, 0).UTC(), jst(2024, 7, 2, 0, 0).UTC(), jst(2024, 7, 3, 0, 0).UTC()
	got := window([]Bar{{Time: t3, Close: 3}, {Time: t1, Close: 1}, {Time: t2, Close: 2}, {Time: t2, Close: 22}}, t2, t3)
	if len(got) != 2 || got[0].Close != 22 || got[1].Close != 3 {
		t.Errorf("window = %+v, want the t2 (last copy) and t3 bars", got)
	}
	if got := window(nil, t1, t2); got == nil || len(got) != 0 {
		t.Errorf("window(nil) = %#v, want an empty non-nil slice", got)
	}
}

func TestCheckCombinationAt(t *testing.T) {
	t.Parallel()
	end := jst(2024, 6, 14, 15, 0)
	tests := []struct {
		p    Period
		i    Interval
		fail bool
	}{
		{"5d", "1m", false},
		{"1mo", "1m", true},
		{"1mo", "5m", false},
		{"3mo", "5m", true},
		{"1y", "1h", false},
		{"5y", "60m", true},
		{"max", "1d", false},
	}
	for _, tc := range tests {
		err := checkCombination(tc.p, tc.i, end)
		if tc.fail != (err != nil) || (err != nil && !errors.Is(err, ErrUnsupported)) {
			t.Errorf("checkCombination(%s, %s) = %v, want failure %v", tc.p, tc.i, err, tc.fail)
		}
	}
}

func FuzzParseSymbol(f *testing.F) {
	for _, s := range []string{"7203.T", "130a.t", "^N225", "BRK-B", "USDJPY=X", "../../etc/passwd", "7203.T/..", "", "^", "A..B", "a\x00b", "ＴＯＹＯＴＡ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		sym, err := ParseSymbol(s)
		if err != nil {
			return
		}
		if !symbolRE.MatchString(sym) {
			t.Fatalf("ParseSymbol(%q) = %q, which the pattern rejects", s, sym)
		}
		for _, bad := range []string{"/", "\\", "..", "\x00"} {
			if strings.Contains(sym, bad) {
				t.Fatalf("ParseSymbol(%q) = %q contains %q", s, sym, bad)
			}
		}
		if again, err := ParseSymbol(sym); err != nil || again != sym {
			t.Fatalf("ParseSymbol is not idempotent: %q -> %q -> %q, %v", s, sym, again, err)
		}
	})
}
