package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/notify"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func TestStatus(t *testing.T) {
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	st := notify.NewStore(rdb, store.NewKeys("notif"), 0)
	n := notify.Notification{ID: "ntf_1", Type: "alert", Message: "m", Priority: notify.PriorityHigh, Tenant: "acme", CreatedAt: time.Now().UTC(),
		Targets: []notify.Target{{Channel: notify.ChannelSlack, URL: "https://hooks.slack.com/services/T1/B1/SECRET"}, {Channel: notify.ChannelLog}}}
	if err := st.Create(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	st.SetStatus(context.Background(), "ntf_1", notify.ChannelStatus{Index: 1, Channel: "log", Status: notify.StatusDelivered, Attempts: 1})
	h := newServer(slog.New(slog.DiscardHandler), st, batch.NewIdentity(false))
	get := func(id, tenant string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/api/v1/notifications/"+id, nil)
		if tenant != "" {
			r.Header.Set(batch.TenantHeader, tenant)
		}
		h.ServeHTTP(w, r)
		return w
	}
	w := get("ntf_1", "acme")
	var resp StatusResponse
	json.Unmarshal(w.Body.Bytes(), &resp)
	if w.Code != 200 || resp.Status != notify.OverallInProgress || len(resp.Channels) != 2 || resp.Channels[1].Status != notify.StatusDelivered || resp.Priority != notify.PriorityHigh {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "SECRET") {
		t.Fatal("the Slack URL leaked")
	}
	missing := get("ntf_404", "acme")
	if missing.Code != 404 {
		t.Errorf("unknown: %d", missing.Code)
	}
	// Another tenant's notification is a 404 with the same body as a missing one (but its id).
	other := get("ntf_1", "globex")
	if other.Code != 404 || strings.Contains(other.Body.String(), "alert") ||
		strings.ReplaceAll(other.Body.String(), "ntf_1", "ntf_404") != strings.ReplaceAll(missing.Body.String(), "ntf_1", "ntf_404") {
		t.Errorf("another tenant: %d %s (missing: %s)", other.Code, other.Body, missing.Body)
	}
	if w := get("ntf_1", ""); w.Code != 401 {
		t.Errorf("no identity: %d", w.Code)
	}
	if w := get("bad%20id!", "acme"); w.Code != 400 {
		t.Errorf("bad id: %d", w.Code)
	}
	rs.Kill()
	if w := get("ntf_1", "acme"); w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Errorf("redis down: %d %v", w.Code, w.Header())
	}
}

// TestStatusWithVerifiedTokens runs the handler as the runtime does with
// INTERNAL_TOKEN_PUBLIC_KEY: behind auth.Middleware, with tokens minted by a real Signer. The
// tenant comes from the token alone; an X-Tenant header cannot borrow another's.
func TestStatusWithVerifiedTokens(t *testing.T) {
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	st := notify.NewStore(rdb, store.NewKeys("notif"), 0)
	ctx := context.Background()
	for _, n := range []notify.Notification{
		{ID: "ntf_acme", Type: "alert", Message: "m", Priority: notify.PriorityNormal, Tenant: "acme", Targets: []notify.Target{{Channel: notify.ChannelLog}}},
		{ID: "ntf_platform", Type: "ml.accuracy.degraded", Message: "m", Priority: notify.PriorityHigh, Targets: []notify.Target{{Channel: notify.ChannelLog}}},
	} {
		if err := st.Create(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	priv, _ := auth.GenerateInternalKey()
	key, _ := auth.ParsePrivateKey(priv)
	signer := auth.NewSigner(key)
	h := auth.Middleware(auth.NewVerifier(signer.PublicKey(), "notifications-status"))(
		newServer(slog.New(slog.DiscardHandler), st, batch.NewIdentity(true)))
	get := func(id string, p *auth.Principal, hdr string) int {
		r := httptest.NewRequest("GET", "/api/v1/notifications/"+id, nil)
		if p != nil {
			tok, err := signer.Mint(p, "notifications-status")
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set(auth.InternalTokenHeader, tok)
		}
		if hdr != "" {
			r.Header.Set(batch.TenantHeader, hdr)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	acme := &auth.Principal{Subject: "k1", Tenant: "acme", Roles: []string{"trader"}}
	globex := &auth.Principal{Subject: "k2", Tenant: "globex", Roles: []string{"trader"}}
	admin := &auth.Principal{Subject: "k3", Tenant: "ops", Roles: []string{"admin"}}
	for name, tc := range map[string]struct {
		id   string
		p    *auth.Principal
		hdr  string
		want int
	}{
		"owner":                        {"ntf_acme", acme, "", http.StatusOK},
		"other tenant":                 {"ntf_acme", globex, "", http.StatusNotFound},
		"other tenant claims a header": {"ntf_acme", globex, "acme", http.StatusNotFound},
		"no token, header only":        {"ntf_acme", nil, "acme", http.StatusUnauthorized},
		"platform-wide to a trader":    {"ntf_platform", acme, "", http.StatusNotFound},
		"platform-wide to an admin":    {"ntf_platform", admin, "", http.StatusOK},
		"admin of another tenant":      {"ntf_acme", admin, "", http.StatusNotFound},
	} {
		t.Run(name, func(t *testing.T) {
			if got := get(tc.id, tc.p, tc.hdr); got != tc.want {
				t.Fatalf("%d, want %d", got, tc.want)
			}
		})
	}
}
