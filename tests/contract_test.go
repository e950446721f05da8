package tests

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/day-trade/platform/gateway"
)

// Server-Sent Events are checked as text here (the document says so); TestContract checks each
// event's data against the Job schema itself.
func init() {
	openapi3filter.RegisterBodyDecoder("text/event-stream", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(r)
		return string(b), err
	})
}

// contract is the OpenAPI document the running gateway serves, with kin-openapi's router
// and response validator.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

func loadContract(t *testing.T, e env) contract {
	t.Helper()
	resp, body := e.call(t, "GET", gateway.PathOpenAPI, "", "") // public: no key
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", gateway.PathOpenAPI, resp.StatusCode, body)
	}
	doc, err := openapi3.NewLoader().LoadFromData(body)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the served document is not valid OpenAPI: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	doc.Servers = nil // match paths on whatever port the platform picked
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return contract{doc: doc, router: r}
}

// exchange sends one request through the gateway and checks the answer against the document.
// It returns the status and body; an answer outside the document fails the test.
func (c contract) exchange(t *testing.T, e env, method, path, key, body string, hdr map[string]string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.p.GatewayURL()+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	vreq, _ := http.NewRequest(method, "http://gateway"+path, strings.NewReader(body))
	vreq.Header = req.Header.Clone()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		t.Fatalf("%s %s is not in the document: %v", method, path, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}); err != nil {
		t.Errorf("%s %s answered %d outside the contract: %v\n%s", method, path, resp.StatusCode, err, b)
	}
	return resp.StatusCode, b
}

// schema checks one JSON value against a component schema of the document.
func (c contract) schema(t *testing.T, name string, b []byte) {
	t.Helper()
	ref := c.doc.Components.Schemas[name]
	if ref == nil {
		t.Fatalf("no schema %s", name)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v: %s", name, err, b)
	}
	if err := ref.Value.VisitJSON(v, openapi3.MultiErrors()); err != nil {
		t.Errorf("%s outside the contract: %v\n%s", name, err, b)
	}
}

// contractCase is one request and the statuses it may answer.
type contractCase struct {
	name, method, path, body string
	key                      string
	hdr                      map[string]string
	want                     []int
}

func (c contract) run(t *testing.T, e env, tc contractCase) []byte {
	t.Helper()
	status, body := c.exchange(t, e, tc.method, tc.path, tc.key, tc.body, tc.hdr)
	if !slices.Contains(tc.want, status) {
		t.Fatalf("%s %s: status %d, want %v: %s", tc.method, tc.path, status, tc.want, body)
	}
	return body
}

