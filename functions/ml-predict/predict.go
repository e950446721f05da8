package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/registry"
)

// barSource is the read-through market-data cache.
type barSource interface {
	Bars(ctx context.Context, q market.Query) (marketcache.Entry, bool, error)
}

// predictor is the ensemble client.
type predictor interface {
	Predict(ctx context.Context, req inference.PredictRequest) (inference.PredictResponse, error)
}

var (
	_ barSource = (*marketcache.Cache)(nil)
	_ predictor = (*inference.Client)(nil)
)

type server struct {
	log      *slog.Logger
	bars     barSource
	ensemble predictor
	tracker  *registry.Tracker
	alerts   *alerts // nil: no accuracy alerts
	metrics  *metrics
	history  market.Period
	flatBand float64
	now      func() time.Time
}

// newServer is the function's whole HTTP surface.
func newServer(s server) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/api/v1/ml/predict", s.handlePredict())
	return r
}

type predictRequest struct {
	Symbol       string          `json:"symbol"`
	Features     json.RawMessage `json:"features,omitempty"`
	ModelVersion string          `json:"model_version,omitempty"`
}

type predictResponse struct {
	Symbol       string             `json:"symbol"`
	Prediction   string             `json:"prediction"` // "up", "down" or "flat"
	Probability  float64            `json:"probability"`
	Confidence   float64            `json:"confidence"`
	ModelVersion string             `json:"model_version"`
	FeaturesUsed map[string]float64 `json:"features_used"`
	CacheHit     bool               `json:"cache_hit"`
	// AsOf is the bar the features describe, when they were computed from bars.
	AsOf        *time.Time `json:"as_of,omitempty"`
	PredictedAt time.Time  `json:"predicted_at"`
}

// maxVersionLen bounds model_version; registry ids are short ("v12").
const maxVersionLen = 64

// parsed is a validated request.
type parsed struct {
	symbol   string
	version  string
	features []float64 // in features.Names() order; nil means "compute from bars"
}

// parse validates everything the caller sent and reports every bad field at once.
func parse(req predictRequest) (parsed, error) {
	var (
		p      parsed
		fields []httpx.FieldError
		err    error
	)
	switch strings.TrimSpace(req.Symbol) {
	case "":
		fields = append(fields, httpx.FieldError{Field: "symbol", Reason: "required"})
	default:
		if p.symbol, err = market.ParseSymbol(req.Symbol); err != nil {
			fields = append(fields, httpx.FieldError{Field: "symbol", Reason: err.Error()})
		}
	}
	if len(req.ModelVersion) > maxVersionLen {
		fields = append(fields, httpx.FieldError{Field: "model_version", Reason: fmt.Sprintf("longer than %d characters", maxVersionLen)})
	}
	p.version = req.ModelVersion
	if raw := strings.TrimSpace(string(req.Features)); raw != "" && raw != "null" {
		var ff []httpx.FieldError
		p.features, ff = parseFeatures([]byte(raw))
		fields = append(fields, ff...)
	}
	if len(fields) > 0 {
		return p, httpx.Invalid("invalid request", fields...)
	}
	return p, nil
}

