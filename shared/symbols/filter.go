package symbols

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/day-trade/platform/shared/httpx"
)

// Range bounds a number; a nil end is open.
type Range struct {
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

func (r *Range) check(field string) []httpx.FieldError {
	if r == nil {
		return nil
	}
	var fe []httpx.FieldError
	for _, b := range []struct {
		name string
		v    *float64
	}{{"min", r.Min}, {"max", r.Max}} {
		if b.v != nil && (math.IsNaN(*b.v) || math.IsInf(*b.v, 0) || math.Abs(*b.v) > 1e18) {
			fe = append(fe, httpx.FieldError{Field: field + "." + b.name, Reason: "must be a finite number"})
		}
	}
	if r.Min != nil && r.Max != nil && *r.Min > *r.Max {
		fe = append(fe, httpx.FieldError{Field: field, Reason: "min is greater than max"})
	}
	if r.Min == nil && r.Max == nil {
		fe = append(fe, httpx.FieldError{Field: field, Reason: "give min, max or both"})
	}
	return fe
}

// Contains reports whether v lies in r (a nil range contains everything).
func (r *Range) Contains(v float64) bool {
	if r == nil {
		return true
	}
	if r.Min != nil && !(v >= *r.Min) {
		return false
	}
	if r.Max != nil && !(v <= *r.Max) {
		return false
	}
	return true
}

// Filters narrow the universe. Static filters (symbols, segments, sectors, topix500,
// market_cap) need no market data; the others are checked against measured Metrics.
type Filters struct {
	Symbols   []string `json:"symbols,omitempty"`  // tickers or codes; only these
	Segments  []string `json:"segments,omitempty"` // prime, standard, growth
	Sectors   []string `json:"sectors,omitempty"`  // TSE 33-sector names or codes
	TOPIX500  *bool    `json:"topix500,omitempty"`
	MarketCap *Range   `json:"market_cap,omitempty"` // yen; symbols with an unknown cap fail a cap filter

	Price      *Range           `json:"price,omitempty"`      // last close, yen
	Volume     *Range           `json:"volume,omitempty"`     // average shares a day
	Turnover   *Range           `json:"turnover,omitempty"`   // average yen a day
	Volatility *Range           `json:"volatility,omitempty"` // annualised, as a fraction (0.3 = 30%)
	Return     *Range           `json:"return,omitempty"`     // change over the lookback, as a fraction
	Indicators map[string]Range `json:"indicators,omitempty"` // e.g. {"rsi14": {"max": 30}}
}

// MaxFilterItems bounds each list in Filters.
const MaxFilterItems = 500

// Normalize validates f against u, canonicalising names (tickers upper-case with .T, segment
// and sector names as the universe spells them). Every problem names its field under prefix
// (e.g. "filters").
func (f *Filters) Normalize(u *Universe, prefix string) []httpx.FieldError {
	var fe []httpx.FieldError
	add := func(field, reason string) {
		fe = append(fe, httpx.FieldError{Field: prefix + "." + field, Reason: reason})
	}
	for name, n := range map[string]int{"symbols": len(f.Symbols), "segments": len(f.Segments), "sectors": len(f.Sectors)} {
		if n > MaxFilterItems {
			add(name, fmt.Sprintf("at most %d items", MaxFilterItems))
		}
	}
	if len(fe) > 0 {
		return fe
	}
	for i, s := range f.Symbols {
		sym, ok := u.Lookup(s)
		if !ok {
			add(fmt.Sprintf("symbols[%d]", i), fmt.Sprintf("%q is not in the symbol universe", s))
			continue
		}
		f.Symbols[i] = sym.Ticker
	}
	for i, s := range f.Segments {
		seg, err := ParseSegment(s)
		if err != nil {
			add(fmt.Sprintf("segments[%d]", i), err.Error())
			continue
		}
		f.Segments[i] = string(seg)
	}
	for i, s := range f.Sectors {
		_, name, ok := SectorByName(s)
		if !ok {
			add(fmt.Sprintf("sectors[%d]", i), fmt.Sprintf("%q is not a TSE 33-sector name or code", s))
			continue
		}
		f.Sectors[i] = name
	}
	for name, r := range map[string]*Range{
		"market_cap": f.MarketCap, "price": f.Price, "volume": f.Volume, "turnover": f.Turnover,
		"volatility": f.Volatility, "return": f.Return,
	} {
		fe = append(fe, r.check(prefix+"."+name)...)
	}
	if len(f.Indicators) > len(IndicatorKeys) {
		add("indicators", "too many indicators")
	}
	for name, r := range f.Indicators {
		if !slices.Contains(IndicatorKeys, name) {
			add("indicators."+name, "unknown indicator (valid: "+strings.Join(IndicatorKeys, ", ")+")")
			continue
		}
		fe = append(fe, r.check(prefix+".indicators."+name)...)
	}
	slices.SortFunc(fe, func(a, b httpx.FieldError) int { return strings.Compare(a.Field, b.Field) })
	if len(fe) == 0 {
		// Order and repeats do not change a filter; a canonical form gives equal queries equal
		// fingerprints.
		for _, l := range []*[]string{&f.Symbols, &f.Segments, &f.Sectors} {
			slices.Sort(*l)
			*l = slices.Compact(*l)
		}
	}
	return fe
}

// Static reports whether s passes the filters that need no market data.
func (f *Filters) Static(s Symbol) bool {
	if len(f.Symbols) > 0 && !slices.Contains(f.Symbols, s.Ticker) {
		return false
	}
	if len(f.Segments) > 0 && !slices.Contains(f.Segments, string(s.Segment)) {
		return false
	}
	if len(f.Sectors) > 0 && !slices.Contains(f.Sectors, s.Sector) {
		return false
	}
	if f.TOPIX500 != nil && *f.TOPIX500 != s.TOPIX500 {
		return false
	}
	if f.MarketCap != nil && (s.MarketCapJPY <= 0 || !f.MarketCap.Contains(s.MarketCapJPY)) {
		return false
	}
	return true
}

// Match reports whether measured metrics pass the market-data filters. An indicator still
// in warm-up fails a filter on it: an unknown value is not in any range.
func (f *Filters) Match(m Metrics) bool {
	if !f.Price.Contains(m.Close) || !f.Volume.Contains(m.AvgVolume) || !f.Turnover.Contains(m.AvgTurnover) ||
		!f.Volatility.Contains(m.Volatility) || !f.Return.Contains(m.Return) {
		return false
	}
	for name, r := range f.Indicators {
		v, ok := m.Indicators[name]
		if !ok || !r.Contains(v) {
			return false
		}
	}
	return true
}

// Candidates returns the universe's symbols that pass the static filters, largest first.
func (f *Filters) Candidates(u *Universe) []Symbol {
	var out []Symbol
	for _, s := range u.list {
		if f.Static(s) {
			out = append(out, s)
		}
	}
	return out
}
