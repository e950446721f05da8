package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

type fakePublisher struct {
	mu   sync.Mutex
	err  error
	sent []events.MLBatchRequested
	ids  []string
}

func (p *fakePublisher) PublishID(_ context.Context, id, typ, source, subject string, data any) (string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return id, p.err
	}
	if typ != events.TypeMLBatchRequested || source != events.SourceMLBatchPredict {
		return id, fmt.Errorf("published %s from %s", typ, source)
	}
	p.sent = append(p.sent, data.(events.MLBatchRequested))
	p.ids = append(p.ids, id)
	return id, nil
}

func setup(t *testing.T) (*jobs.Store, *fakePublisher, *httptest.Server) {
	st, pub, srv, _ := setupRedis(t)
	return st, pub, srv
}

func setupRedis(t *testing.T) (*jobs.Store, *fakePublisher, *httptest.Server, *redis.Client) {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	st := jobs.NewStore(rdb, jobs.Options{})
	pub := &fakePublisher{}
	id := batch.NewIdentity(false)
	sub := &batch.Submitter{Jobs: st, Publisher: pub, Kind: JobKind, Type: events.TypeMLBatchRequested, Source: events.SourceMLBatchPredict}
	srv := httptest.NewServer(newServer(slog.New(slog.DiscardHandler), sub, id))
	t.Cleanup(srv.Close)
	return st, pub, srv, rdb
}

func post(t *testing.T, url, tenant, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/api/v1/ml/batch-predict", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if tenant != "" {
		req.Header.Set(batch.TenantHeader, tenant)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func symbols(n int) string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%q", fmt.Sprintf("%d.T", 1000+i))
	}
	return "[" + strings.Join(s, ",") + "]"
}

func TestBatchPredictAcceptsAndQueues(t *testing.T) {
	t.Parallel()
	st, pub, srv := setup(t)
	status, body := post(t, srv.URL, "acme", `{"symbols":`+symbols(100)+`}`)
	var acc batch.Accepted
	if status != http.StatusAccepted || json.Unmarshal(body, &acc) != nil || acc.JobID == "" {
		t.Fatalf("%d %s", status, body)
	}
	if acc.StatusURL != "/api/v1/execution/jobs/"+acc.JobID || acc.EventsURL != acc.StatusURL+"/events" {
		t.Errorf("links %+v", acc)
	}
	j, err := st.Get(t.Context(), "acme", acc.JobID)
	if err != nil || j.Status != jobs.StatusQueued || j.Total != 100 || j.Kind != JobKind {
		t.Fatalf("job %+v %v", j, err)
	}
	if len(pub.sent) != 1 || pub.sent[0].JobID != acc.JobID || pub.sent[0].Tenant != "acme" || len(pub.sent[0].Symbols) != 100 || pub.sent[0].Horizon != 1 {
		t.Fatalf("published %+v", pub.sent)
	}
	if pub.ids[0] != acc.JobID+".requested" {
		t.Errorf("event id %s", pub.ids[0])
	}
}

func TestBatchPredictRejectsBadInput(t *testing.T) {
	t.Parallel()
	_, pub, srv := setup(t)
	tests := map[string]struct {
		tenant, body string
		status       int
		field        string
	}{
		"too many symbols":  {"acme", `{"symbols":` + symbols(101) + `}`, 400, "symbols"},
		"empty list":        {"acme", `{"symbols":[]}`, 400, "symbols"},
		"missing list":      {"acme", `{}`, 400, "symbols"},
		"duplicate symbols": {"acme", `{"symbols":["7203.T","6758.T","7203.t"]}`, 400, "symbols[2]"},
		"bad symbol":        {"acme", `{"symbols":["7203.T","no spaces"]}`, 400, "symbols[1]"},
		"unknown field":     {"acme", `{"symbols":["7203.T"],"model":"x"}`, 400, "model"},
		"wrong type":        {"acme", `{"symbols":"7203.T"}`, 400, "symbols"},
		"bad horizon":       {"acme", `{"symbols":["7203.T"],"horizon":5}`, 400, "horizon"},
		"not json":          {"acme", `symbols=7203.T`, 400, ""},
		"no tenant":         {"", `{"symbols":["7203.T"]}`, 401, ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			status, body := post(t, srv.URL, tc.tenant, tc.body)
			var p httpx.Problem
			if status != tc.status || json.Unmarshal(body, &p) != nil {
				t.Fatalf("%d %s", status, body)
			}
			if tc.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != tc.field) {
				t.Fatalf("problem does not name %s: %s", tc.field, body)
			}
		})
	}
	if len(pub.sent) != 0 {
		t.Errorf("bad requests published %d events", len(pub.sent))
	}
}

func TestBrokerDownCancelsTheJob(t *testing.T) {
	t.Parallel()
	st, pub, srv, rdb := setupRedis(t)
	pub.err = httpx.Errorf(httpx.CodeUnavailable, "event sink unreachable")
	status, body := post(t, srv.URL, "acme", `{"symbols":["7203.T"]}`)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("%d %s", status, body)
	}
	// No job is left queued with no worker coming.
	keys, err := rdb.Keys(t.Context(), "jobs:job:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("job keys %v %v", keys, err)
	}
	j, err := st.Get(t.Context(), "acme", strings.TrimPrefix(keys[0], "jobs:job:"))
	if err != nil || j.Status != jobs.StatusCancelled {
		t.Errorf("job %+v %v, want cancelled", j, err)
	}
}
