package market

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// CSV reads daily bars from a directory of <SYMBOL>.csv files in the Yahoo download format
// (Date,High,Low,Open,Close,Volume,Adj Close; columns found by header name, in any order).
//
// The files are history, so a zero Query.End means the end of the file's last date, not
// the wall clock: "1mo" is the file's last month. 1wk, 1mo and 3mo bars are built from the
// daily rows; intraday intervals are ErrUnsupported.
type CSV struct {
	dir string
}

var _ Provider = (*CSV)(nil)

// NewCSV returns a provider reading opts.CSVDir, which must be a directory.
func NewCSV(opts Options) (*CSV, error) {
	if err := checkDir(opts.CSVDir); err != nil {
		return nil, err
	}
	return &CSV{dir: opts.CSVDir}, nil
}

// Bars reads <SYMBOL>.csv. A missing file is ErrUnknownSymbol.
func (c *CSV) Bars(ctx context.Context, q Query) ([]Bar, error) {
	explicitEnd := !q.End.IsZero()
	r, err := resolve(q, func() time.Time { return time.Unix(0, 0) }) // End fixed below
	if err != nil {
		return nil, err
	}
	if err := supportsDaily(ProviderCSV, r.Interval); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// ParseSymbol admits no path separators; OpenInRoot also refuses to leave the directory.
	f, err := os.OpenInRoot(c.dir, r.Symbol+".csv")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: csv: no file %s.csv", ErrUnknownSymbol, r.Symbol)
	}
	if err != nil {
		return nil, &UnavailableError{Provider: ProviderCSV, Err: err}
	}
	defer f.Close()
	daily, err := parseCSV(f)
	if err != nil {
		return nil, &UnavailableError{Provider: ProviderCSV, Err: fmt.Errorf("%s.csv: %w", r.Symbol, err)}
	}
	if !explicitEnd {
		if len(daily) == 0 {
			return []Bar{}, nil
		}
		r.End = daily[len(daily)-1].Time.Add(24*time.Hour - time.Nanosecond)
		r.from = windowStart(r.Period, r.Interval, r.End)
	}
	return aggregateDaily(window(daily, r.from, r.End), r.Interval), nil
}

// parseCSV reads daily bars, oldest first. The header names the columns (case, spaces and
// underscores ignored; "Adj Close" and "Volume" optional). Rows with an empty, "null" or
// non-positive price are skipped, as Yahoo writes for days without trades. Dates are
// YYYY-MM-DD, optionally followed by a time that is ignored.
func parseCSV(r io.Reader) ([]Bar, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		h = strings.NewReplacer(" ", "", "_", "").Replace(h)
		if _, dup := col[h]; !dup {
			col[h] = i
		}
	}
	for _, need := range []string{"date", "open", "high", "low", "close"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("header %q has no %s column", strings.Join(header, ","), need)
		}
	}
	field := func(rec []string, name string) (string, bool) {
		i, ok := col[name]
		if !ok || i >= len(rec) {
			return "", false
		}
		return strings.TrimSpace(rec[i]), true
	}
	price := func(rec []string, name string) (float64, bool) {
		s, ok := field(rec, name)
		if !ok {
			return 0, false
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || v <= 0 || math.IsInf(v, 0) || math.IsNaN(v) {
			return 0, false
		}
		return v, true
	}

	var bars []Bar
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		ds, _ := field(rec, "date")
		if len(ds) > 10 {
			ds = ds[:10]
		}
		day, err := time.ParseInLocation(time.DateOnly, ds, JST)
		if err != nil {
			return nil, fmt.Errorf("line %d: bad date %q", line, ds)
		}
		o, ok1 := price(rec, "open")
		h, ok2 := price(rec, "high")
		l, ok3 := price(rec, "low")
		c, ok4 := price(rec, "close")
		if !ok1 || !ok2 || !ok3 || !ok4 {
			continue
		}
		b := Bar{Time: day.UTC(), Open: o, High: h, Low: l, Close: c, AdjClose: c}
		if v, ok := price(rec, "volume"); ok {
			b.Volume = v
		}
		if v, ok := price(rec, "adjclose"); ok {
			b.AdjClose = v
		}
		bars = append(bars, b)
	}
	return sortBars(bars), nil
}
