package main

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/registry"
)

// newServer is the function's whole HTTP surface.
func newServer(log *slog.Logger, reg *registry.Registry, tr *registry.Tracker) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodGet, "/api/v1/ml/models", handleModels(log, reg, tr))
	return r
}

type modelsResponse struct {
	Promoted string            `json:"promoted,omitempty"`
	Latest   string            `json:"latest,omitempty"`
	Realised rolling           `json:"realised"`
	Versions []versionResponse `json:"versions"`
}

// rolling is the realised accuracy of the latest scored predictions, all versions.
type rolling struct {
	Window int `json:"window"`
	registry.Figures
}

type versionResponse struct {
	Version      string       `json:"version"`
	Promoted     bool         `json:"promoted"`
	RegisteredAt time.Time    `json:"registered_at"`
	TrainedAt    time.Time    `json:"trained_at"`
	DataRange    ml.DataRange `json:"data_range"`
	Symbols      []string     `json:"symbols"`
	Features     []string     `json:"features"`
	ArtifactHash string       `json:"artifact_hash"`
	Source       string       `json:"source,omitempty"`
	Note         string       `json:"note,omitempty"`
	WalkForward  *walkForward `json:"walk_forward"` // null when the version was not evaluated
	// Realised is how the version's own recorded calls have scored so far.
	Realised registry.Figures `json:"realised"`
}

// walkForward is the summary of a version's walk-forward report: every model and baseline
// on the pooled test rows, and the ensemble's most confident decile.
type walkForward struct {
	Rows      int           `json:"rows"`
	From      time.Time     `json:"from"`
	To        time.Time     `json:"to"`
	Folds     int           `json:"folds"`
	Results   []modelResult `json:"results"`
	TopDecile *ml.Bucket    `json:"top_decile,omitempty"`
}

type modelResult struct {
	Name             string  `json:"name"`
	Role             string  `json:"role"`
	Accuracy         float64 `json:"accuracy"`
	AccuracySE       float64 `json:"accuracy_se"`
	BalancedAccuracy float64 `json:"balanced_accuracy"`
	AUC              float64 `json:"auc"`
	Brier            float64 `json:"brier"`
}

func summarise(r *ml.Report) *walkForward {
	if r == nil {
		return nil
	}
	w := &walkForward{Rows: r.Rows, From: r.From, To: r.To, Folds: len(r.Folds)}
	for _, res := range r.Results {
		w.Results = append(w.Results, modelResult{Name: res.Name, Role: res.Role, Accuracy: res.Accuracy,
			AccuracySE: res.AccuracySE, BalancedAccuracy: res.BalancedAccuracy, AUC: res.AUC, Brier: res.Brier})
	}
	if ens, ok := r.Result(ml.NameEnsemble); ok && len(ens.Reliability) > 0 {
		top := ens.Reliability[len(ens.Reliability)-1]
		w.TopDecile = &top
	}
	return w
}

func handleModels(log *slog.Logger, reg *registry.Registry, tr *registry.Tracker) http.Handler {
	unavailable := func(err error) error {
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "model registry unavailable", RetryAfter: time.Second, Err: err}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		versions, err := reg.List(ctx)
		if err != nil {
			httpx.WriteError(w, r, log, unavailable(err))
			return
		}
		resp := modelsResponse{Versions: make([]versionResponse, 0, len(versions))}
		if resp.Promoted, err = reg.PromotedID(ctx); err != nil && !errors.Is(err, registry.ErrNoModel) {
			httpx.WriteError(w, r, log, unavailable(err))
			return
		}
		if len(versions) > 0 {
			resp.Latest = versions[0].Version
		}
		if resp.Realised.Figures, err = tr.Rolling(ctx, 0); err != nil {
			httpx.WriteError(w, r, log, unavailable(err))
			return
		}
		resp.Realised.Window = tr.Window()
		for _, v := range versions {
			fig, err := tr.Version(ctx, v.Version)
			if err != nil {
				httpx.WriteError(w, r, log, unavailable(err))
				return
			}
			resp.Versions = append(resp.Versions, versionResponse{
				Version: v.Version, Promoted: v.Version == resp.Promoted, RegisteredAt: v.RegisteredAt, TrainedAt: v.TrainedAt,
				DataRange: v.DataRange, Symbols: v.Symbols, Features: v.Features, ArtifactHash: v.ArtifactHash,
				Source: v.Source, Note: v.Note, WalkForward: summarise(v.Metrics), Realised: fig,
			})
		}
		_ = httpx.Encode(w, http.StatusOK, resp)
	})
}
