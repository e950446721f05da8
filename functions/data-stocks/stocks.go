package main

import (
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
)

// newServer is the function's whole HTTP surface.
func newServer(log *slog.Logger, cache *marketcache.Cache) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodGet, "/api/v1/data/stocks/{symbol}", handleStocks(log, cache))
	return r
}

type point struct {
	market.Bar
	Indicators map[string]float64 `json:"indicators,omitempty"`
}

type stocksResponse struct {
	Symbol      string          `json:"symbol"`
	Period      market.Period   `json:"period"`
	Interval    market.Interval `json:"interval"`
	DataPoints  []point         `json:"data_points"`
	TotalPoints int             `json:"total_points"`
	CacheHit    bool            `json:"cache_hit"`
	FetchedAt   time.Time       `json:"fetched_at"`
}

type stocksRequest struct {
	query      market.Query
	indicators []string
}

// parseStocksRequest validates everything the caller sent and reports every bad field at once.
func parseStocksRequest(r *http.Request) (stocksRequest, error) {
	var (
		req    stocksRequest
		fields []httpx.FieldError
		err    error
	)
	q := r.URL.Query()
	if req.query.Symbol, err = market.ParseSymbol(chi.URLParam(r, "symbol")); err != nil {
		fields = append(fields, httpx.FieldError{Field: "symbol", Reason: err.Error()})
	}
	if req.query.Period, err = market.ParsePeriod(valueOr(q.Get("period"), "1mo")); err != nil {
		fields = append(fields, httpx.FieldError{Field: "period", Reason: err.Error()})
	}
	if req.query.Interval, err = market.ParseInterval(valueOr(q.Get("interval"), "1d")); err != nil {
		fields = append(fields, httpx.FieldError{Field: "interval", Reason: err.Error()})
	}
	if s := q.Get("indicators"); s != "" {
		if req.indicators, err = features.ParseIndicatorList(s); err != nil {
			fields = append(fields, httpx.FieldError{Field: "indicators", Reason: err.Error()})
		}
	}
	if len(fields) == 0 {
		if err := market.CheckCombination(req.query.Period, req.query.Interval); err != nil {
			fields = append(fields, httpx.FieldError{Field: "interval", Reason: err.Error()})
		}
	}
	if len(fields) > 0 {
		return req, httpx.Invalid("invalid request", fields...)
	}
	return req, nil
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func handleStocks(log *slog.Logger, cache *marketcache.Cache) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := parseStocksRequest(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		entry, hit, err := cache.Bars(r.Context(), req.query)
		if err != nil {
			httpx.WriteError(w, r, log, marketcache.HTTPError(err))
			return
		}
		resp := stocksResponse{
			Symbol: req.query.Symbol, Period: req.query.Period, Interval: req.query.Interval,
			DataPoints: make([]point, len(entry.Bars)), TotalPoints: len(entry.Bars),
			CacheHit: hit, FetchedAt: entry.FetchedAt,
		}
		for i, b := range entry.Bars {
			resp.DataPoints[i].Bar = b
		}
		if len(req.indicators) > 0 {
			series, err := features.Compute(entry.Bars, req.indicators)
			if err != nil {
				httpx.WriteError(w, r, log, httpx.Wrap(err, httpx.CodeInvalid, err.Error()))
				return
			}
			for name, vals := range series {
				for i, v := range vals {
					if math.IsNaN(v) || math.IsInf(v, 0) { // warm-up: omitted, never a fake number
						continue
					}
					if resp.DataPoints[i].Indicators == nil {
						resp.DataPoints[i].Indicators = make(map[string]float64, len(series))
					}
					resp.DataPoints[i].Indicators[name] = v
				}
			}
		}
		_ = httpx.Encode(w, http.StatusOK, resp)
	})
}
