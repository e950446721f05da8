package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/schedule"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
	"github.com/day-trade/platform/shared/workflow"
	"github.com/day-trade/platform/shared/workflow/builtin"
)

type fixture struct {
	srv *httptest.Server
	js  *jobs.Store
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	rs := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: rs.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	keys := store.NewKeys("exec")
	js := jobs.NewStore(rdb, jobs.Options{})
	h := newServer(slog.New(slog.DiscardHandler), trading.NewTenants(true), schedule.NewStore(rdb, keys, 5, nil),
		workflow.NewRunner(rdb, keys, js, workflow.Options{}), js, builtin.Workflows(nil))
	// As shared/runtime does with the gateway's token: the principal is in the context.
	withPrincipal := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t := r.Header.Get("Test-Tenant"); t != "" {
			r = r.WithContext(auth.NewContextWithPrincipal(r.Context(), &auth.Principal{Subject: "u", Tenant: t, Roles: []string{"trader"}}))
		}
		h.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(withPrincipal)
	t.Cleanup(srv.Close)
	return fixture{srv: srv, js: js}
}

func (f fixture) do(t *testing.T, method, path, tenant, body string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Test-Tenant", tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	if resp.StatusCode >= 400 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		t.Errorf("error answered as %s", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, m
}

// TestTenantHeaderWithoutTokenIsRefused: in token mode X-Tenant names no one; a request
// without a verified principal is a 401 whatever it claims.
func TestTenantHeaderWithoutTokenIsRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if code, _ := f.do(t, "POST", "/api/v1/execution/schedule", "acme", `{"workflow":"daily-predict","schedule":"0 16 * * 1-5"}`); code != http.StatusCreated {
		t.Fatalf("create: %d", code)
	}
	for _, method := range []string{"GET", "POST"} {
		req, _ := http.NewRequest(method, f.srv.URL+"/api/v1/execution/schedule", strings.NewReader(`{"workflow":"daily-predict","schedule":"0 16 * * 1-5"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(trading.TenantHeader, "acme")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") || strings.Contains(string(b), "sch_") {
			t.Errorf("%s with X-Tenant only: %d %s %s", method, resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	}
}

func TestCreateListCancel(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	code, m := f.do(t, "POST", "/api/v1/execution/schedule", "acme",
		`{"workflow":"paper-trade","schedule":"market_hours/15m","config":{"max_orders":2}}`)
	if code != http.StatusCreated || m["status"] != "queued" || m["job_id"] == "" || m["next_run_at"] == nil {
		t.Fatalf("create: %d %v", code, m)
	}
	jobID, id := m["job_id"].(string), m["schedule_id"].(string)
	j, err := f.js.Get(context.Background(), "acme", jobID)
	if err != nil || j.Status != jobs.StatusQueued || j.Kind != "workflow.paper-trade" || j.Total != 4 {
		t.Fatalf("first run's job: %+v, %v", j, err)
	}
	if code, _ := f.do(t, "POST", "/api/v1/execution/schedule", "acme", `{"workflow":"daily-predict","schedule":"0 16 * * 1-5"}`); code != http.StatusCreated {
		t.Fatalf("second create: %d", code)
	}
	_, m = f.do(t, "GET", "/api/v1/execution/schedule", "acme", "")
	if n := len(m["schedules"].([]any)); n != 2 {
		t.Errorf("acme lists %d schedules, want 2", n)
	}
	_, m = f.do(t, "GET", "/api/v1/execution/schedule", "other", "")
	if n := len(m["schedules"].([]any)); n != 0 {
		t.Errorf("another tenant lists %d schedules, want 0", n)
	}
	if code, _ := f.do(t, "DELETE", "/api/v1/execution/schedule/"+id, "other", ""); code != http.StatusNotFound {
		t.Errorf("another tenant's cancel: %d, want 404", code)
	}
	code, m = f.do(t, "DELETE", "/api/v1/execution/schedule/"+id, "acme", "")
	if code != http.StatusOK || m["status"] != "cancelled" {
		t.Fatalf("cancel: %d %v", code, m)
	}
	if j, _ := f.js.Get(context.Background(), "acme", jobID); j.Status != jobs.StatusCancelled {
		t.Errorf("the queued first run is %s after cancel, want cancelled", j.Status)
	}
	if code, _ := f.do(t, "DELETE", "/api/v1/execution/schedule/sch_nope", "acme", ""); code != http.StatusNotFound {
		t.Errorf("unknown id: %d", code)
	}
}

func TestCreateRejects(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for name, tc := range map[string]struct{ body, field, reason string }{
		"never fires":      {`{"workflow":"daily-predict","schedule":"0 9 30 2 *"}`, "schedule", "never fires"},
		"every second":     {`{"workflow":"daily-predict","schedule":"* * * * * *"}`, "schedule", "seconds field"},
		"bad hour":         {`{"workflow":"daily-predict","schedule":"0 24 * * *"}`, "schedule", "hour field"},
		"unknown workflow": {`{"workflow":"mine-bitcoin","schedule":"0 9 * * *"}`, "workflow", "unknown workflow"},
		"missing schedule": {`{"workflow":"daily-predict"}`, "schedule", "required"},
		"bad config":       {`{"workflow":"paper-trade","schedule":"0 9 * * *","config":{"lots":1000}}`, "config.lots", "1..10"},
		"unknown config":   {`{"workflow":"paper-trade","schedule":"0 9 * * *","config":{"leverage":10}}`, "config", "unknown field"},
		"trade-only field": {`{"workflow":"daily-predict","schedule":"0 9 * * *","config":{"lots":2}}`, "config.", "paper-trade only"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			code, m := f.do(t, "POST", "/api/v1/execution/schedule", "acme", tc.body)
			if code != http.StatusBadRequest {
				t.Fatalf("%d %v, want 400", code, m)
			}
			b, _ := json.Marshal(m)
			if !strings.Contains(string(b), `"`+tc.field) || !strings.Contains(string(b), tc.reason) {
				t.Errorf("problem %s does not name %q with %q", b, tc.field, tc.reason)
			}
		})
	}
	for _, body := range []string{`{`, `[]`, `{"workflow":1}`, `{"workflow":"daily-predict","schedule":"0 9 * * *","extra":1}`} {
		if code, _ := f.do(t, "POST", "/api/v1/execution/schedule", "acme", body); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", body, code)
		}
	}
}
