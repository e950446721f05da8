package symbols

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
)

// Score components, each a number in [0, 1] relative to the other candidates.
const (
	CompLiquidity         = "liquidity"          // average daily turnover (yen)
	CompVolatility        = "volatility"         // annualised volatility; direction set by the criteria
	CompVolumeConsistency = "volume_consistency" // low coefficient of variation of volume
	CompTrend             = "trend"              // annualised log-price slope, weighted by its fit
	CompMarketCap         = "market_cap"         // log market cap, when known
)

// Components lists the score components in a stable order.
var Components = []string{CompLiquidity, CompVolatility, CompVolumeConsistency, CompTrend, CompMarketCap}

// Weights weigh the components; they need not sum to 1 (Normalized scales them).
type Weights map[string]float64

// Criteria is a named scoring preset.
type Criteria struct {
	Name    string
	Weights Weights
	// PreferHighVolatility ranks more volatile symbols higher (day trading needs movement);
	// false ranks calmer ones higher.
	PreferHighVolatility bool
	Description          string
}

// Presets are the criteria a caller may name. day_trading is the default.
var Presets = map[string]Criteria{
	"day_trading": {
		Name: "day_trading", PreferHighVolatility: true,
		Weights:     Weights{CompLiquidity: 0.35, CompVolatility: 0.25, CompVolumeConsistency: 0.15, CompTrend: 0.10, CompMarketCap: 0.15},
		Description: "liquid stocks that move: turnover first, then volatility",
	},
	"momentum": {
		Name: "momentum", PreferHighVolatility: true,
		Weights:     Weights{CompLiquidity: 0.25, CompVolatility: 0.10, CompVolumeConsistency: 0.10, CompTrend: 0.45, CompMarketCap: 0.10},
		Description: "steady up-trends with enough liquidity",
	},
	"stable": {
		Name: "stable", PreferHighVolatility: false,
		Weights:     Weights{CompLiquidity: 0.20, CompVolatility: 0.30, CompVolumeConsistency: 0.20, CompTrend: 0, CompMarketCap: 0.30},
		Description: "large, calm, steadily traded stocks",
	},
}

// DefaultCriteria is the preset used when a caller names none.
const DefaultCriteria = "day_trading"

