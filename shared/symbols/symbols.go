// Package symbols is the symbol universe: the master list of TSE stocks the platform screens,
// scores and trades (code, names in Japanese and English, market segment, TSE 33-sector,
// TOPIX scale category and so TOPIX 500 membership for the tick table, lot size), a starter
// list shipped with the binary, a seam to refresh the list from J-Quants' listed-issue master,
// and the per-symbol metrics and scores that symbol selection and screening rank by.
package symbols

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Segment is a TSE market segment since the April 2022 restructuring.
type Segment string

const (
	Prime    Segment = "prime"
	Standard Segment = "standard"
	Growth   Segment = "growth"
)

// Segments lists every segment.
var Segments = []Segment{Prime, Standard, Growth}

// ParseSegment accepts a segment name in any case.
func ParseSegment(s string) (Segment, error) {
	seg := Segment(strings.ToLower(strings.TrimSpace(s)))
	if !slices.Contains(Segments, seg) {
		return "", fmt.Errorf("unknown segment %q (want prime, standard or growth)", s)
	}
	return seg, nil
}

// TOPIX scale categories (J-Quants ScaleCat). Core30, Large70 and Mid400 together are the
// TOPIX 500, whose stocks trade on the finer tick table.
const (
	ScaleCore30  = "TOPIX Core30"
	ScaleLarge70 = "TOPIX Large70"
	ScaleMid400  = "TOPIX Mid400"
	ScaleSmall1  = "TOPIX Small 1"
	ScaleSmall2  = "TOPIX Small 2"
)

// DefaultLotSize is the TSE trading unit for every domestic stock since October 2018.
const DefaultLotSize = 100

// Symbol is one listed issue.
type Symbol struct {
	Code       string  `json:"code"`   // local code, e.g. "7203" or "130A"
	Ticker     string  `json:"ticker"` // market-data symbol, e.g. "7203.T"
	NameJA     string  `json:"name_ja"`
	NameEN     string  `json:"name_en"`
	Segment    Segment `json:"segment"`
	SectorCode string  `json:"sector33_code"` // TSE 33-sector code, e.g. "3700"
	Sector     string  `json:"sector33"`      // its English name, e.g. "Transportation Equipment"
	Scale      string  `json:"scale,omitempty"`
	TOPIX500   bool    `json:"topix500"`
	LotSize    int     `json:"lot_size"`
	// MarketCapJPY is an approximate market capitalisation in yen; 0 means unknown.
	MarketCapJPY float64 `json:"market_cap_jpy,omitempty"`
}

// codeRE matches a TSE local code: four characters, digits or (since 2024) digits and letters.
var codeRE = regexp.MustCompile(`^[0-9][0-9A-Z]{3}$`)

// Ticker returns the market-data symbol for a local code.
func Ticker(code string) string { return code + ".T" }

// InTOPIX500 reports whether a scale category belongs to the TOPIX 500.
func InTOPIX500(scale string) bool {
	switch scale {
	case ScaleCore30, ScaleLarge70, ScaleMid400:
		return true
	}
	return false
}

func (s Symbol) validate() error {
	var errs []string
	if !codeRE.MatchString(s.Code) {
		errs = append(errs, fmt.Sprintf("code %q is not a TSE code", s.Code))
	}
	if s.Ticker != Ticker(s.Code) {
		errs = append(errs, fmt.Sprintf("ticker %q does not match code", s.Ticker))
	}
	if s.NameJA == "" && s.NameEN == "" {
		errs = append(errs, "no name")
	}
	if _, err := ParseSegment(string(s.Segment)); err != nil {
		errs = append(errs, err.Error())
	}
	if s.LotSize <= 0 {
		errs = append(errs, fmt.Sprintf("lot size %d", s.LotSize))
	}
	if s.MarketCapJPY < 0 || math.IsNaN(s.MarketCapJPY) || math.IsInf(s.MarketCapJPY, 0) {
		errs = append(errs, "market cap not a finite non-negative number")
	}
	if s.TOPIX500 != InTOPIX500(s.Scale) {
		errs = append(errs, fmt.Sprintf("topix500 %v disagrees with scale %q", s.TOPIX500, s.Scale))
	}
	if len(errs) > 0 {
		return fmt.Errorf("symbol %s: %s", s.Code, strings.Join(errs, "; "))
	}
	return nil
}

// Universe is an immutable set of symbols, ordered by market cap (largest first, unknown
// last) and then code. It is safe for concurrent use.
type Universe struct {
	list     []Symbol
	byTicker map[string]int
	asOf     time.Time
	source   string
}

