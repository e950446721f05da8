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

// Universe is the symbol master as trading reads it: the symbols that may be traded and, of
// those, the TOPIX 500 constituents, which quote on the finer tick table. Both answers come
// from one list so that an order is never checked against one universe and priced on another's
// tick table. *symbols.Universe (the starter list, or J-Quants' listed-issue master with
// SYMBOLS_UNIVERSE=jquants) implements it.
type Universe interface {
	// Listed reports whether symbol (normalised, e.g. "7203.T") is in the universe.
	Listed(symbol string) bool
	// TOPIX500 reports whether symbol is listed and a TOPIX 500 constituent.
	TOPIX500(symbol string) bool
}