// parseFeatures reads features as an object of name → value (every feature of
// features.Names(), no other) or as an array in that order. Values may be numbers; null,
// "NaN" and "Inf" decode so that the answer can name them.
func parseFeatures(raw []byte) ([]float64, []httpx.FieldError) {
	names := features.Names()
	out := make([]float64, len(names))
	var fields []httpx.FieldError
	bad := func(f, reason string) { fields = append(fields, httpx.FieldError{Field: f, Reason: reason}) }
	switch raw[0] {
	case '{':
		var m map[string]inference.Value
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, []httpx.FieldError{{Field: "features", Reason: "must be an object of feature name to number: " + err.Error()}}
		}
		index := make(map[string]int, len(names))
		for i, n := range names {
			index[n] = i
		}
		for k := range m {
			if _, ok := index[k]; !ok {
				bad("features."+k, "unknown feature")
			}
		}
		for i, n := range names {
			v, ok := m[n]
			if !ok {
				bad("features."+n, "missing")
				continue
			}
			if why := v.Describe(); why != "" {
				bad("features."+n, why)
			}
			out[i] = float64(v)
		}
	case '[':
		var a []inference.Value
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, []httpx.FieldError{{Field: "features", Reason: "must be an array of numbers: " + err.Error()}}
		}
		if len(a) != len(names) {
			return nil, []httpx.FieldError{{Field: "features", Reason: fmt.Sprintf("has %d values, want %d (in the order of %s)", len(a), len(names), strings.Join(names, ","))}}
		}
		for i, v := range a {
			if why := v.Describe(); why != "" {
				bad("features["+strconv.Itoa(i)+"]", names[i]+": "+why)
			}
			out[i] = float64(v)
		}
	default:
		return nil, []httpx.FieldError{{Field: "features", Reason: "must be an object of feature name to number, or an array in feature order"}}
	}
	if len(fields) > 0 {
		return nil, fields
	}
	return out, nil
}

func (s server) handlePredict() http.Handler {
	names := features.Names()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		req, err := httpx.Decode[predictRequest](w, r, 64<<10)
		if err != nil {
			httpx.WriteError(w, r, s.log, err)
			return
		}
		p, err := parse(req)
		if err != nil {
			httpx.WriteError(w, r, s.log, err)
			return
		}
		resp := predictResponse{Symbol: p.symbol}
		x := p.features
		var bars []market.Bar
		if x != nil {
			if err := s.known(r.Context(), p.symbol); err != nil {
				httpx.WriteError(w, r, s.log, err)
				return
			}
		} else {
			if x, bars, resp.CacheHit, err = s.fromBars(r.Context(), p.symbol); err != nil {
				httpx.WriteError(w, r, s.log, err)
				return
			}
			asOf := bars[len(bars)-1].Time
			resp.AsOf = &asOf
		}
		row := make([]inference.Value, len(x))
		resp.FeaturesUsed = make(map[string]float64, len(x))
		for i, v := range x {
			row[i] = inference.Value(v)
			resp.FeaturesUsed[names[i]] = v
		}
		out, err := s.ensemble.Predict(r.Context(), inference.PredictRequest{
			ModelVersion: p.version, FeatureNames: names, Rows: [][]inference.Value{row},
		})
		if err != nil {
			httpx.WriteError(w, r, s.log, ensembleError(err, p.version))
			return
		}
		pr := out.Predictions[0]
		resp.Probability, resp.Confidence, resp.ModelVersion = pr.Probability, pr.Confidence, out.ModelVersion
		resp.Prediction = s.call(pr.Probability)
		resp.PredictedAt = s.now().UTC()
		if bars != nil {
			s.track(r.Context(), p.symbol, bars, resp)
		}
		s.metrics.observe(r.Context(), time.Since(started), resp.CacheHit)
		_ = httpx.Encode(w, http.StatusOK, resp)
	})
}

// call turns a probability into up, down, or flat when it is within the flat band of 0.5.
func (s server) call(p float64) string {
	switch {
	case s.flatBand > 0 && p > 0.5-s.flatBand && p < 0.5+s.flatBand:
		return "flat"
	case ml.Up(p):
		return inference.ClassUp
	}
	return inference.ClassDown
}

// known answers 404 for a symbol the market data provider does not have, as the bars path
// does: the caller's features need no bars, but the answer names the symbol, and a call
// about a symbol nobody lists is a mistake to report, not to predict. It asks the same
// read-through cache (so a symbol predicted before costs one Redis read) and so the same
// provider; with the synthetic provider every well-formed code is known, as it is on the
// bars path. Any other failure to find out (provider down, timeout) is logged and the
// prediction goes ahead: it does not need the bars, and an outage must not fail it.
func (s server) known(ctx context.Context, symbol string) error {
	_, _, err := s.bars.Bars(ctx, market.Query{Symbol: symbol, Period: s.history, Interval: "1d"})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, market.ErrUnknownSymbol):
		return providerError(err)
	}
	s.log.WarnContext(ctx, "cannot check that the symbol is known; predicting from the caller's features", "symbol", symbol, "err", err)
	return nil
}

