package inference

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/ml/registry"
)

// MaxRows bounds one batch; larger batches are split by the caller.
const MaxRows = 10_000

// MaxBodyBytes bounds a predict request: MaxRows rows of a few dozen numbers.
const MaxBodyBytes = 16 << 20

// maxFieldErrors bounds the field errors listed in one 400: enough to fix a client, not a
// megabyte of complaints about a megabyte of NaNs.
const maxFieldErrors = 20

// notLoadedRetry is the Retry-After sent while no model is loaded: loading takes well
// under a second, a bootstrap training a few seconds.
const notLoadedRetry = 2 * time.Second

// NewServer is the ensemble's whole HTTP surface. It is internal: the gateway routes
// nothing here; functions call it by its cluster-local host.
func NewServer(log *slog.Logger, s *Service) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/v1/predict", handlePredict(log, s))
	r.Method(http.MethodGet, "/v1/models", handleModels(log, s))
	return r
}

func handlePredict(log *slog.Logger, s *Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := httpx.Decode[PredictRequest](w, r, MaxBodyBytes)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		// One load of the pointer per request: a promotion during the request does not mix
		// two models in one answer, and the old model stays alive until the request ends.
		l, err := s.Model(r.Context(), req.ModelVersion)
		if err != nil {
			httpx.WriteError(w, r, log, modelError(err, req.ModelVersion))
			return
		}
		X, err := Rows(l, req)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		resp := PredictResponse{ModelVersion: l.Version.Version, Predictions: make([]Prediction, len(X))}
		l.Predict(X, resp.Predictions)
		_ = httpx.Encode(w, http.StatusOK, resp)
	})
}

func modelError(err error, version string) error {
	switch {
	case errors.Is(err, ErrUnknownVersion):
		return &httpx.Error{Code: httpx.CodeNotFound, Message: fmt.Sprintf("unknown model_version %q", version),
			Fields: []httpx.FieldError{{Field: "model_version", Reason: "no such version in the registry"}}, Err: err}
	case errors.Is(err, errNotLoaded):
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "no model loaded yet", RetryAfter: notLoadedRetry, Err: err}
	case errors.Is(err, registry.ErrCorrupt):
		return &httpx.Error{Code: httpx.CodeUnprocessable, Message: fmt.Sprintf("model_version %q cannot be loaded", version), Err: err}
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "loading the model timed out", RetryAfter: time.Second, Err: err}
	}
	return &httpx.Error{Code: httpx.CodeUnavailable, Message: "model registry unavailable", RetryAfter: time.Second, Err: err}
}

// Rows validates a request against model l and returns its rows in the model's column
// order. Every problem is a 400 naming the field: rows[i] for a wrong width, rows[i][j]
// for a value that is not finite, feature_names for names the model does not know or misses.
func Rows(l *Loaded, req PredictRequest) ([][]float64, error) {
	width := l.NumFeatures()
	var fields []httpx.FieldError
	add := func(f, reason string) bool {
		if len(fields) < maxFieldErrors {
			fields = append(fields, httpx.FieldError{Field: f, Reason: reason})
		}
		return len(fields) < maxFieldErrors
	}
	switch {
	case len(req.Rows) == 0:
		add("rows", "must hold at least one row")
	case len(req.Rows) > MaxRows:
		add("rows", fmt.Sprintf("%d rows; at most %d per request", len(req.Rows), MaxRows))
	}
	// col[j] is the request column that feeds model feature j.
	col := make([]int, width)
	names := l.Version.Features
	for j := range col {
		col[j] = j
	}
	if len(req.FeatureNames) > 0 {
		width = len(req.FeatureNames)
		seen := make(map[string]int, width)
		for i, n := range req.FeatureNames {
			if _, ok := l.index[n]; !ok {
				add("feature_names["+strconv.Itoa(i)+"]", fmt.Sprintf("model %s has no feature %q", l.Version.Version, n))
			}
			if _, dup := seen[n]; dup {
				add("feature_names["+strconv.Itoa(i)+"]", fmt.Sprintf("feature %q named twice", n))
			}
			seen[n] = i
		}
		for j, n := range names {
			i, ok := seen[n]
			if !ok {
				add("feature_names", fmt.Sprintf("missing feature %q", n))
				continue
			}
			col[j] = i
		}
		names = req.FeatureNames
	}
	if len(fields) > 0 {
		return nil, httpx.Invalid("invalid request", fields...)
	}
	backing := make([]float64, len(req.Rows)*len(col))
	X := make([][]float64, len(req.Rows))
rows:
	for i, row := range req.Rows {
		if len(row) != width {
			if !add("rows["+strconv.Itoa(i)+"]", fmt.Sprintf("has %d values, want %d", len(row), width)) {
				break
			}
			continue
		}
		for k, v := range row {
			if why := v.Describe(); why != "" {
				if !add("rows["+strconv.Itoa(i)+"]["+strconv.Itoa(k)+"]", names[k]+": "+why) {
					break rows
				}
			}
		}
		x := backing[i*len(col) : (i+1)*len(col) : (i+1)*len(col)]
		for j, c := range col {
			x[j] = float64(row[c])
		}
		X[i] = x
	}
	if len(fields) > 0 {
		return nil, httpx.Invalid("invalid feature rows", fields...)
	}
	return X, nil
}

type modelsResponse struct {
	Serving  *ModelInfo         `json:"serving"`
	Versions []registry.Version `json:"versions"`
}

func handleModels(log *slog.Logger, s *Service) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var resp modelsResponse
		if l := s.Current(); l != nil {
			info := l.Info()
			resp.Serving = &info
		}
		vs, err := s.Versions(r.Context())
		if err != nil {
			httpx.WriteError(w, r, log, &httpx.Error{Code: httpx.CodeUnavailable, Message: "model registry unavailable", RetryAfter: time.Second, Err: err})
			return
		}
		resp.Versions = vs
		if resp.Versions == nil {
			resp.Versions = []registry.Version{}
		}
		_ = httpx.Encode(w, http.StatusOK, resp)
	})
}
