package main

import (
	"log/slog"
	"net/http"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
)

// JobKind is the kind of the jobs this function creates.
const JobKind = "data.batch"

// MaxSymbols bounds one batch: the worker warms one cache entry per symbol.
const MaxSymbols = 50

// newServer is the function's whole HTTP surface.
func newServer(log *slog.Logger, sub *batch.Submitter, id *batch.Identity) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/api/v1/data/batch-fetch", handleBatchFetch(log, sub, id))
	return r
}

// fetchRequest is the body of POST /api/v1/data/batch-fetch.
type fetchRequest struct {
	Symbols  []string `json:"symbols"`  // 1..50 distinct tickers
	Period   string   `json:"period"`   // default "1mo"
	Interval string   `json:"interval"` // default "1d"
}

// parse validates the request, naming every bad field, and returns the event payload
// without its job id.
func (req fetchRequest) parse() (events.DataBatchRequested, error) {
	var (
		out    events.DataBatchRequested
		fields []httpx.FieldError
	)
	syms, err := batch.ParseSymbols(req.Symbols, MaxSymbols)
	if err != nil {
		fields = append(fields, httpx.AsError(err).Fields...)
	}
	out.Symbols = syms
	p, err := market.ParsePeriod(valueOr(req.Period, "1mo"))
	if err != nil {
		fields = append(fields, httpx.FieldError{Field: "period", Reason: err.Error()})
	}
	i, err := market.ParseInterval(valueOr(req.Interval, "1d"))
	if err != nil {
		fields = append(fields, httpx.FieldError{Field: "interval", Reason: err.Error()})
	}
	if p != "" && i != "" {
		if err := market.CheckCombination(p, i); err != nil {
			fields = append(fields, httpx.FieldError{Field: "interval", Reason: err.Error()})
		}
	}
	if len(fields) > 0 {
		return out, httpx.Invalid("invalid request", fields...)
	}
	out.Period, out.Interval = string(p), string(i)
	return out, nil
}

func valueOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func handleBatchFetch(log *slog.Logger, sub *batch.Submitter, id *batch.Identity) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := id.Tenant(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		req, err := httpx.Decode[fetchRequest](w, r, 64<<10)
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
		log.InfoContext(r.Context(), "batch fetch queued", "job_id", j.ID, "tenant", tenant, "symbols", len(payload.Symbols))
		_ = batch.WriteAccepted(w, j)
	})
}