// fromBars reads the symbol's recent daily bars and returns the features of the last one.
func (s server) fromBars(ctx context.Context, symbol string) ([]float64, []market.Bar, bool, error) {
	entry, hit, err := s.bars.Bars(ctx, market.Query{Symbol: symbol, Period: s.history, Interval: "1d"})
	if err != nil {
		return nil, nil, false, providerError(err)
	}
	bars := entry.Bars
	rows, first := features.Matrix(bars)
	if len(bars) == 0 || first > len(bars)-1 {
		return nil, nil, false, &httpx.Error{Code: httpx.CodeUnprocessable,
			Message: fmt.Sprintf("%s has %d daily bars in %s; the features need more history", symbol, len(bars), s.history)}
	}
	return rows[len(bars)-1], bars, hit, nil
}

// track scores the symbol's earlier calls that these bars settle, then records this one.
// Tracking never fails a prediction: its errors are logged.
func (s server) track(ctx context.Context, symbol string, bars []market.Bar, resp predictResponse) {
	complete := len(bars)
	if last := bars[len(bars)-1]; s.now().Before(last.Time.Add(24 * time.Hour)) {
		complete-- // today's bar is still forming: it cannot settle anything yet
	}
	n, err := s.tracker.Score(ctx, symbol, bars, complete)
	if err != nil {
		s.log.WarnContext(ctx, "scoring earlier predictions failed", "symbol", symbol, "err", err)
	}
	if n > 0 {
		s.metrics.refresh(ctx, s.tracker)
		s.alerts.poke() // only new outcomes can change the alert's answer
	}
	if resp.Prediction == "flat" {
		return // no directional call to score
	}
	_, err = s.tracker.Record(ctx, registry.Prediction{
		Symbol: symbol, Version: resp.ModelVersion, BarTime: *resp.AsOf, Up: resp.Prediction == inference.ClassUp,
		Probability: resp.Probability, PredictedAt: resp.PredictedAt,
	})
	if err != nil {
		s.log.WarnContext(ctx, "recording the prediction failed", "symbol", symbol, "err", err)
	}
}

// ensembleError keeps the client's codes and says which field an unknown version came from.
func ensembleError(err error, version string) error {
	he := httpx.AsError(err)
	if he.Code == httpx.CodeNotFound {
		return &httpx.Error{Code: httpx.CodeNotFound, Message: fmt.Sprintf("unknown model_version %q", version),
			Fields: []httpx.FieldError{{Field: "model_version", Reason: "no such version in the registry"}}, Err: err}
	}
	return he
}

// providerError turns the market package's error kinds into the HTTP vocabulary.
func providerError(err error) error {
	var (
		he *httpx.Error
		ue *market.UnavailableError
	)
	switch {
	case errors.As(err, &he):
		return he
	case errors.Is(err, market.ErrUnknownSymbol):
		return &httpx.Error{Code: httpx.CodeNotFound, Message: "unknown symbol",
			Fields: []httpx.FieldError{{Field: "symbol", Reason: "the market data provider has no such symbol"}}, Err: err}
	case errors.Is(err, market.ErrUnsupported):
		return httpx.Wrap(err, httpx.CodeInvalid, err.Error())
	case errors.As(err, &ue) && ue.RetryAfter > 0:
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "market data provider unavailable", RetryAfter: ue.RetryAfter, Err: err}
	case errors.Is(err, market.ErrUnavailable):
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "market data provider unavailable", RetryAfter: 5 * time.Second, Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return httpx.Wrap(err, httpx.CodeTimeout, "market data provider timed out")
	}
	return err
}