// CriteriaNames returns the preset names, sorted.
func CriteriaNames() []string {
	var out []string
	for k := range Presets {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// Validate checks that every weight names a component and is finite and non-negative, and
// that at least one is positive.
func (w Weights) Validate() error {
	var sum float64
	for k, v := range w {
		if !slices.Contains(Components, k) {
			return fmt.Errorf("unknown component %q (valid: %s)", k, strings.Join(Components, ", "))
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > 1e6 {
			return fmt.Errorf("weight %s=%v must be a finite number >= 0", k, v)
		}
		sum += v
	}
	if sum <= 0 {
		return fmt.Errorf("at least one weight must be positive")
	}
	return nil
}

// With returns c with its weights replaced by the given overrides (components not named keep
// the preset's weight).
func (c Criteria) With(overrides Weights) Criteria {
	w := Weights{}
	for k, v := range c.Weights {
		w[k] = v
	}
	for k, v := range overrides {
		w[k] = v
	}
	c.Weights = w
	return c
}

// Component explains one part of a score.
type Component struct {
	Name string `json:"name"`
	// Value is the raw metric (turnover in yen, volatility as a fraction, ...).
	Value float64 `json:"value"`
	// Score is the symbol's standing among the candidates, 0 (worst) to 1 (best).
	Score float64 `json:"score"`
	// Weight is the component's share of the total after normalisation.
	Weight float64 `json:"weight"`
	// Contribution is Score × Weight; a total is the sum of its contributions.
	Contribution float64 `json:"contribution"`
	Note         string  `json:"note,omitempty"`
}

// Score is one symbol's total, in [0, 1], and how it was made.
type Score struct {
	Symbol     string      `json:"symbol"`
	Total      float64     `json:"total"`
	Components []Component `json:"components"`
}

// Rank scores every candidate against the others under criteria c and returns the scores,
// best first (ties by ticker). Each component is a percentile rank among the candidates, so a
// score says how a symbol compares with this set, not an absolute quality. A component a symbol
// has no value for (an unknown market cap) drops out of its total and the other weights are
// rescaled, as the component's note says.
func Rank(ms []Metrics, c Criteria) []Score {
	raw := map[string][]float64{}
	has := map[string][]bool{}
	for _, name := range Components {
		raw[name] = make([]float64, len(ms))
		has[name] = make([]bool, len(ms))
	}
	for i, m := range ms {
		set := func(name string, v float64, ok bool) { raw[name][i], has[name][i] = v, ok }
		set(CompLiquidity, m.AvgTurnover, true)
		set(CompVolatility, m.Volatility, true)
		set(CompVolumeConsistency, m.VolumeCV, true)
		set(CompTrend, m.Trend*m.TrendR2, true)
		set(CompMarketCap, m.Symbol.MarketCapJPY, m.Symbol.MarketCapJPY > 0)
	}
	pct := map[string][]float64{}
	for _, name := range Components {
		higherBetter := true
		switch name {
		case CompVolatility:
			higherBetter = c.PreferHighVolatility
		case CompVolumeConsistency:
			higherBetter = false // a low CV is consistent
		}
		pct[name] = percentiles(raw[name], has[name], higherBetter)
	}

	out := make([]Score, len(ms))
	for i, m := range ms {
		var wsum float64
		for _, name := range Components {
			if has[name][i] {
				wsum += c.Weights[name]
			}
		}
		s := Score{Symbol: m.Symbol.Ticker}
		for _, name := range Components {
			comp := Component{Name: name, Value: raw[name][i]}
			switch {
			case !has[name][i]:
				comp.Note = "unknown for this symbol; its weight was spread over the other components"
			case wsum > 0:
				comp.Score = pct[name][i]
				comp.Weight = c.Weights[name] / wsum
				comp.Contribution = comp.Score * comp.Weight
				s.Total += comp.Contribution
			}
			switch name {
			case CompTrend:
				comp.Note = joinNote(comp.Note, fmt.Sprintf("annualised slope %.3f × fit R² %.2f", m.Trend, m.TrendR2))
			case CompVolatility:
				if c.PreferHighVolatility {
					comp.Note = joinNote(comp.Note, "higher volatility scores higher")
				} else {
					comp.Note = joinNote(comp.Note, "lower volatility scores higher")
				}
			case CompVolumeConsistency:
				comp.Note = joinNote(comp.Note, "value is the coefficient of variation of daily volume; lower scores higher")
			}
			s.Components = append(s.Components, comp)
		}
		out[i] = s
	}
	sort.SliceStable(out, func(a, b int) bool {
		if out[a].Total != out[b].Total {
			return out[a].Total > out[b].Total
		}
		return out[a].Symbol < out[b].Symbol
	})
	return out
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// percentiles maps each present value to its mid-rank percentile in [0, 1] among the present
// values (ties share a rank); 1 is best. A lone value scores 1.
func percentiles(v []float64, present []bool, higherBetter bool) []float64 {
	type iv struct {
		i int
		v float64
	}
	var xs []iv
	for i, ok := range present {
		if ok {
			x := v[i]
			if !higherBetter {
				x = -x
			}
			xs = append(xs, iv{i, x})
		}
	}
	out := make([]float64, len(v))
	n := len(xs)
	if n == 0 {
		return out
	}
	if n == 1 {
		out[xs[0].i] = 1
		return out
	}
	sort.Slice(xs, func(a, b int) bool { return xs[a].v < xs[b].v })
	for lo := 0; lo < n; {
		hi := lo
		for hi+1 < n && xs[hi+1].v == xs[lo].v {
			hi++
		}
		rank := float64(lo+hi) / 2 / float64(n-1)
		for k := lo; k <= hi; k++ {
			out[xs[k].i] = rank
		}
		lo = hi + 1
	}
	return out
}
