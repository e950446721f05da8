package features

import (
	"errors"
	"fmt"
	"strings"

	"github.com/day-trade/platform/shared/market"
)

// ErrUnknownIndicator is wrapped by every error about a requested indicator name, so a handler
// can answer 400 with errors.Is.
var ErrUnknownIndicator = errors.New("unknown indicator")

// indicator is one name the data API accepts and the series it adds, keyed as in the response.
type indicator struct {
	name string
	add  func(close []float64, out map[string][]float64)
}

// indicators in the order "all" expands to.
var indicators = []indicator{
	{"rsi14", func(c []float64, out map[string][]float64) { out["rsi14"] = RSI(c, 14) }},
	{"macd", func(c []float64, out map[string][]float64) {
		out["macd"], out["macd_signal"], out["macd_hist"] = MACD(c, 12, 26, 9)
	}},
	{"bollinger", func(c []float64, out map[string][]float64) {
		out["bb_middle"], out["bb_upper"], out["bb_lower"], out["bb_percent_b"] = Bollinger(c, 20, 2)
	}},
	{"sma20", func(c []float64, out map[string][]float64) { out["sma20"] = SMA(c, 20) }},
	{"ema12", func(c []float64, out map[string][]float64) { out["ema12"] = EMA(c, 12) }},
	{"ema26", func(c []float64, out map[string][]float64) { out["ema26"] = EMA(c, 26) }},
}

// all expands to every indicator.
const all = "all"

// IndicatorNames returns the names Compute accepts besides "all", in a stable order.
func IndicatorNames() []string {
	names := make([]string, len(indicators))
	for i, ind := range indicators {
		names[i] = ind.name
	}
	return names
}

func lookup(name string) (indicator, bool) {
	for _, ind := range indicators {
		if ind.name == name {
			return ind, true
		}
	}
	return indicator{}, false
}

// maxNameInError bounds how much of an untrusted name is echoed back in an error.
const maxNameInError = 32

func unknownName(name string) error {
	if len(name) > maxNameInError {
		name = name[:maxNameInError] + "..."
	}
	return fmt.Errorf("%w %q (valid: %s, %s)", ErrUnknownIndicator, name,
		strings.Join(IndicatorNames(), ", "), all)
}

// ParseIndicatorList parses an untrusted comma-separated list such as "rsi14,macd". Names are
// trimmed and case-insensitive; duplicates are dropped; "all" stands for every indicator. The
// result holds canonical names in the order first requested. An empty list, an empty item or an
// unknown name is an error wrapping ErrUnknownIndicator that lists the valid names.
func ParseIndicatorList(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty list (valid: %s, %s)", ErrUnknownIndicator,
			strings.Join(IndicatorNames(), ", "), all)
	}
	var names []string
	seen := make(map[string]bool, len(indicators))
	add := func(name string) {
		if !seen[name] {
			seen[name] = true
			names = append(names, name)
		}
	}
	for item := range strings.SplitSeq(s, ",") {
		name := strings.ToLower(strings.TrimSpace(item))
		switch _, ok := lookup(name); {
		case name == all:
			for _, ind := range indicators {
				add(ind.name)
			}
		case ok:
			add(name)
		default:
			return nil, unknownName(item)
		}
	}
	return names, nil
}

// Compute returns the named indicators over the closes of bars, each series as long as bars
// with NaN during warm-up, keyed as follows:
//
//	rsi14      rsi14 (Wilder, 14)
//	macd       macd, macd_signal, macd_hist (12/26/9)
//	bollinger  bb_middle, bb_upper, bb_lower, bb_percent_b (20, 2 population deviations)
//	sma20      sma20
//	ema12      ema12
//	ema26      ema26
//	all        every key above
//
// Names are canonical (see ParseIndicatorList); an unknown one is an error wrapping
// ErrUnknownIndicator.
func Compute(bars []market.Bar, names []string) (map[string][]float64, error) {
	var want []indicator
	for _, name := range names {
		if name == all {
			want = append(want, indicators...)
			continue
		}
		ind, ok := lookup(name)
		if !ok {
			return nil, unknownName(name)
		}
		want = append(want, ind)
	}
	done := make(map[string]bool, len(want))
	closes := make([]float64, len(bars))
	for i, b := range bars {
		closes[i] = b.Close
	}
	out := make(map[string][]float64)
	for _, ind := range want {
		if !done[ind.name] {
			done[ind.name] = true
			ind.add(closes, out)
		}
	}
	return out, nil
}
