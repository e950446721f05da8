package tests

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/notify"
	"github.com/day-trade/platform/shared/symbols"
)

// symCall sends a JSON request through the gateway with the development key and decodes the
// answer into v (when not nil).
func symCall(t *testing.T, e env, method, path, body string, v any) *http.Response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = bytes.NewReader([]byte(body))
	}
	req, _ := http.NewRequest(method, e.p.GatewayURL()+path, rd)
	req.Header.Set("Authorization", "Bearer "+e.key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp
}

func TestSymbolsThroughTheGateway(t *testing.T) {
	e := startPlatform(t, time.Minute)
	universe := symbols.Starter()

	var sel struct {
		Symbols  []symbols.Symbol `json:"symbols"`
		Scores   []symbols.Score  `json:"scores"`
		Metadata struct {
			Scored int `json:"scored"`
		} `json:"metadata"`
	}
	if r := symCall(t, e, "POST", "/api/v1/symbols/select", `{"count":5,"criteria":"day_trading"}`, &sel); r.StatusCode != 200 {
		t.Fatalf("select: %d", r.StatusCode)
	}
	if len(sel.Symbols) != 5 || len(sel.Scores) != 5 || sel.Metadata.Scored != universe.Len() || len(sel.Scores[0].Components) != len(symbols.Components) {
		t.Fatalf("select: %+v", sel)
	}

	// Screen the whole universe in pages of 50.
	seen := map[string]bool{}
	cursor := ""
	for page := 0; page < 10; page++ {
		body, _ := json.Marshal(map[string]any{"sort_by": "-market_cap", "limit": 50, "cursor": cursor})
		var scr struct {
			Symbols    []symbols.Metrics `json:"symbols"`
			NextCursor string            `json:"next_cursor"`
			Total      int               `json:"total"`
		}
		if r := symCall(t, e, "POST", "/api/v1/symbols/screen", string(body), &scr); r.StatusCode != 200 || scr.Total != universe.Len() {
			t.Fatalf("screen page %d: %d total %d", page, r.StatusCode, scr.Total)
		}
		for _, m := range scr.Symbols {
			seen[m.Symbol.Ticker] = true
		}
		if cursor = scr.NextCursor; cursor == "" {
			break
		}
	}
	if len(seen) != universe.Len() {
		t.Fatalf("screen paged %d of %d symbols", len(seen), universe.Len())
	}
	var bad httpx.Problem
	if r := symCall(t, e, "POST", "/api/v1/symbols/screen", `{"cursor":"forged.cursor"}`, &bad); r.StatusCode != 400 || len(bad.Errors) == 0 || bad.Errors[0].Field != "cursor" {
		t.Fatalf("forged cursor: %d %+v", r.StatusCode, bad)
	}

	// Recommendations need the ensemble: either real predictions or a 503 with Retry-After,
	// never a made-up answer.
	var rec struct {
		Recommendations []struct {
			Prediction struct {
				Class      string  `json:"class"`
				Confidence float64 `json:"confidence"`
			} `json:"prediction"`
		} `json:"recommendations"`
		Metadata struct {
			ModelVersion string `json:"model_version"`
		} `json:"metadata"`
	}
	r := symCall(t, e, "GET", "/api/v1/symbols/recommend?count=3", "", &rec)
	switch r.StatusCode {
	case 200:
		if rec.Metadata.ModelVersion == "" || len(rec.Recommendations) > 3 {
			t.Fatalf("recommend: %+v", rec)
		}
		for _, x := range rec.Recommendations {
			if x.Prediction.Class != "up" || x.Prediction.Confidence < 0.5 {
				t.Fatalf("recommend: %+v", x)
			}
		}
	case 503:
		if r.Header.Get("Retry-After") == "" {
			t.Fatal("recommend 503 without Retry-After")
		}
	default:
		t.Fatalf("recommend: %d", r.StatusCode)
	}
}

func TestNotificationsThroughTheBroker(t *testing.T) {
	const secret = "e2e-webhook-secret"
	// The receiver runs on loopback, which only an explicit allow-list opens.
	t.Setenv("NOTIFY_ALLOW_CIDRS", "127.0.0.0/8")
	t.Setenv("NOTIFY_WEBHOOK_SECRET", secret)
	var (
		calls atomic.Int32
		mu    sync.Mutex
		got   [][]byte
	)
	rx := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if calls.Add(1) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if err := notify.Verify([]byte(secret), b, r.Header.Get(notify.HeaderSignature), time.Now(), time.Minute); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		got = append(got, b)
		mu.Unlock()
	}))
	defer rx.Close()
	e := startPlatform(t, time.Minute)

	var sent struct {
		ID       string `json:"notification_id"`
		Status   string `json:"status"`
		Dispatch string `json:"dispatch"`
	}
	body := `{"type":"alert","message":"7203.T broke its 20-day high","priority":"high","channels":["log",{"type":"webhook","url":"` + rx.URL + `/hook"}]}`
	if r := symCall(t, e, "POST", "/api/v1/notifications/send", body, &sent); r.StatusCode != 202 || sent.ID == "" {
		t.Fatalf("send: %d %+v", r.StatusCode, sent)
	}
	var st struct {
		Status   string                 `json:"status"`
		Channels []notify.ChannelStatus `json:"channels"`
	}
	// Polled gently: the gateway rate-limits the development key like any other.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		st.Status, st.Channels = "", nil
		symCall(t, e, "GET", "/api/v1/notifications/"+sent.ID, "", &st)
		if st.Status == notify.OverallDelivered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered: %+v", st)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || calls.Load() != 3 || st.Channels[1].Attempts != 3 {
		t.Fatalf("webhook: %d calls, %d delivered; status %+v", calls.Load(), len(got), st)
	}
	t.Logf("notification %s via %s: %+v", sent.ID, sent.Dispatch, st.Channels)

	var p httpx.Problem
	ssrf := `{"type":"alert","message":"m","channels":[{"type":"webhook","url":"http://169.254.169.254/latest/meta-data/"}]}`
	if r := symCall(t, e, "POST", "/api/v1/notifications/send", ssrf, &p); r.StatusCode != 400 || len(p.Errors) == 0 || p.Errors[0].Field != "channels[0].url" {
		t.Fatalf("ssrf: %d %+v", r.StatusCode, p)
	}
}
