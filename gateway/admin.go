package gateway

import (
	"errors"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// The gateway's own API, under the same chain as proxied routes (authentication, roles, rate
// limits). Key management is scoped to the caller's tenant: an admin of one tenant can neither
// see nor touch another tenant's keys.
const (
	pathKeys   = "/api/v1/gateway/keys"
	pathKey    = "/api/v1/gateway/keys/{id}"
	pathRotate = "/api/v1/gateway/keys/{id}/rotate"
	pathSLA    = "/api/v1/gateway/sla"
)

var adminRoles = []string{"admin"}

func (g *Gateway) ownRoutes() []Route {
	return append([]Route{
		{Method: http.MethodGet, Path: pathKeys, Roles: adminRoles, Idempotent: true},
		{Method: http.MethodPost, Path: pathKeys, Roles: adminRoles},
		{Method: http.MethodDelete, Path: pathKey, Roles: adminRoles, Idempotent: true},
		{Method: http.MethodPost, Path: pathRotate, Roles: adminRoles},
		{Method: http.MethodGet, Path: pathSLA, Roles: adminRoles, Idempotent: true},
	}, registryRoutes()...)
}

func (g *Gateway) ownHandler(rt Route) func(http.ResponseWriter, *http.Request, *auth.Principal) {
	switch rt.Method + " " + rt.Path {
	case "GET " + pathKeys:
		return g.listKeys
	case "POST " + pathKeys:
		return g.createKey
	case "DELETE " + pathKey:
		return g.revokeKey
	case "POST " + pathRotate:
		return g.rotateKey
	case "GET " + pathSLA:
		return g.slaReport
	}
	return g.registryHandler(rt)
}

type createKeyRequest struct {
	Owner      string   `json:"owner"`
	Tenant     string   `json:"tenant,omitempty"`
	Roles      []string `json:"roles"`
	TTLSeconds int64    `json:"ttl_seconds,omitempty"`
}

// KeyCreated is the answer to create and rotate: the only time the key is shown.
type KeyCreated struct {
	Key    string         `json:"key"`
	Record auth.KeyRecord `json:"record"`
}

func (g *Gateway) createKey(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	req, err := httpx.Decode[createKeyRequest](w, r, 16<<10)
	if err != nil {
		httpx.WriteError(w, r, nil, err)
		return
	}
	if req.Tenant == "" {
		req.Tenant = p.Tenant
	}
	if req.Tenant != p.Tenant {
		httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeForbidden, "keys can be created only in your own tenant"))
		return
	}
	spec := auth.KeySpec{Owner: req.Owner, Tenant: req.Tenant, Roles: req.Roles, TTL: time.Duration(req.TTLSeconds) * time.Second}
	if err := spec.Validate(); err != nil || req.TTLSeconds < 0 {
		httpx.WriteError(w, r, nil, httpx.Invalid("invalid key request", httpx.FieldError{Field: "body", Reason: errString(err, "ttl_seconds must not be negative")}))
		return
	}
	key, rec, err := g.deps.Keys.Create(r.Context(), spec)
	if err != nil {
		httpx.WriteError(w, r, g.log, keyError(err))
		return
	}
	g.log.InfoContext(r.Context(), "api key created", "id", rec.ID, "tenant", rec.Tenant, "owner", rec.Owner, "by", p.Subject)
	w.Header().Set("Cache-Control", "no-store")
	_ = httpx.Encode(w, http.StatusCreated, KeyCreated{Key: key, Record: rec.Public()})
}

func (g *Gateway) listKeys(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	keys, err := g.deps.Keys.List(r.Context(), p.Tenant)
	if err != nil {
		httpx.WriteError(w, r, g.log, keyError(err))
		return
	}
	_ = httpx.Encode(w, http.StatusOK, map[string]any{"keys": keys})
}

// ownKey loads a key of the caller's tenant; another tenant's key is "not found".
func (g *Gateway) ownKey(w http.ResponseWriter, r *http.Request, p *auth.Principal) (string, bool) {
	id := chi.URLParam(r, "id")
	rec, err := g.deps.Keys.Get(r.Context(), id)
	if err == nil && rec.Tenant != p.Tenant {
		err = auth.ErrNotFound
	}
	if err != nil {
		httpx.WriteError(w, r, g.log, keyError(err))
		return "", false
	}
	return id, true
}

func (g *Gateway) revokeKey(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, ok := g.ownKey(w, r, p)
	if !ok {
		return
	}
	rec, err := g.deps.Keys.Revoke(r.Context(), id)
	if err != nil {
		httpx.WriteError(w, r, g.log, keyError(err))
		return
	}
	g.log.InfoContext(r.Context(), "api key revoked", "id", id, "tenant", rec.Tenant, "by", p.Subject)
	_ = httpx.Encode(w, http.StatusOK, rec)
}

type rotateRequest struct {
	GraceSeconds int64 `json:"grace_seconds"`
}

func (g *Gateway) rotateKey(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	id, ok := g.ownKey(w, r, p)
	if !ok {
		return
	}
	var req rotateRequest
	if r.ContentLength != 0 {
		var err error
		if req, err = httpx.Decode[rotateRequest](w, r, 4<<10); err != nil {
			httpx.WriteError(w, r, nil, err)
			return
		}
	}
	if req.GraceSeconds < 0 || req.GraceSeconds > 30*86400 {
		httpx.WriteError(w, r, nil, httpx.Invalid("invalid rotation", httpx.FieldError{Field: "grace_seconds", Reason: "must be 0..2592000"}))
		return
	}
	key, rec, err := g.deps.Keys.Rotate(r.Context(), id, time.Duration(req.GraceSeconds)*time.Second)
	if err != nil {
		httpx.WriteError(w, r, g.log, keyError(err))
		return
	}
	g.log.InfoContext(r.Context(), "api key rotated", "old", id, "new", rec.ID, "tenant", rec.Tenant, "by", p.Subject)
	w.Header().Set("Cache-Control", "no-store")
	_ = httpx.Encode(w, http.StatusCreated, KeyCreated{Key: key, Record: rec.Public()})
}

func keyError(err error) error {
	switch {
	case errors.Is(err, auth.ErrNotFound):
		return httpx.Errorf(httpx.CodeNotFound, "no such key")
	case errors.Is(err, auth.ErrInvalidKey):
		return httpx.Errorf(httpx.CodeConflict, "the key is revoked or expired")
	case errors.Is(err, auth.ErrUnavailable):
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "key store unavailable", RetryAfter: time.Second, Err: err}
	}
	return err
}

func errString(err error, fallback string) string {
	if err != nil {
		return err.Error()
	}
	return fallback
}

// SLA is the answer of GET /api/v1/gateway/sla.
type SLA struct {
	WindowSeconds int               `json:"window_seconds"`
	Routes        []SLARoute        `json:"routes"`
	Breakers      map[string]string `json:"breakers"`
	LimiterState  string            `json:"rate_limiter"`
}

func (g *Gateway) slaReport(w http.ResponseWriter, r *http.Request, _ *auth.Principal) {
	s := SLA{WindowSeconds: int(g.cfg.SLAWindow.Seconds()), Routes: g.sla.report(time.Now()), Breakers: map[string]string{}, LimiterState: "redis"}
	for name, u := range g.ups {
		s.Breakers[name] = u.breaker.State().String()
	}
	if g.limiter.degraded.Load() {
		s.LimiterState = "degraded"
	}
	_ = httpx.Encode(w, http.StatusOK, s)
}
