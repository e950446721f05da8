package market

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func newTestCSV(t *testing.T, dir string) *CSV {
	t.Helper()
	c, err := NewCSV(Options{CSVDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testdata/tse-daily/7203.T.csv is a copy of the real file in shared/data/tse-daily
// (2016-01-04 – 2019-12-30).
func TestCSVRealFile(t *testing.T) {
	t.Parallel()
	c := newTestCSV(t, filepath.Join("testdata", "tse-daily"))
	tests := map[string]struct {
		q      Query
		wantN  int
		first  Bar
		lastAt time.Time
	}{
		"zero End is the file's last day": {
			q: Query{Symbol: "7203.T", Period: "1mo", Interval: "1d"}, wantN: 21,
			first:  Bar{Time: jst(2019, 12, 2, 0, 0).UTC(), Open: 7701, High: 7761, Low: 7682, Close: 7738, Volume: 3913300, AdjClose: 7600.5986328125},
			lastAt: jst(2019, 12, 30, 0, 0).UTC(),
		},
		"explicit End": {
			q: Query{Symbol: "7203.t", Period: "5d", Interval: "1d", End: jst(2016, 1, 8, 15, 0)}, wantN: 5,
			first:  Bar{Time: jst(2016, 1, 4, 0, 0).UTC(), Open: 7400, High: 7495, Low: 7325, Close: 7337, Volume: 9165700, AdjClose: 6223.84228515625},
			lastAt: jst(2016, 1, 8, 0, 0).UTC(),
		},
		"weeks start on Monday and are whole": {
			q: Query{Symbol: "7203.T", Period: "1mo", Interval: "1wk"}, wantN: 6,
			first:  Bar{Time: jst(2019, 11, 25, 0, 0).UTC(), Open: 7794, High: 7820, Low: 7638, Close: 7638, Volume: 16926300, AdjClose: 7502.3740234375},
			lastAt: jst(2019, 12, 30, 0, 0).UTC(),
		},
		"months": {
			q: Query{Symbol: "7203.T", Period: "1y", Interval: "1mo"}, wantN: 13,
			lastAt: jst(2019, 12, 1, 0, 0).UTC(),
		},
		"before the file": {
			q: Query{Symbol: "7203.T", Period: "1y", Interval: "1d", End: jst(2010, 1, 1, 0, 0)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			bars, err := c.Bars(context.Background(), tc.q)
			if err != nil {
				t.Fatal(err)
			}
			checkBars(t, bars)
			if len(bars) != tc.wantN {
				t.Fatalf("%d bars, want %d", len(bars), tc.wantN)
			}
			if tc.wantN == 0 {
				return
			}
			if tc.first.Close != 0 && bars[0] != tc.first {
				t.Errorf("first bar %+v, want %+v", bars[0], tc.first)
			}
			if last := bars[len(bars)-1].Time; !last.Equal(tc.lastAt) {
				t.Errorf("last bar at %v, want %v", last.In(JST), tc.lastAt)
			}
		})
	}
}

func TestCSVErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "1301.T.csv"), []byte("Date,Open,High,Low,Close\n2024-13-01,1,1,1,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := newTestCSV(t, dir)
	tests := map[string]struct {
		q    Query
		want error
	}{
		"missing file":    {Query{Symbol: "9999.T"}, ErrUnknownSymbol},
		"path traversal":  {Query{Symbol: "../tse-daily/7203.T"}, ErrUnknownSymbol},
		"absolute path":   {Query{Symbol: "/etc/passwd"}, ErrUnknownSymbol},
		"intraday":        {Query{Symbol: "1301.T", Period: "5d", Interval: "5m"}, ErrUnsupported},
		"5d interval":     {Query{Symbol: "1301.T", Interval: "5d"}, ErrUnsupported},
		"unreadable file": {Query{Symbol: "1301.T"}, ErrUnavailable},
		"bad period":      {Query{Symbol: "1301.T", Period: "7d"}, ErrUnsupported},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := c.Bars(context.Background(), tc.q); !errors.Is(err, tc.want) {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseCSV(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		in      string
		want    []Bar
		wantErr string
	}{
		"columns in any order, BOM, newest first": {
			in: "\ufeffAdj Close,Close,Volume,Low,High,Open,Date\n11.5,12,300,9,13,10,2024-07-02\n10.5,11,200,9,12,10,2024-07-01\n",
			want: []Bar{
				{Time: jst(2024, 7, 1, 0, 0).UTC(), Open: 10, High: 12, Low: 9, Close: 11, Volume: 200, AdjClose: 10.5},
				{Time: jst(2024, 7, 2, 0, 0).UTC(), Open: 10, High: 13, Low: 9, Close: 12, Volume: 300, AdjClose: 11.5},
			},
		},
		"no volume or adjusted close, datetime dates": {
			in:   "date,open,high,low,close\n2024-07-01 00:00:00+09:00,10,12,9,11\n",
			want: []Bar{{Time: jst(2024, 7, 1, 0, 0).UTC(), Open: 10, High: 12, Low: 9, Close: 11, AdjClose: 11}},
		},
		"null and empty rows are skipped": {
			in:   "Date,High,Low,Open,Close,Volume,Adj Close\n2024-07-01,null,null,null,null,null,null\n2024-07-02,,,,,,\n2024-07-03,12,9,10,11,0,11\n",
			want: []Bar{{Time: jst(2024, 7, 3, 0, 0).UTC(), Open: 10, High: 12, Low: 9, Close: 11, AdjClose: 11}},
		},
		"short rows are skipped": {
			in:   "Date,Open,High,Low,Close\n2024-07-01,10\n",
			want: []Bar{},
		},
		"missing column": {in: "Date,High,Low,Close\n", wantErr: "no open column"},
		"bad date":       {in: "Date,Open,High,Low,Close\n01/07/2024,1,1,1,1\n", wantErr: `line 2: bad date "01/07/2024"`},
		"empty file":     {in: "", wantErr: "reading header"},
		"broken quoting": {in: "Date,Open,High,Low,Close\n\"2024-07-01,1,1,1,1\n", wantErr: "quote"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := parseCSV(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("bar %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func FuzzCSV(f *testing.F) {
	f.Add(mustFixture(f, "tse-daily/7203.T.csv")[:2000])
	f.Add([]byte("Date,High,Low,Open,Close,Volume,Adj Close\n2024-07-01,null,1,1,1,1,1\n"))
	f.Add([]byte("\ufeffclose,date,open,low,high\n1e308,2024-07-01,NaN,-1,+Inf\n"))
	f.Add([]byte("Date,Open,High,Low,Close,Open\n\"2024-07-01\",1,1,1,1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		bars, err := parseCSV(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		for i, b := range bars {
			if i > 0 && !bars[i-1].Time.Before(b.Time) {
				t.Fatalf("bars out of order at %d", i)
			}
			if !(b.Open > 0 && b.High > 0 && b.Low > 0 && b.Close > 0) {
				t.Fatalf("bad price kept: %+v", b)
			}
		}
	})
}
