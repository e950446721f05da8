package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"golang.org/x/sync/errgroup"

	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/symbols"
)

const (
	defaultCount = 10
	maxCount     = 50
	// featurePeriod is the history fetched to build a feature row: features.Matrix needs 54
	// bars of warm-up, and six months hold about 120.
	featurePeriod market.Period = "6mo"
	// predictionWeight is the prediction's share of the combined score; the selection score
	// has the rest.
	predictionWeight = 0.5
)

// Predictor is the part of the ensemble client the handler uses.
type Predictor interface {
	Predict(ctx context.Context, req inference.PredictRequest) (inference.PredictResponse, error)
}

var _ Predictor = (*inference.Client)(nil)

type deps struct {
	universe    *symbols.Universe
	loader      *symbols.Loader
	bars        symbols.BarSource
	ensemble    Predictor
	concurrency int
}

func newServer(log *slog.Logger, d deps) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodGet, "/api/v1/symbols/recommend", handleRecommend(log, d))
	return r
}

type recommendQuery struct {
	count    int
	criteria symbols.Criteria
	lookback market.Period
}

func parseQuery(r *http.Request) (recommendQuery, error) {
	q := recommendQuery{count: defaultCount, criteria: symbols.Presets[symbols.DefaultCriteria], lookback: symbols.DefaultLookback}
	var fields []httpx.FieldError
	v := r.URL.Query()
	for k := range v {
		if k != "count" && k != "criteria" && k != "lookback" {
			fields = append(fields, httpx.FieldError{Field: k, Reason: "unknown parameter (valid: count, criteria, lookback)"})
		}
	}
	if s := v.Get("count"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxCount {
			fields = append(fields, httpx.FieldError{Field: "count", Reason: fmt.Sprintf("must be an integer 1..%d", maxCount)})
		}
		q.count = n
	}
	if s := v.Get("criteria"); s != "" {
		c, ok := symbols.Presets[s]
		if !ok {
			fields = append(fields, httpx.FieldError{Field: "criteria", Reason: "unknown criteria (valid: " + strings.Join(symbols.CriteriaNames(), ", ") + ")"})
		}
		q.criteria = c
	}
	if s := v.Get("lookback"); s != "" {
		q.lookback = market.Period(s)
		if !slices.Contains(symbols.Lookbacks, q.lookback) {
			fields = append(fields, httpx.FieldError{Field: "lookback", Reason: "must be one of 1mo, 3mo, 6mo, 1y"})
		}
	}
	slices.SortFunc(fields, func(a, b httpx.FieldError) int { return strings.Compare(a.Field, b.Field) })
	if len(fields) > 0 {
		return q, httpx.Invalid("invalid query", fields...)
	}
	return q, nil
}

// Recommendation is one recommended symbol.
type Recommendation struct {
	Symbol         symbols.Symbol       `json:"symbol"`
	CombinedScore  float64              `json:"combined_score"`
	SelectionScore symbols.Score        `json:"selection"`
	Prediction     inference.Prediction `json:"prediction"`
	AsOf           time.Time            `json:"as_of"` // the bar the prediction is made from
}

type recommendResponse struct {
	Recommendations []Recommendation `json:"recommendations"`
	Metadata        struct {
		Criteria     string            `json:"criteria"`
		Lookback     market.Period     `json:"lookback"`
		ModelVersion string            `json:"model_version"`
		Candidates   int               `json:"candidates"` // top symbols by selection score sent to the ensemble
		Predicted    int               `json:"predicted"`
		PredictedUp  int               `json:"predicted_up"`
		Skipped      []symbols.Skipped `json:"skipped,omitempty"`
		Method       string            `json:"method"`
	} `json:"metadata"`
}

const method = "the top symbols by selection score are sent to the ensemble; only those it predicts up are " +
	"recommended, ranked by combined_score = 0.5 × selection total + 0.5 × edge, where edge = 2 × confidence - 1 " +
	"(0 for a coin flip, 1 for a certain call)"

// candidatesFor is how many top-scored symbols are sent to the ensemble for count answers:
// enough that the down calls dropped leave count, few enough to stay one small batch.
func candidatesFor(count int) int { return max(3*count, 20) }

func handleRecommend(log *slog.Logger, d deps) http.Handler {
	names := features.Names()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := parseQuery(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		ctx := r.Context()
		ms, skipped, err := d.loader.Measure(ctx, d.universe.All(), q.lookback)
		if err != nil {
			httpx.WriteError(w, r, log, symbols.ProviderError(err))
			return
		}
		scores := symbols.Rank(ms, q.criteria)
		scores = scores[:min(len(scores), candidatesFor(q.count))]

		type row struct {
			score symbols.Score
			sym   symbols.Symbol
			x     []inference.Value
			at    time.Time
		}
		rows := make([]*row, len(scores))
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(max(1, d.concurrency))
		for i, s := range scores {
			sym, _ := d.universe.Lookup(s.Symbol)
			g.Go(func() error {
				bars, err := d.bars.Bars(gctx, market.Query{Symbol: s.Symbol, Period: featurePeriod, Interval: "1d"})
				if err != nil {
					return err
				}
				m, first := features.Matrix(bars)
				if len(m) == 0 || first > len(m)-1 {
					return nil // too little history: skipped below
				}
				x := make([]inference.Value, len(m[len(m)-1]))
				for j, v := range m[len(m)-1] {
					x[j] = inference.Value(v)
				}
				rows[i] = &row{score: s, sym: sym, x: x, at: bars[len(bars)-1].Time}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			httpx.WriteError(w, r, log, symbols.ProviderError(err))
			return
		}
		req := inference.PredictRequest{FeatureNames: names}
		var sent []*row
		for i, rw := range rows {
			if rw == nil {
				skipped = append(skipped, symbols.Skipped{Symbol: scores[i].Symbol, Reason: "too little history for the model's features"})
				continue
			}
			sent = append(sent, rw)
			req.Rows = append(req.Rows, rw.x)
		}
		var resp recommendResponse
		resp.Recommendations = []Recommendation{}
		resp.Metadata.Criteria, resp.Metadata.Lookback, resp.Metadata.Method = q.criteria.Name, q.lookback, method
		resp.Metadata.Candidates, resp.Metadata.Skipped = len(scores), skipped
		if len(sent) > 0 {
			pr, err := d.ensemble.Predict(ctx, req)
			if err != nil {
				httpx.WriteError(w, r, log, err) // the client's errors carry their code and Retry-After
				return
			}
			resp.Metadata.ModelVersion, resp.Metadata.Predicted = pr.ModelVersion, len(pr.Predictions)
			for i, p := range pr.Predictions {
				if p.Class != inference.ClassUp || math.IsNaN(p.Probability) {
					continue
				}
				resp.Metadata.PredictedUp++
				rw := sent[i]
				resp.Recommendations = append(resp.Recommendations, Recommendation{
					Symbol: rw.sym, SelectionScore: rw.score, Prediction: p, AsOf: rw.at,
					CombinedScore: (1-predictionWeight)*rw.score.Total + predictionWeight*(2*p.Confidence-1),
				})
			}
		}
		slices.SortStableFunc(resp.Recommendations, func(a, b Recommendation) int {
			if a.CombinedScore != b.CombinedScore {
				if a.CombinedScore > b.CombinedScore {
					return -1
				}
				return 1
			}
			return strings.Compare(a.Symbol.Ticker, b.Symbol.Ticker)
		})
		resp.Recommendations = resp.Recommendations[:min(q.count, len(resp.Recommendations))]
		_ = httpx.Encode(w, http.StatusOK, resp)
	})
}
