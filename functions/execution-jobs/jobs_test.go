package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func setup(t *testing.T) (*jobs.Store, *httptest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	st := jobs.NewStore(rdb, jobs.Options{})
	id := batch.NewIdentity(false)
	srv := httptest.NewServer(newServer(slog.New(slog.DiscardHandler), st, id, streamOptions{Max: 20 * time.Second, Heartbeat: time.Second}))
	t.Cleanup(srv.Close)
	return st, srv
}

func get(t *testing.T, url, tenant string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if tenant != "" {
		req.Header.Set(batch.TenantHeader, tenant)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func TestGetJobIsTenantScoped(t *testing.T) {
	t.Parallel()
	st, srv := setup(t)
	j, err := st.Create(t.Context(), jobs.Job{Kind: "ml.batch", Tenant: "acme", Total: 3})
	if err != nil {
		t.Fatal(err)
	}
	url := srv.URL + "/api/v1/execution/jobs/" + j.ID

	resp, body := get(t, url, "acme")
	var got jobs.Job
	if resp.StatusCode != 200 || json.Unmarshal(body, &got) != nil || got.ID != j.ID || got.Status != jobs.StatusQueued || got.Total != 3 {
		t.Fatalf("own job: %d %s", resp.StatusCode, body)
	}
	_, unknownBody := get(t, srv.URL+"/api/v1/execution/jobs/no-such-job", "acme")
	tests := map[string]struct {
		url, tenant string
		want        int
	}{
		"other tenant": {url, "globex", 404},
		"unknown id":   {srv.URL + "/api/v1/execution/jobs/no-such-job", "acme", 404},
		"malformed id": {srv.URL + "/api/v1/execution/jobs/%2e%2e%2fx", "acme", 404},
		"no tenant":    {url, "", 401},
		"bad tenant":   {url, "a b", 401},
		"other's feed": {url + "/events", "globex", 404},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			resp, body := get(t, tc.url, tc.tenant)
			if resp.StatusCode != tc.want || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
				t.Fatalf("%d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
		})
	}
	// Another tenant's job and an unknown one are indistinguishable.
	_, otherBody := get(t, url, "globex")
	if strip(otherBody) != strip(unknownBody) {
		t.Errorf("other tenant's answer %s differs from unknown id's %s", otherBody, unknownBody)
	}
}

// strip drops the fields that name the request (instance, request id) from a problem.
func strip(b []byte) string {
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	delete(m, "instance")
	delete(m, "request_id")
	out, _ := json.Marshal(m)
	return string(out)
}

type sseEvent struct{ id, event, data string }

func readEvents(t *testing.T, body io.Reader) []sseEvent {
	t.Helper()
	var (
		out []sseEvent
		cur sseEvent
	)
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		}
	}
	return out
}

func TestEventsStreamProgressUntilTheJobEnds(t *testing.T) {
	t.Parallel()
	st, srv := setup(t)
	ctx := t.Context()
	j, err := st.Create(ctx, jobs.Job{Kind: "data.batch", Tenant: "acme", Total: 4})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/v1/execution/jobs/"+j.ID+"/events", nil)
	req.Header.Set(batch.TenantHeader, "acme")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The worker runs while the client reads.
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _ = st.Start(ctx, "acme", j.ID)
		for done := int64(1); done <= 4; done++ {
			_, _ = st.Progress(ctx, "acme", j.ID, done, 4)
		}
		_, _ = st.Succeed(ctx, "acme", j.ID, "ref", json.RawMessage(`{"ok":4}`))
	}()
	evs := readEvents(t, resp.Body)
	if len(evs) < 3 || evs[len(evs)-1].event != "end" {
		t.Fatalf("events %+v", evs)
	}
	var last jobs.Job
	prev := int64(0)
	for _, e := range evs[:len(evs)-1] {
		var jj jobs.Job
		if e.event != "job" || json.Unmarshal([]byte(e.data), &jj) != nil {
			t.Fatalf("event %+v", e)
		}
		if jj.Version <= prev || e.id != jsonInt(jj.Version) {
			t.Fatalf("versions out of order or id mismatch: %+v after %d", e, prev)
		}
		prev, last = jj.Version, jj
	}
	if last.Status != jobs.StatusSucceeded || last.Done != 4 {
		t.Fatalf("last job state %+v", last)
	}

	// A reconnect after the end still gets the final state, then the end.
	resp2, body := get(t, srv.URL+"/api/v1/execution/jobs/"+j.ID+"/events", "acme", "Last-Event-ID", jsonInt(last.Version))
	evs = readEvents(t, strings.NewReader(string(body)))
	if resp2.StatusCode != 200 || len(evs) != 2 || evs[1].event != "end" {
		t.Fatalf("reconnect: %d %+v", resp2.StatusCode, evs)
	}
}

func jsonInt(n int64) string { b, _ := json.Marshal(n); return string(b) }
