package main

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/notify"
)

func newServer(log *slog.Logger, st *notify.Store, id *batch.Identity) http.Handler {
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodGet, "/api/v1/notifications/{id}", handleStatus(log, st, id))
	return r
}

// adminRoles may read platform-wide notifications (those without a tenant).
var adminRoles = []string{"admin"}

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

func handleStatus(log *slog.Logger, st *notify.Store, ident *batch.Identity) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tenant, err := ident.Tenant(r)
		if err != nil {
			httpx.WriteError(w, r, log, err)
			return
		}
		p := auth.PrincipalFromContext(r.Context())
		admin := p != nil && p.HasAnyRole(adminRoles)
		id := chi.URLParam(r, "id")
		if !notify.ValidID(id) {
			httpx.WriteError(w, r, log, httpx.Invalid("invalid notification id",
				httpx.FieldError{Field: "id", Reason: "1..64 letters, digits, '_' or '-'"}))
			return
		}
		rec, err := st.Get(r.Context(), id)
		switch {
		// Another tenant's notification is answered exactly like a missing one: its
		// existence is not the caller's to learn.
		case errors.Is(err, notify.ErrNotFound), err == nil && !rec.Notification.VisibleTo(tenant, admin):
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
