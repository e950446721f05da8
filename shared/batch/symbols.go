package batch

import (
	"fmt"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
)

// ParseSymbols validates a request's symbol list: 1 to max symbols, each a valid ticker, no
// symbol twice (after normalising case). It returns the normalised list, or a CodeInvalid
// error whose fields name "symbols" or the offending "symbols[i]".
func ParseSymbols(in []string, max int) ([]string, error) {
	switch {
	case len(in) == 0:
		return nil, httpx.Invalid("invalid request", httpx.FieldError{Field: "symbols", Reason: "must list at least one symbol"})
	case len(in) > max:
		return nil, httpx.Invalid("invalid request", httpx.FieldError{Field: "symbols", Reason: fmt.Sprintf("at most %d symbols per batch, got %d", max, len(in))})
	}
	var (
		out    = make([]string, 0, len(in))
		seen   = make(map[string]int, len(in))
		fields []httpx.FieldError
	)
	for i, s := range in {
		field := fmt.Sprintf("symbols[%d]", i)
		sym, err := market.ParseSymbol(s)
		if err != nil {
			fields = append(fields, httpx.FieldError{Field: field, Reason: err.Error()})
			continue
		}
		if j, dup := seen[sym]; dup {
			fields = append(fields, httpx.FieldError{Field: field, Reason: fmt.Sprintf("duplicate of symbols[%d] (%s)", j, sym)})
			continue
		}
		seen[sym] = i
		out = append(out, sym)
	}
	if len(fields) > 0 {
		return nil, httpx.Invalid("invalid request", fields...)
	}
	return out, nil
}
