package market

import (
	"fmt"
	"sort"
	"time"
)

// Defaults for an empty Query.Period and Query.Interval, as the Yahoo chart API has them.
const (
	DefaultPeriod   Period   = "1mo"
	DefaultInterval Interval = "1d"
)

// resolved is a validated query: symbol normalised, period and interval checked, the end
// instant fixed and the first instant to include computed from the period.
type resolved struct {
	Query
	from time.Time // earliest bar start to include
}

// resolve validates q for a provider. An invalid symbol is ErrUnknownSymbol (no provider
// can have it); an invalid period or interval is ErrUnsupported. A zero End becomes now().
func resolve(q Query, now func() time.Time) (resolved, error) {
	sym, err := ParseSymbol(q.Symbol)
	if err != nil {
		return resolved{}, fmt.Errorf("%w: %w", ErrUnknownSymbol, err)
	}
	q.Symbol = sym
	if q.Period == "" {
		q.Period = DefaultPeriod
	}
	if q.Interval == "" {
		q.Interval = DefaultInterval
	}
	if _, err := ParsePeriod(string(q.Period)); err != nil {
		return resolved{}, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if _, err := ParseInterval(string(q.Interval)); err != nil {
		return resolved{}, fmt.Errorf("%w: %w", ErrUnsupported, err)
	}
	if q.End.IsZero() {
		q.End = now()
	}
	q.End = q.End.UTC()
	return resolved{Query: q, from: windowStart(q.Period, q.Interval, q.End)}, nil
}

// windowStart is the earliest bar start a query includes. For weekly and longer bars it is
// the start of the bucket holding the period's first instant, so the first bar is whole
// and the same whatever the period.
func windowStart(p Period, iv Interval, end time.Time) time.Time {
	from := p.Span(end).UTC()
	switch iv {
	case "1wk", "1mo", "3mo":
		return bucketStart(from, iv)
	}
	return from
}

// dayStart is 00:00 JST of t's JST date, in UTC: the Time of a daily bar.
func dayStart(t time.Time) time.Time {
	y, m, d := t.In(JST).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, JST).UTC()
}

// bucketStart is the start (00:00 JST, in UTC) of the weekly, monthly or quarterly bucket
// holding t: Monday, the 1st of the month, the 1st of Jan/Apr/Jul/Oct. Other intervals get
// the day.
func bucketStart(t time.Time, iv Interval) time.Time {
	d := t.In(JST)
	y, m, day := d.Date()
	switch iv {
	case "1wk":
		back := (int(d.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, day-back, 0, 0, 0, 0, JST).UTC()
	case "1mo":
		return time.Date(y, m, 1, 0, 0, 0, 0, JST).UTC()
	case "3mo":
		return time.Date(y, m-(m-1)%3, 1, 0, 0, 0, 0, JST).UTC()
	}
	return time.Date(y, m, day, 0, 0, 0, 0, JST).UTC()
}

// aggregateDaily folds daily bars (oldest first) into 1wk, 1mo or 3mo bars stamped with
// their bucket start; 1d returns the bars unchanged.
func aggregateDaily(daily []Bar, iv Interval) []Bar {
	if iv == "1d" {
		return daily
	}
	var out []Bar
	for _, b := range daily {
		start := bucketStart(b.Time, iv)
		if n := len(out); n > 0 && out[n-1].Time.Equal(start) {
			out[n-1] = merge(out[n-1], b)
			continue
		}
		b.Time = start
		out = append(out, b)
	}
	return out
}

// merge extends bar a (earlier) with bar b (later).
func merge(a, b Bar) Bar {
	a.High = max(a.High, b.High)
	a.Low = min(a.Low, b.Low)
	a.Close = b.Close
	a.AdjClose = b.AdjClose
	a.Volume += b.Volume
	return a
}

// window keeps the bars that start within [from, end], oldest first, one per start.
func window(bars []Bar, from, end time.Time) []Bar {
	out := bars[:0]
	for _, b := range bars {
		if !b.Time.Before(from) && !b.Time.After(end) {
			out = append(out, b)
		}
	}
	return sortBars(out)
}

// sortBars orders bars oldest first and keeps one bar per start: the last one seen, since
// feeds repeat the live bar.
func sortBars(bars []Bar) []Bar {
	if len(bars) == 0 {
		return []Bar{} // encodes as [], not null
	}
	sort.SliceStable(bars, func(i, j int) bool { return bars[i].Time.Before(bars[j].Time) })
	out := bars[:0]
	for _, b := range bars {
		if n := len(out); n > 0 && out[n-1].Time.Equal(b.Time) {
			out[n-1] = b
			continue
		}
		out = append(out, b)
	}
	return out
}

// supportsDaily rejects intervals a daily-data provider cannot build: intraday ones and
// "5d", which has no calendar meaning.
func supportsDaily(provider string, iv Interval) error {
	switch iv {
	case "1d", "1wk", "1mo", "3mo":
		return nil
	}
	return fmt.Errorf("%w: %s serves daily data (1d, 1wk, 1mo, 3mo), not interval %s", ErrUnsupported, provider, iv)
}
