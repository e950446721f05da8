package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/symbols"
)

// Bounds of a request.
const (
	defaultCount = 10
	maxCount     = 100
	maxBody      = 64 << 10
)

func newServer(log *slog.Logger, u *symbols.Universe, l *symbols.Loader) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/api/v1/symbols/select", handleSelect(log, u, l))
	return r
}

type selectRequest struct {
	Criteria string          `json:"criteria,omitempty"` // a preset name; default day_trading
	Count    *int            `json:"count,omitempty"`
	Lookback string          `json:"lookback,omitempty"` // 1mo, 3mo, 6mo, 1y; default 3mo
	Weights  symbols.Weights `json:"weights,omitempty"`  // overrides of the preset's weights
	Filters  symbols.Filters `json:"filters"`
}

// selection is a validated request.
type selection struct {
	criteria symbols.Criteria
	count    int
	lookback market.Period
	filters  symbols.Filters
}

// parseSelect validates a decoded request against the universe, naming every bad field.
func parseSelect(req selectRequest, u *symbols.Universe) (selection, error) {
	var (
		s      = selection{count: defaultCount, lookback: symbols.DefaultLookback, filters: req.Filters}
		fields []httpx.FieldError
	)
	name := req.Criteria
	if name == "" {
		name = symbols.DefaultCriteria
	}
	preset, ok := symbols.Presets[name]
	if !ok {
		fields = append(fields, httpx.FieldError{Field: "criteria", Reason: fmt.Sprintf("unknown criteria %q (valid: %s)", req.Criteria, strings.Join(symbols.CriteriaNames(), ", "))})
	}
	s.criteria = preset.With(req.Weights)
	if ok || req.Weights != nil {
		// The merged weights: an override may zero a component as long as another remains.
		if err := s.criteria.Weights.Validate(); err != nil {
			fields = append(fields, httpx.FieldError{Field: "weights", Reason: err.Error()})
		}
	}
	if req.Count != nil {
		if *req.Count < 1 || *req.Count > maxCount {
			fields = append(fields, httpx.FieldError{Field: "count", Reason: fmt.Sprintf("must be 1..%d", maxCount)})
		}
		s.count = *req.Count
	}
	if req.Lookback != "" {
		s.lookback = market.Period(req.Lookback)
		if !slices.Contains(symbols.Lookbacks, s.lookback) {
			fields = append(fields, httpx.FieldError{Field: "lookback", Reason: "must be one of 1mo, 3mo, 6mo, 1y"})
		}
	}
	fields = append(fields, s.filters.Normalize(u, "filters")...)
	if len(fields) > 0 {
		return s, httpx.Invalid("invalid request", fields...)
	}
	return s, nil
}

type metadata struct {
	Criteria       string             `json:"criteria"`
	Description    string             `json:"description,omitempty"`
	Weights        map[string]float64 `json:"weights"` // normalised to sum to 1
	Lookback       market.Period      `json:"lookback"`
	UniverseSource string             `json:"universe_source"`
	UniverseAsOf   string             `json:"universe_as_of"`
	UniverseSize   int                `json:"universe_size"`
	Candidates     int                `json:"candidates"` // passed the static filters
	Scored         int                `json:"scored"`     // measured and passed the market-data filters
	Skipped        []symbols.Skipped  `json:"skipped,omitempty"`
	ComputedAt     time.Time          `json:"computed_at"`
	Method         string             `json:"method"`
}

type selectResponse struct {
	Symbols  []symbols.Symbol `json:"symbols"`
	Scores   []symbols.Score  `json:"scores"` // scores[i] is the score of symbols[i]
	Metadata metadata         `json:"metadata"`
}

const method = "each component is the symbol's percentile rank among the scored candidates (1 = best); " +
	"the total is the weighted sum of the components"

func handleSelect(log *slog.Logger, u *symbols.Universe, l *symbols.Loader) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := httpx.Decode[selectRequest](w, r, maxBody)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		sel, err := parseSelect(req, u)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		cands := sel.filters.Candidates(u)
		ms, skipped, err := l.Measure(r.Context(), cands, sel.lookback)
		if err != nil {
			httpx.WriteError(w, r, log, symbols.ProviderError(err))
			return
		}
		ms = slices.DeleteFunc(ms, func(m symbols.Metrics) bool { return !sel.filters.Match(m) })
		scores := symbols.Rank(ms, sel.criteria)
		bySym := make(map[string]symbols.Symbol, len(ms))
		for _, m := range ms {
			bySym[m.Symbol.Ticker] = m.Symbol
		}
		resp := selectResponse{
			Symbols: []symbols.Symbol{}, Scores: []symbols.Score{},
			Metadata: metadata{
				Criteria: sel.criteria.Name, Description: sel.criteria.Description, Weights: normalised(sel.criteria.Weights),
				Lookback: sel.lookback, UniverseSource: u.Source(), UniverseAsOf: u.AsOf().Format(time.DateOnly),
				UniverseSize: u.Len(), Candidates: len(cands), Scored: len(ms), Skipped: skipped,
				ComputedAt: time.Now().UTC(), Method: method,
			},
		}
		for _, s := range scores[:min(sel.count, len(scores))] {
			resp.Symbols = append(resp.Symbols, bySym[s.Symbol])
			resp.Scores = append(resp.Scores, s)
		}
		_ = httpx.Encode(w, http.StatusOK, resp)
	})
}

func normalised(w symbols.Weights) map[string]float64 {
	var sum float64
	for _, v := range w {
		sum += v
	}
	out := make(map[string]float64, len(w))
	for k, v := range w {
		if sum > 0 {
			out[k] = v / sum
		}
	}
	return out
}
