package main

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/notify"
)

func newServer(log *slog.Logger, st *notify.Store) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodGet, "/api/v1/notifications/{id}", handleStatus(log, st))
	return r
}

// StatusResponse is a notification as its sender may see it: no target URLs (a Slack URL is a
// credential), only their redacted form in each channel.
type StatusResponse struct {
	NotificationID string                 `json:"notification_id"`
	Type           string                 `json:"type"`
	Title          string                 `json:"title,omitempty"`
	Priority       notify.Priority        `json:"priority"`
	Ref            string                 `json:"ref,omitempty"`
	Source         string                 `json:"source,omitempty"`
	CreatedAt      time.Time              `json:"created_at"`
	Status         string                 `json:"status"`
	Channels       []notify.ChannelStatus `json:"channels"`
}

func handleStatus(log *slog.Logger, st *notify.Store) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		if !notify.ValidID(id) {
			httpx.WriteError(w, r, log, httpx.Invalid("invalid notification id",
				httpx.FieldError{Field: "id", Reason: "1..64 letters, digits, '_' or '-'"}))
			return
		}
		rec, err := st.Get(r.Context(), id)
		switch {
		case errors.Is(err, notify.ErrNotFound):
			httpx.WriteError(w, r, log, httpx.Errorf(httpx.CodeNotFound, "no notification %s", id))
			return
		case err != nil:
			httpx.WriteError(w, r, log, &httpx.Error{Code: httpx.CodeUnavailable, Message: "notification store unavailable", RetryAfter: time.Second, Err: err})
			return
		}
		n := rec.Notification
		_ = httpx.Encode(w, http.StatusOK, StatusResponse{
			NotificationID: n.ID, Type: n.Type, Title: n.Title, Priority: n.Priority, Ref: n.Ref, Source: n.Source,
			CreatedAt: n.CreatedAt, Status: rec.Overall(), Channels: rec.Channels,
		})
	})
}