// NewUniverse validates syms and builds a universe from them; duplicate codes are an error.
func NewUniverse(syms []Symbol, asOf time.Time, source string) (*Universe, error) {
	u := &Universe{list: slices.Clone(syms), byTicker: make(map[string]int, len(syms)), asOf: asOf, source: source}
	var errs []error
	for _, s := range u.list {
		if err := s.validate(); err != nil {
			errs = append(errs, err)
		}
	}
	slices.SortStableFunc(u.list, func(a, b Symbol) int {
		if a.MarketCapJPY != b.MarketCapJPY {
			if a.MarketCapJPY > b.MarketCapJPY {
				return -1
			}
			return 1
		}
		return strings.Compare(a.Code, b.Code)
	})
	for i, s := range u.list {
		if _, dup := u.byTicker[s.Ticker]; dup {
			errs = append(errs, fmt.Errorf("symbol %s listed twice", s.Code))
		}
		u.byTicker[s.Ticker] = i
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return u, nil
}

// All returns the symbols, largest first. The slice is a copy.
func (u *Universe) All() []Symbol { return slices.Clone(u.list) }

// Len is the number of symbols.
func (u *Universe) Len() int { return len(u.list) }

// AsOf is the date the list describes.
func (u *Universe) AsOf() time.Time { return u.asOf }

// Source names where the list came from ("starter" or "jquants").
func (u *Universe) Source() string { return u.source }

// Lookup finds a symbol by ticker ("7203.T") or local code ("7203"), in any case.
func (u *Universe) Lookup(s string) (Symbol, bool) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasSuffix(t, ".T") {
		t = Ticker(t)
	}
	i, ok := u.byTicker[t]
	if !ok {
		return Symbol{}, false
	}
	return u.list[i], true
}

// Listed reports whether s (ticker or code, any case) is in the universe: the execution
// functions trade only listed symbols.
func (u *Universe) Listed(s string) bool {
	_, ok := u.Lookup(s)
	return ok
}

// TOPIX500 reports whether s is listed and a TOPIX 500 constituent, which decides the tick
// table its orders are priced on.
func (u *Universe) TOPIX500(s string) bool {
	sym, ok := u.Lookup(s)
	return ok && sym.TOPIX500
}

// Sectors returns the distinct 33-sector names in the universe, sorted.
func (u *Universe) Sectors() []string {
	var out []string
	for _, s := range u.list {
		out = append(out, s.Sector)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

//go:embed data/tse_starter.csv
var starterCSV []byte

// Starter returns the list shipped with the binary: the largest TSE stocks by market cap
// (see data/tse_starter.csv for its as-of date and how approximate it is). It panics only if
// the embedded file is broken, which the package tests rule out.
func Starter() *Universe {
	u, err := ParseCSV(bytes.NewReader(starterCSV), "starter")
	if err != nil {
		panic("symbols: embedded starter list: " + err.Error())
	}
	return u
}

// ParseCSV reads a universe in the starter list's format: '#' comment lines (one of them
// "# as_of: YYYY-MM-DD"), a header naming the columns, then one symbol per row. Columns are
// found by name; market_cap_jpy_bn and scale may be empty.
func ParseCSV(r io.Reader, source string) (*Universe, error) {
	var (
		body bytes.Buffer
		asOf time.Time
	)
	sc := bufio.NewScanner(io.LimitReader(r, 16<<20))
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "#"); ok {
			if v, ok := strings.CutPrefix(strings.TrimSpace(rest), "as_of:"); ok {
				t, err := time.Parse(time.DateOnly, strings.TrimSpace(v))
				if err != nil {
					return nil, fmt.Errorf("symbols: bad as_of %q", v)
				}
				asOf = t
			}
			continue
		}
		body.WriteString(line)
		body.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("symbols: %w", err)
	}
	cr := csv.NewReader(&body)
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("symbols: header: %w", err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(h)] = i
	}
	for _, need := range []string{"code", "name_ja", "name_en", "segment", "sector33_code", "sector33"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("symbols: no %s column", need)
		}
	}
	get := func(row []string, name string) string {
		if i, ok := col[name]; ok && i < len(row) {
			return strings.TrimSpace(row[i])
		}
		return ""
	}
	var syms []Symbol
	for line := 2; ; line++ {
		row, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("symbols: %w", err)
		}
		s := Symbol{
			Code: strings.ToUpper(get(row, "code")), NameJA: get(row, "name_ja"), NameEN: get(row, "name_en"),
			Segment: Segment(get(row, "segment")), SectorCode: get(row, "sector33_code"), Sector: get(row, "sector33"),
			Scale: get(row, "scale"), LotSize: DefaultLotSize,
		}
		s.Ticker = Ticker(s.Code)
		s.TOPIX500 = InTOPIX500(s.Scale)
		if v := get(row, "lot_size"); v != "" {
			if s.LotSize, err = strconv.Atoi(v); err != nil {
				return nil, fmt.Errorf("symbols: row %d: lot_size %q", line, v)
			}
		}
		if v := get(row, "market_cap_jpy_bn"); v != "" {
			bn, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return nil, fmt.Errorf("symbols: row %d: market_cap_jpy_bn %q", line, v)
			}
			s.MarketCapJPY = bn * 1e9
		}
		syms = append(syms, s)
	}
	if asOf.IsZero() {
		return nil, errors.New("symbols: no '# as_of:' line")
	}
	return NewUniverse(syms, asOf, source)
}
