package main

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/schedule"
	"github.com/day-trade/platform/shared/trading"
	"github.com/day-trade/platform/shared/workflow"
	"github.com/day-trade/platform/shared/workflow/builtin"
)

// maxBody bounds a schedule request; a config is a few hundred bytes.
const maxBody = 16 << 10

// newServer is the function's whole HTTP surface.
func newServer(log *slog.Logger, tenants trading.Tenants, st *schedule.Store, runner *workflow.Runner, js *jobs.Store, wfs map[string]workflow.Workflow) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/api/v1/execution/schedule", handleCreate(log, tenants, st, runner, wfs))
	r.Method(http.MethodGet, "/api/v1/execution/schedule", handleList(log, tenants, st))
	r.Method(http.MethodDelete, "/api/v1/execution/schedule/{id}", handleCancel(log, tenants, st, js))
	return r
}

// createRequest is the body of POST /api/v1/execution/schedule.
type createRequest struct {
	Workflow string          `json:"workflow"`
	Schedule string          `json:"schedule"` // five-field cron (JST) or market_hours[/Nm]
	Config   json.RawMessage `json:"config,omitempty"`
}

// view is a schedule as served: the stored record and its next due time.
type view struct {
	schedule.Schedule
	NextRunAt *time.Time `json:"next_run_at,omitempty"`
}

func viewOf(sc schedule.Schedule, now time.Time) view {
	v := view{Schedule: sc}
	if sc.Status != schedule.StatusActive {
		return v
	}
	if spec, err := sc.Spec(); err == nil {
		after := now
		if sc.CreatedAt.After(after) {
			after = sc.CreatedAt
		}
		if n := spec.Next(after); !n.IsZero() {
			v.NextRunAt = &n
		}
	}
	return v
}

// createResponse answers a new schedule with its first run's job, queued until it is due.
type createResponse struct {
	JobID      string    `json:"job_id"`
	Status     string    `json:"status"`
	ScheduleID string    `json:"schedule_id"`
	NextRunAt  time.Time `json:"next_run_at"`
	StatusURL  string    `json:"status_url"`
	Schedule   view      `json:"schedule"`
}

func handleCreate(log *slog.Logger, tenants trading.Tenants, st *schedule.Store, runner *workflow.Runner, wfs map[string]workflow.Workflow) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := tenants.FromRequest(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		req, err := httpx.Decode[createRequest](w, r, maxBody)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		var fields []httpx.FieldError
		if _, err := builtin.ParseConfig(req.Workflow, req.Config); err != nil {
			fields = append(fields, httpx.AsError(err).Fields...)
		}
		spec, err := schedule.Parse("schedule", req.Schedule)
		if err != nil {
			fields = append(fields, httpx.AsError(err).Fields...)
		}
		if len(fields) > 0 {
			httpx.WriteError(w, r, log, httpx.Invalid("invalid schedule", fields...))
			return
		}
		id, created := schedule.NewID(), time.Now().UTC()
		first := spec.Next(created)
		sc, err := st.Create(r.Context(), schedule.Schedule{
			ID: id, Tenant: tenant, Workflow: req.Workflow, Expr: req.Schedule, Config: req.Config,
			CreatedAt: created, FirstJobID: schedule.RunID(id, first),
		})
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		// The first run's job exists from now on, queued, so that the caller can watch it; the
		// scheduler starts this very job (same id) when it is due.
		j, err := runner.Create(r.Context(), wfs[sc.Workflow], sc.FirstJobID, tenant, sc.Config)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		w.Header().Set("Location", "/api/v1/execution/schedule/"+sc.ID)
		_ = httpx.Encode(w, http.StatusCreated, createResponse{
			JobID: j.ID, Status: string(j.Status), ScheduleID: sc.ID, NextRunAt: first,
			StatusURL: "/api/v1/execution/jobs/" + j.ID, Schedule: viewOf(sc, sc.CreatedAt),
		})
	})
}

func handleList(log *slog.Logger, tenants trading.Tenants, st *schedule.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := tenants.FromRequest(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		scs, err := st.List(r.Context(), tenant)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		now := time.Now()
		out := make([]view, 0, len(scs))
		for _, sc := range scs {
			out = append(out, viewOf(sc, now))
		}
		w.Header().Set("Cache-Control", "no-store")
		_ = httpx.Encode(w, http.StatusOK, map[string]any{"schedules": out})
	})
}

func handleCancel(log *slog.Logger, tenants trading.Tenants, st *schedule.Store, js *jobs.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := tenants.FromRequest(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		sc, err := st.Cancel(r.Context(), tenant, chi.URLParam(r, "id"))
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		// The first run's job was created queued with the schedule; if it never started it
		// never will. A started or finished one is left as it is (Conflict), as is a gone one.
		if sc.FirstJobID != "" {
			if _, err := js.Cancel(r.Context(), tenant, sc.FirstJobID); err != nil {
				if c := httpx.ErrorCode(err); c != httpx.CodeConflict && c != httpx.CodeNotFound {
					log.Warn("cancel first run", slog.String("job", sc.FirstJobID), slog.Any("err", err))
				}
			}
		}
		_ = httpx.Encode(w, http.StatusOK, viewOf(sc, time.Now()))
	})
}
