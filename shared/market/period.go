package market

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Period is a Yahoo chart API range.
type Period string

// Interval is a Yahoo chart API interval.
type Interval string

// Valid periods and intervals, as the Yahoo chart API v8 accepts them.
var (
	Periods   = []Period{"1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"}
	Intervals = []Interval{"1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo"}
)

// ParsePeriod validates p.
func ParsePeriod(p string) (Period, error) {
	for _, v := range Periods {
		if string(v) == p {
			return v, nil
		}
	}
	return "", fmt.Errorf("period %q is not one of %s", p, join(Periods))
}

// ParseInterval validates i.
func ParseInterval(i string) (Interval, error) {
	for _, v := range Intervals {
		if string(v) == i {
			return v, nil
		}
	}
	return "", fmt.Errorf("interval %q is not one of %s", i, join(Intervals))
}

func join[T ~string](xs []T) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = string(x)
	}
	return strings.Join(s, ", ")
}

// Intraday reports whether the interval is shorter than a day.
func (i Interval) Intraday() bool { return i.Duration() < 24*time.Hour }

// Duration is the bar length; months and quarters are approximated for arithmetic only.
func (i Interval) Duration() time.Duration {
	switch i {
	case "1m":
		return time.Minute
	case "2m":
		return 2 * time.Minute
	case "5m":
		return 5 * time.Minute
	case "15m":
		return 15 * time.Minute
	case "30m":
		return 30 * time.Minute
	case "60m", "1h":
		return time.Hour
	case "90m":
		return 90 * time.Minute
	case "1d":
		return 24 * time.Hour
	case "5d":
		return 5 * 24 * time.Hour
	case "1wk":
		return 7 * 24 * time.Hour
	case "1mo":
		return 30 * 24 * time.Hour
	case "3mo":
		return 91 * 24 * time.Hour
	}
	return 0
}

// Span returns how far back a period reaches from end ("ytd" to Jan 1 JST, "max" to 1970).
func (p Period) Span(end time.Time) time.Time {
	e := end.In(JST)
	switch p {
	case "1d":
		return e.AddDate(0, 0, -1)
	case "5d":
		return e.AddDate(0, 0, -5)
	case "1mo":
		return e.AddDate(0, -1, 0)
	case "3mo":
		return e.AddDate(0, -3, 0)
	case "6mo":
		return e.AddDate(0, -6, 0)
	case "1y":
		return e.AddDate(-1, 0, 0)
	case "2y":
		return e.AddDate(-2, 0, 0)
	case "5y":
		return e.AddDate(-5, 0, 0)
	case "10y":
		return e.AddDate(-10, 0, 0)
	case "ytd":
		return time.Date(e.Year(), 1, 1, 0, 0, 0, 0, JST)
	}
	return time.Unix(0, 0)
}

// maxIntradayLookback is how far back Yahoo serves each intraday interval.
var maxIntradayLookback = map[Interval]time.Duration{
	"1m": 7 * 24 * time.Hour, "2m": 60 * 24 * time.Hour, "5m": 60 * 24 * time.Hour,
	"15m": 60 * 24 * time.Hour, "30m": 60 * 24 * time.Hour, "90m": 60 * 24 * time.Hour,
	"60m": 730 * 24 * time.Hour, "1h": 730 * 24 * time.Hour,
}

// CheckCombination rejects period/interval pairs the chart API cannot serve: intraday
// intervals only reach back a limited time (1m: 7 days; 2m–90m: 60 days; 1h: 730 days).
func CheckCombination(p Period, i Interval) error { return checkCombination(p, i, time.Now()) }

// checkCombination is CheckCombination for a query ending at end, so providers with an
// injected clock give the same answer in tests.
func checkCombination(p Period, i Interval, end time.Time) error {
	lim, ok := maxIntradayLookback[i]
	if !ok {
		return nil
	}
	if end.Sub(p.Span(end)) > lim {
		return fmt.Errorf("%w: interval %s reaches back at most %d days, period %s is longer", ErrUnsupported, i, int(lim.Hours()/24), p)
	}
	return nil
}

// symbolRE accepts Yahoo-style symbols: TSE codes like 7203.T or 130A.T, indices like ^N225,
// and plain tickers; letters, digits, '.', '-', '=' and a leading '^', at most 20 characters.
var symbolRE = regexp.MustCompile(`^\^?[A-Z0-9][A-Z0-9.\-=]{0,19}$`)

// ParseSymbol normalises (upper-cases) and validates a symbol.
func ParseSymbol(s string) (string, error) {
	u := strings.ToUpper(strings.TrimSpace(s))
	if !symbolRE.MatchString(u) || strings.Contains(u, "..") || strings.HasSuffix(u, ".") {
		return "", fmt.Errorf("symbol %q is not a valid ticker (examples: 7203.T, ^N225)", s)
	}
	return u, nil
}