// TestContract checks the real functions' answers, through the real gateway, against the
// OpenAPI document that gateway serves: every GET route, the safe POSTs with valid bodies
// (answers 200, 201 and 202), the overview, the job event stream, and problem answers.
func TestContract(t *testing.T) {
	e := startPlatform(t, time.Minute)
	c := loadContract(t, e)
	seen := map[string]bool{} // "METHOD /path" operations exchanged
	do := func(t *testing.T, tc contractCase) []byte {
		t.Helper()
		req, _ := http.NewRequest(tc.method, "http://gateway"+tc.path, nil)
		if route, _, err := c.router.FindRoute(req); err == nil {
			seen[tc.method+" "+route.Path] = true
		}
		return c.run(t, e, tc)
	}
	const missingJob = "no-such-job"

	cases := []contractCase{
		{name: "openapi", method: "GET", path: gateway.PathOpenAPI, want: []int{200}},
		{name: "stocks", method: "GET", path: "/api/v1/data/stocks/7203.T?period=1mo&interval=1d", key: e.key, want: []int{200}},
		{name: "stocks with indicators", method: "GET", path: "/api/v1/data/stocks/6758.T?period=3mo&interval=1d&indicators=rsi14,sma20", key: e.key, want: []int{200}},
		{name: "stocks bad period", method: "GET", path: "/api/v1/data/stocks/7203.T?period=forever", key: e.key, want: []int{400}},
		{name: "stocks without a key", method: "GET", path: "/api/v1/data/stocks/7203.T", want: []int{401}},
		{name: "cache stats", method: "GET", path: "/api/v1/data/cache", key: e.key, want: []int{200}},
		{name: "cache clear nothing", method: "DELETE", path: "/api/v1/data/cache?pattern=contract-none-*", key: e.key, want: []int{200}},
		{name: "batch-fetch bad body", method: "POST", path: "/api/v1/data/batch-fetch", body: `{"symbols":[]}`, key: e.key, want: []int{400}},
		{name: "batch-predict bad body", method: "POST", path: "/api/v1/ml/batch-predict", body: `{"symbols":["7203.T"],"horizon":5}`, key: e.key, want: []int{400}},
		{name: "dead letters", method: "GET", path: "/api/v1/events/dead-letters?limit=10", key: e.key, want: []int{200}},
		{name: "dead letters bad limit", method: "GET", path: "/api/v1/events/dead-letters?limit=0", key: e.key, want: []int{400}},
		{name: "replay unknown letter", method: "POST", path: "/api/v1/events/dead-letters/0123456789abcdef01234567/replay", key: e.key, want: []int{404}},
		{name: "unknown job", method: "GET", path: "/api/v1/execution/jobs/" + missingJob, key: e.key, want: []int{404}},
		{name: "unknown job events", method: "GET", path: "/api/v1/execution/jobs/" + missingJob + "/events", key: e.key, want: []int{404}},
		{name: "positions", method: "GET", path: "/api/v1/execution/positions", key: e.key, want: []int{200}},
		{name: "orders bad status", method: "GET", path: "/api/v1/execution/orders?status=pending", key: e.key, want: []int{400}},
		{name: "schedules", method: "GET", path: "/api/v1/execution/schedule", key: e.key, want: []int{200}},
		{name: "schedule bad body", method: "POST", path: "/api/v1/execution/schedule", body: `{"workflow":"nope","schedule":"never"}`, key: e.key, want: []int{400}},
		{name: "cancel unknown schedule", method: "DELETE", path: "/api/v1/execution/schedule/no-such-schedule", key: e.key, want: []int{404}},
		{name: "models", method: "GET", path: "/api/v1/ml/models", key: e.key, want: []int{200}},
		{name: "predict bad body", method: "POST", path: "/api/v1/ml/predict", body: `{"symbol":""}`, key: e.key, want: []int{400}},
		{name: "unknown notification", method: "GET", path: "/api/v1/notifications/ntf_missing", key: e.key, want: []int{404}},
		{name: "notification bad body", method: "POST", path: "/api/v1/notifications/send", body: `{"type":"alert","message":"","channels":[]}`, key: e.key, want: []int{400}},
		{name: "select", method: "POST", path: "/api/v1/symbols/select", body: `{"count":5}`, key: e.key, want: []int{200}},
		{name: "select with filters", method: "POST", path: "/api/v1/symbols/select",
			body: `{"criteria":"day_trading","count":3,"lookback":"1mo","filters":{"segments":["prime"],"price":{"min":100}}}`, key: e.key, want: []int{200}},
		{name: "screen", method: "POST", path: "/api/v1/symbols/screen", body: `{"limit":5,"sort_by":"-turnover"}`, key: e.key, want: []int{200}},
		{name: "screen bad cursor", method: "POST", path: "/api/v1/symbols/screen", body: `{"cursor":"forged.cursor"}`, key: e.key, want: []int{400}},
		{name: "recommend bad query", method: "GET", path: "/api/v1/symbols/recommend?count=0", key: e.key, want: []int{400}},
		{name: "trade bad body", method: "POST", path: "/api/v1/execution/trade", body: `{"symbol":"7203.T","side":"hold"}`,
			key: e.key, hdr: map[string]string{"Idempotency-Key": "contract-2"}, want: []int{400}},
		{name: "overview bad symbol", method: "GET", path: "/api/v1/overview/%3Cx%3E", key: e.key, want: []int{400}},
		{name: "keys", method: "GET", path: "/api/v1/gateway/keys", key: e.key, want: []int{200}},
		{name: "revoke unknown key", method: "DELETE", path: "/api/v1/gateway/keys/nokey", key: e.key, want: []int{404}},
		{name: "upstreams", method: "GET", path: "/api/v1/gateway/upstreams", key: e.key, want: []int{200}},
		{name: "instances", method: "GET", path: "/api/v1/gateway/upstreams/data-stocks/instances", key: e.key, want: []int{200}},
		{name: "instances of no upstream", method: "GET", path: "/api/v1/gateway/upstreams/nope/instances", key: e.key, want: []int{404}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { do(t, tc) })
	}

	t.Run("trade and orders", func(t *testing.T) {
		body := `{"symbol":"7203.T","side":"buy","type":"market","quantity":100}`
		idem := map[string]string{"Idempotency-Key": "contract-1"}
		do(t, contractCase{method: "POST", path: "/api/v1/execution/trade", body: body, key: e.key, hdr: idem, want: []int{201, 409, 422}})
		// The same key again: the stored answer, replayed.
		do(t, contractCase{method: "POST", path: "/api/v1/execution/trade", body: body, key: e.key, hdr: idem, want: []int{201, 409, 422}})
		do(t, contractCase{method: "GET", path: "/api/v1/execution/orders?limit=10", key: e.key, want: []int{200}})
		do(t, contractCase{method: "GET", path: "/api/v1/execution/positions", key: e.key, want: []int{200}})
	})

	// A batch job end to end: 202, its status until it ends, then its event stream (which
	// ends at once for an ended job), each event's data a Job.
	t.Run("batch-fetch job", func(t *testing.T) {
		b := do(t, contractCase{method: "POST", path: "/api/v1/data/batch-fetch", body: `{"symbols":["7203.T","6758.T"],"period":"1mo","interval":"1d"}`, key: e.key, want: []int{202}})
		var acc struct {
			JobID string `json:"job_id"`
		}
		if err := json.Unmarshal(b, &acc); err != nil || acc.JobID == "" {
			t.Fatalf("accepted: %v %s", err, b)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			jb := do(t, contractCase{method: "GET", path: "/api/v1/execution/jobs/" + acc.JobID, key: e.key, want: []int{200}})
			var j struct {
				Status string `json:"status"`
			}
			_ = json.Unmarshal(jb, &j)
			if j.Status == "succeeded" || j.Status == "failed" || j.Status == "cancelled" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("job did not end: %s", jb)
			}
			time.Sleep(500 * time.Millisecond)
		}
		stream := do(t, contractCase{method: "GET", path: "/api/v1/execution/jobs/" + acc.JobID + "/events", key: e.key, want: []int{200}})
		checkJobEvents(t, c, stream)
	})

	t.Run("batch-predict", func(t *testing.T) {
		b := do(t, contractCase{method: "POST", path: "/api/v1/ml/batch-predict", body: `{"symbols":["7203.T"],"horizon":1}`, key: e.key, want: []int{202}})
		var acc struct {
			JobID string `json:"job_id"`
		}
		if err := json.Unmarshal(b, &acc); err != nil || acc.JobID == "" {
			t.Fatalf("accepted: %v %s", err, b)
		}
		do(t, contractCase{method: "GET", path: "/api/v1/execution/jobs/" + acc.JobID, key: e.key, want: []int{200}})
	})

	t.Run("notification", func(t *testing.T) {
		b := do(t, contractCase{method: "POST", path: "/api/v1/notifications/send",
			body: `{"type":"contract","message":"contract test","title":"t","priority":"low","ref":"contract","meta":{"k":"v"},"channels":["log",{"type":"log"}]}`,
			key:  e.key, want: []int{202}})
		var sent struct {
			ID string `json:"notification_id"`
		}
		if err := json.Unmarshal(b, &sent); err != nil || sent.ID == "" {
			t.Fatalf("sent: %v %s", err, b)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(250 * time.Millisecond) {
			b := do(t, contractCase{method: "GET", path: "/api/v1/notifications/" + sent.ID, key: e.key, want: []int{200}})
			if strings.Contains(string(b), `"status":"delivered"`) || time.Now().After(deadline) {
				break
			}
		}
	})

	// A schedule: created with its first run's job (queued until due), listed, cancelled
	// (which cancels that job, so its event stream ends at once), cancelled again.
	t.Run("schedule", func(t *testing.T) {
		b := do(t, contractCase{method: "POST", path: "/api/v1/execution/schedule",
			body: `{"workflow":"daily-predict","schedule":"0 9 * * 1-5","config":{"count":2}}`, key: e.key, want: []int{201}})
		var sc struct {
			JobID      string `json:"job_id"`
			ScheduleID string `json:"schedule_id"`
		}
		if err := json.Unmarshal(b, &sc); err != nil || sc.ScheduleID == "" || sc.JobID == "" {
			t.Fatalf("created: %v %s", err, b)
		}
		do(t, contractCase{method: "GET", path: "/api/v1/execution/schedule", key: e.key, want: []int{200}})
		do(t, contractCase{method: "GET", path: "/api/v1/execution/jobs/" + sc.JobID, key: e.key, want: []int{200}})
		do(t, contractCase{method: "DELETE", path: "/api/v1/execution/schedule/" + sc.ScheduleID, key: e.key, want: []int{200}})
		do(t, contractCase{method: "DELETE", path: "/api/v1/execution/schedule/" + sc.ScheduleID, key: e.key, want: []int{200, 409}})
		do(t, contractCase{method: "GET", path: "/api/v1/execution/schedule", key: e.key, want: []int{200}})
		stream := do(t, contractCase{method: "GET", path: "/api/v1/execution/jobs/" + sc.JobID + "/events", key: e.key, want: []int{200}})
		checkJobEvents(t, c, stream)
	})

	t.Run("key lifecycle", func(t *testing.T) {
		b := do(t, contractCase{method: "POST", path: "/api/v1/gateway/keys", body: `{"owner":"contract","roles":["viewer"],"ttl_seconds":3600}`, key: e.key, want: []int{201}})
		var created struct {
			Record struct {
				ID string `json:"id"`
			} `json:"record"`
		}
		if err := json.Unmarshal(b, &created); err != nil || created.Record.ID == "" {
			t.Fatalf("created: %v %s", err, b)
		}
		do(t, contractCase{method: "GET", path: "/api/v1/gateway/keys", key: e.key, want: []int{200}})
		b = do(t, contractCase{method: "POST", path: "/api/v1/gateway/keys/" + created.Record.ID + "/rotate", body: `{"grace_seconds":60}`, key: e.key, want: []int{201}})
		var rotated struct {
			Record struct {
				ID string `json:"id"`
			} `json:"record"`
		}
		if err := json.Unmarshal(b, &rotated); err != nil || rotated.Record.ID == "" {
			t.Fatalf("rotated: %v %s", err, b)
		}
		do(t, contractCase{method: "GET", path: "/api/v1/gateway/keys", key: e.key, want: []int{200}}) // with rotated_to and expires_at
		do(t, contractCase{method: "DELETE", path: "/api/v1/gateway/keys/" + rotated.Record.ID, key: e.key, want: []int{200}})
		do(t, contractCase{method: "POST", path: "/api/v1/gateway/keys/" + rotated.Record.ID + "/rotate", key: e.key, want: []int{409}})
		do(t, contractCase{method: "DELETE", path: "/api/v1/gateway/keys/" + created.Record.ID, key: e.key, want: []int{200}})
	})

	// The ensemble may still be loading: every answer, 503 or 200, must match the document,
	// and the overview is checked once a prediction is possible (complete) and before (partial).
	t.Run("predict and overview", func(t *testing.T) {
		deadline := time.Now().Add(90 * time.Second)
		for {
			ostatus, obody := c.exchange(t, e, "GET", "/api/v1/overview/7203.T", e.key, "", nil)
			seen["GET /api/v1/overview/{symbol}"] = true
			if ostatus != 200 {
				t.Fatalf("overview: %d %s", ostatus, obody)
			}
			status, body := c.exchange(t, e, "POST", "/api/v1/ml/predict", e.key, `{"symbol":"7203.T"}`, nil)
			seen["POST /api/v1/ml/predict"] = true
			if status == 200 && strings.Contains(string(obody), `"complete":true`) {
				return
			}
			if status != 200 && status != 503 {
				t.Fatalf("predict: %d %s", status, body)
			}
			if time.Now().After(deadline) {
				t.Fatalf("no complete overview: predict %d %s; overview %s", status, body, obody)
			}
			time.Sleep(500 * time.Millisecond)
		}
	})

	// Once the ensemble answers: recommendations (up calls only) and the models it serves.
	t.Run("recommend", func(t *testing.T) {
		do(t, contractCase{method: "GET", path: "/api/v1/symbols/recommend?count=3&lookback=3mo", key: e.key, want: []int{200}})
		do(t, contractCase{method: "GET", path: "/api/v1/ml/models", key: e.key, want: []int{200}})
	})

	// Last, so that no other request is routed to it: an instance registered for an upstream
	// and deregistered again; a host outside the allowed ones is refused.
	t.Run("instance registration", func(t *testing.T) {
		base := "/api/v1/gateway/upstreams/dead-letter/instances"
		do(t, contractCase{method: "POST", path: base, body: `{"url":"http://example.com:8080"}`, key: e.key, want: []int{422}})
		b := do(t, contractCase{method: "POST", path: base, body: `{"url":"http://127.0.0.1:9","id":"contract-1","weight":1,"ttl_seconds":30}`, key: e.key, want: []int{201}})
		if !strings.Contains(string(b), `"id":"contract-1"`) {
			t.Fatalf("registered: %s", b)
		}
		do(t, contractCase{method: "GET", path: base, key: e.key, want: []int{200}})
		do(t, contractCase{method: "GET", path: "/api/v1/gateway/upstreams", key: e.key, want: []int{200}})
		do(t, contractCase{method: "DELETE", path: base + "/contract-1", key: e.key, want: []int{200}})
		do(t, contractCase{method: "DELETE", path: base + "/contract-1", key: e.key, want: []int{404}})
	})

	t.Run("sla", func(t *testing.T) {
		do(t, contractCase{method: "GET", path: "/api/v1/gateway/sla", key: e.key, want: []int{200}})
	})

	// Every operation of the document was exchanged at least once (the dead-letter replay only
	// as a 404: the platform parks no letter in this test).
	t.Run("coverage", func(t *testing.T) {
		var missing []string
		for path, item := range c.doc.Paths.Map() {
			for method := range item.Operations() {
				if !seen[method+" "+path] {
					missing = append(missing, method+" "+path)
				}
			}
		}
		slices.Sort(missing)
		if len(missing) > 0 {
			t.Errorf("operations never exchanged: %v", missing)
		}
	})
}

// checkJobEvents checks an ended job's Server-Sent Events: at least one "job" event whose
// data is a Job, then "end".
func checkJobEvents(t *testing.T, c contract, stream []byte) {
	t.Helper()
	var jobs int
	event := ""
	for _, line := range strings.Split(string(stream), "\n") {
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && event == "job":
			c.schema(t, "Job", []byte(strings.TrimPrefix(line, "data: ")))
			jobs++
		}
	}
	if jobs == 0 || event != "end" {
		t.Errorf("stream: %d job events, last event %q: %s", jobs, event, stream)
	}
}
