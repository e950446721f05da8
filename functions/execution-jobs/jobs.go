package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
)

// positive is a config check for a duration setting.
type positive struct {
	name string
	d    time.Duration
}

func (p positive) Validate() error {
	if p.d <= 0 {
		return fmt.Errorf("%s must be positive", p.name)
	}
	return nil
}

type streamOptions struct {
	Max       time.Duration // longest stream
	Heartbeat time.Duration // comment line interval, keeps proxies from timing out an idle stream
}

// newServer is the function's whole HTTP surface.
func newServer(log *slog.Logger, st *jobs.Store, id *batch.Identity, so streamOptions) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodGet, "/api/v1/execution/jobs/{job_id}", handleJob(log, st, id))
	r.Method(http.MethodGet, "/api/v1/execution/jobs/{job_id}/events", handleJobEvents(log, st, id, so))
	return r
}

// handleJob returns the caller's job; another tenant's job is a 404, as an unknown one.
func handleJob(log *slog.Logger, st *jobs.Store, id *batch.Identity) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := id.Tenant(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		j, err := st.Get(r.Context(), tenant, chi.URLParam(r, "job_id"))
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		_ = httpx.Encode(w, http.StatusOK, j)
	})
}

// handleJobEvents streams the job as Server-Sent Events: one "job" event now and one per
// change, each with the job's version as its id, until the job ends ("end" event), expires
// or the stream reaches its maximum length. A client reconnecting with Last-Event-ID gets
// only newer versions (and always the final state).
func handleJobEvents(log *slog.Logger, st *jobs.Store, id *batch.Identity, so streamOptions) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := id.Tenant(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), so.Max)
		defer cancel()
		updates, err := st.Watch(ctx, tenant, chi.URLParam(r, "job_id"))
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		var seen int64
		if v, err := strconv.ParseInt(r.Header.Get("Last-Event-ID"), 10, 64); err == nil {
			seen = v
		}
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		_ = rc.Flush()

		beat := time.NewTicker(so.Heartbeat)
		defer beat.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-beat.C:
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
					return
				}
			case j, ok := <-updates:
				if !ok {
					return
				}
				if j.Version <= seen && !j.Status.Terminal() {
					continue
				}
				b, err := json.Marshal(j)
				if err != nil {
					return
				}
				if _, err := fmt.Fprintf(w, "id: %d\nevent: job\ndata: %s\n\n", j.Version, b); err != nil {
					return
				}
				if j.Status.Terminal() {
					_, _ = fmt.Fprintf(w, "event: end\ndata: {\"status\":%q}\n\n", j.Status)
					_ = rc.Flush()
					return
				}
			}
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
}
