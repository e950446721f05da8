package main

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
)

// JobKind is the kind of the jobs this function creates.
const JobKind = "ml.batch"

// MaxSymbols bounds one batch prediction.
const MaxSymbols = 100

// newServer is the function's whole HTTP surface.
func newServer(log *slog.Logger, sub *batch.Submitter, id *batch.Identity) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/api/v1/ml/batch-predict", handleBatchPredict(log, sub, id))
	return r
}

// predictRequest is the body of POST /api/v1/ml/batch-predict.
type predictRequest struct {
	Symbols []string `json:"symbols"` // 1..100 distinct tickers
	// Horizon is how many trading days ahead; the ensemble forecasts the next bar, so only
	// 1 (the default) is accepted until a model for longer horizons exists.
	Horizon *int `json:"horizon"`
}

func (req predictRequest) parse() (events.MLBatchRequested, error) {
	var (
		out    events.MLBatchRequested
		fields []httpx.FieldError
	)
	syms, err := batch.ParseSymbols(req.Symbols, MaxSymbols)
	if err != nil {
		fields = append(fields, httpx.AsError(err).Fields...)
	}
	out.Symbols, out.Horizon = syms, 1
	if req.Horizon != nil && *req.Horizon != 1 {
		fields = append(fields, httpx.FieldError{Field: "horizon", Reason: "only 1 (the next trading day) is supported"})
	}
	if len(fields) > 0 {
		return out, httpx.Invalid("invalid request", fields...)
	}
	return out, nil
}

func handleBatchPredict(log *slog.Logger, sub *batch.Submitter, id *batch.Identity) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := id.Tenant(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		req, err := httpx.Decode[predictRequest](w, r, 64<<10)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		payload, err := req.parse()
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		payload.Tenant = tenant
		j, err := sub.Submit(r.Context(), tenant, len(payload.Symbols), func(jobID string) any {
			p := payload
			p.JobID = jobID
			return p
		})
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		log.InfoContext(r.Context(), "batch prediction queued", "job_id", j.ID, "tenant", tenant, "symbols", len(payload.Symbols))
		_ = batch.WriteAccepted(w, j)
	})
}
