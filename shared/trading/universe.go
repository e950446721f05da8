package trading

import (
	"regexp"
	"strings"
)

// stockCodeRE matches a TSE stock as the data providers name it: a four-character code
// (four digits, or three digits and a letter for codes issued since 2024, e.g. 130A) with
// the .T suffix. Indices (^N225) and foreign tickers are not tradable here.
var stockCodeRE = regexp.MustCompile(`^[1-9][0-9]{2}[0-9A-Z]\.T$`)

// NormalizeSymbol upper-cases s and checks that it names a TSE stock.
func NormalizeSymbol(s string) (string, bool) {
	u := strings.ToUpper(strings.TrimSpace(s))
	return u, stockCodeRE.MatchString(u)
}

// Universe says which tick table a symbol trades on. The symbol master (issue 6 item 1)
// is the intended source; until it is wired in, StarterTOPIX500 stands in.
type Universe interface {
	TOPIX500(symbol string) bool
}

// UniverseFunc adapts a function to Universe.
type UniverseFunc func(symbol string) bool

// TOPIX500 calls f.
func (f UniverseFunc) TOPIX500(symbol string) bool { return f(symbol) }

// StarterTOPIX500 is a Universe of large, long-standing TOPIX 500 constituents (the Core 30
// and most of the Large 70, plus other long-time members). It is deliberately a subset:
// a constituent missing from it trades on the coarser "other issues" table, whose prices
// are all valid on the finer table too, so the error is only ever a refused fine tick.
var StarterTOPIX500 Universe = UniverseFunc(func(symbol string) bool {
	_, ok := starterTOPIX500[strings.TrimSuffix(symbol, ".T")]
	return ok
})

var starterTOPIX500 = func() map[string]struct{} {
	codes := strings.Fields(`
		1605 1925 1928 2413 2502 2503 2802 2914 3382 4063 4452 4502 4503 4519 4543 4568
		4578 4661 4689 4755 4901 4911 5020 5108 5401 6098 6146 6178 6201 6273 6301 6326
		6367 6501 6503 6594 6702 6723 6752 6758 6762 6857 6861 6902 6954 6981 6988 7011
		7182 7201 7202 7203 7267 7269 7270 7733 7741 7751 7832 7974 8001 8002 8031 8035
		8053 8058 8306 8316 8411 8591 8604 8630 8725 8750 8766 8801 8802 9020 9022 9101
		9104 9107 9432 9433 9434 9501 9503 9735 9766 9983 9984`)
	m := make(map[string]struct{}, len(codes))
	for _, c := range codes {
		m[c] = struct{}{}
	}
	return m
}()
