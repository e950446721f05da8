package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
	n := notify.Notification{ID: "ntf_1", Type: "alert", Message: "m", Priority: notify.PriorityHigh, CreatedAt: time.Now().UTC(),
		Targets: []notify.Target{{Channel: notify.ChannelSlack, URL: "https://hooks.slack.com/services/T1/B1/SECRET"}, {Channel: notify.ChannelLog}}}
	st.Create(context.Background(), n)
	st.SetStatus(context.Background(), "ntf_1", notify.ChannelStatus{Index: 1, Channel: "log", Status: notify.StatusDelivered, Attempts: 1})
	h := newServer(slog.New(slog.DiscardHandler), st)
	get := func(id string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/notifications/"+id, nil))
		return w
	}
	w := get("ntf_1")
	var resp StatusResponse
	json.Unmarshal(w.Body.Bytes(), &resp)
	if w.Code != 200 || resp.Status != notify.OverallInProgress || len(resp.Channels) != 2 || resp.Channels[1].Status != notify.StatusDelivered || resp.Priority != notify.PriorityHigh {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if strings.Contains(w.Body.String(), "SECRET") {
		t.Fatal("the Slack URL leaked")
	}
	if w := get("ntf_404"); w.Code != 404 {
		t.Errorf("unknown: %d", w.Code)
	}
	if w := get("bad%20id!"); w.Code != 400 {
		t.Errorf("bad id: %d", w.Code)
	}
	rs.Kill()
	if w := get("ntf_1"); w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Errorf("redis down: %d %v", w.Code, w.Header())
	}
}
