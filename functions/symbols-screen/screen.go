package main

import (
	"cmp"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/symbols"
)

const (
	defaultLimit = 20
	maxLimit     = 200
	maxBody      = 64 << 10
	defaultSort  = "-turnover"
)

func newServer(log *slog.Logger, u *symbols.Universe, l *symbols.Loader, c *cursors) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/api/v1/symbols/screen", handleScreen(log, u, l, c))
	return r
}

type screenRequest struct {
	Filters  symbols.Filters `json:"filters"`
	SortBy   string          `json:"sort_by,omitempty"` // a sort key, "-" first for descending; default -turnover
	Cursor   string          `json:"cursor,omitempty"`
	Limit    *int            `json:"limit,omitempty"`
	Lookback string          `json:"lookback,omitempty"` // 1mo, 3mo, 6mo, 1y; default 3mo
}

// sortKeys read a sortable value from metrics; a missing value (an indicator in warm-up, an
// unknown market cap) sorts last in either direction.
var sortKeys = map[string]func(m symbols.Metrics) (float64, bool){
	"market_cap": func(m symbols.Metrics) (float64, bool) { return m.Symbol.MarketCapJPY, m.Symbol.MarketCapJPY > 0 },
	"price":      func(m symbols.Metrics) (float64, bool) { return m.Close, true },
	"volume":     func(m symbols.Metrics) (float64, bool) { return m.AvgVolume, true },
	"turnover":   func(m symbols.Metrics) (float64, bool) { return m.AvgTurnover, true },
	"volatility": func(m symbols.Metrics) (float64, bool) { return m.Volatility, true },
	"return":     func(m symbols.Metrics) (float64, bool) { return m.Return, true },
	"trend":      func(m symbols.Metrics) (float64, bool) { return m.Trend, true },
}

func init() {
	for _, k := range symbols.IndicatorKeys {
		sortKeys[k] = func(m symbols.Metrics) (float64, bool) { v, ok := m.Indicators[k]; return v, ok }
	}
}

func sortKeyNames() string {
	names := []string{"code"}
	for k := range sortKeys {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

type screen struct {
	filters  symbols.Filters
	sortBy   string
	desc     bool
	limit    int
	lookback market.Period
	cursor   string
}

// query is what a cursor is bound to.
func (s screen) query() string {
	return fingerprint(struct {
		F symbols.Filters
		S string
		D bool
		L market.Period
	}{s.filters, s.sortBy, s.desc, s.lookback})
}

func parseScreen(req screenRequest, u *symbols.Universe) (screen, error) {
	s := screen{filters: req.Filters, limit: defaultLimit, lookback: symbols.DefaultLookback, cursor: req.Cursor}
	var fields []httpx.FieldError
	sortBy := req.SortBy
	if sortBy == "" {
		sortBy = defaultSort
	}
	s.sortBy, s.desc = strings.CutPrefix(sortBy, "-")
	if _, ok := sortKeys[s.sortBy]; !ok && s.sortBy != "code" {
		fields = append(fields, httpx.FieldError{Field: "sort_by", Reason: fmt.Sprintf("unknown sort key %q (valid: %s; prefix - for descending)", req.SortBy, sortKeyNames())})
	}
	if req.Limit != nil {
		if *req.Limit < 1 || *req.Limit > maxLimit {
			fields = append(fields, httpx.FieldError{Field: "limit", Reason: fmt.Sprintf("must be 1..%d", maxLimit)})
		}
		s.limit = *req.Limit
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

type screenResponse struct {
	Symbols    []symbols.Metrics `json:"symbols"`
	NextCursor string            `json:"next_cursor,omitempty"` // absent on the last page
	Total      int               `json:"total"`                 // matches across all pages
	SortBy     string            `json:"sort_by"`
	Lookback   market.Period     `json:"lookback"`
	Skipped    []symbols.Skipped `json:"skipped,omitempty"`
}

func handleScreen(log *slog.Logger, u *symbols.Universe, l *symbols.Loader, c *cursors) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := httpx.Decode[screenRequest](w, r, maxBody)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		s, err := parseScreen(req, u)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		q := s.query()
		offset := 0
		if s.cursor != "" {
			p, err := c.decode(r.Context(), s.cursor, q)
			if err != nil {
				httpx.WriteError(w, r, log, err)
				return
			}
			offset = p.Offset
		}
		ms, skipped, err := l.Measure(r.Context(), s.filters.Candidates(u), s.lookback)
		if err != nil {
			httpx.WriteError(w, r, log, symbols.ProviderError(err))
			return
		}
		ms = slices.DeleteFunc(ms, func(m symbols.Metrics) bool { return !s.filters.Match(m) })
		sortMetrics(ms, s.sortBy, s.desc)
		resp := screenResponse{Symbols: []symbols.Metrics{}, Total: len(ms), SortBy: sortByString(s), Lookback: s.lookback, Skipped: skipped}
		if offset < len(ms) {
			end := min(offset+s.limit, len(ms))
			resp.Symbols = ms[offset:end]
			if end < len(ms) {
				if resp.NextCursor, err = c.encode(r.Context(), position{Offset: end, Query: q}); err != nil {
					httpx.WriteError(w, r, log, err)
					return
				}
			}
		}
		_ = httpx.Encode(w, http.StatusOK, resp)
	})
}

func sortByString(s screen) string {
	if s.desc {
		return "-" + s.sortBy
	}
	return s.sortBy
}

// sortMetrics orders by key (missing values last), then by code so that pages are stable.
func sortMetrics(ms []symbols.Metrics, key string, desc bool) {
	get := sortKeys[key]
	slices.SortStableFunc(ms, func(a, b symbols.Metrics) int {
		if get != nil {
			va, oka := get(a)
			vb, okb := get(b)
			oka = oka && !math.IsNaN(va)
			okb = okb && !math.IsNaN(vb)
			switch {
			case oka && !okb:
				return -1
			case !oka && okb:
				return 1
			case oka && okb && va != vb:
				if desc {
					return cmp.Compare(vb, va)
				}
				return cmp.Compare(va, vb)
			}
		} else if a.Symbol.Code != b.Symbol.Code && desc {
			return strings.Compare(b.Symbol.Code, a.Symbol.Code)
		}
		return strings.Compare(a.Symbol.Code, b.Symbol.Code)
	})
}
