package runtime_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	cloudevents "github.com/cloudevents/sdk-go/v2"

	platformevents "github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/config"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
)

// apiV2Event is an API Gateway HTTP API (payload format 2.0) event as AWS documents it.
func apiV2Event(method, rawPath, rawQuery, body string, base64Body bool) []byte {
	e := map[string]any{
		"version":        "2.0",
		"routeKey":       method + " " + rawPath,
		"rawPath":        rawPath,
		"rawQueryString": rawQuery,
		"headers":        map[string]string{"accept": "application/json", "content-type": "application/json", "x-request-id": "req-1"},
		"requestContext": map[string]any{
			"accountId": "123456789012", "apiId": "api-id", "domainName": "id.execute-api.ap-northeast-1.amazonaws.com",
			"http":      map[string]any{"method": method, "path": rawPath, "protocol": "HTTP/1.1", "sourceIp": "192.0.2.1", "userAgent": "test"},
			"requestId": "id", "routeKey": method + " " + rawPath, "stage": "$default", "timeEpoch": 1583348638390,
		},
		"body":            body,
		"isBase64Encoded": base64Body,
	}
	b, _ := json.Marshal(e)
	return b
}

// eventBridgeEvent is an EventBridge event as a rule delivers it to Lambda.
func eventBridgeEvent(id, detailType, source, detail string) []byte {
	e := map[string]any{
		"version": "0", "id": id, "detail-type": detailType, "source": source,
		"account": "123456789012", "time": "2026-01-05T00:00:00Z", "region": "ap-northeast-1", "resources": []string{},
	}
	if detail != "" {
		e["detail"] = json.RawMessage(detail)
	}
	b, _ := json.Marshal(e)
	return b
}

// echo answers like a function would: JSON built from the request.
func echo() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/echo/{word}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Word", r.PathValue("word"))
		_ = httpx.Encode(w, http.StatusOK, map[string]string{"word": r.PathValue("word"), "q": r.URL.Query().Get("q"), "id": httpx.RequestIDFromContext(r.Context())})
	})
	mux.HandleFunc("POST /api/v1/echo", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b)
	})
	mux.HandleFunc("DELETE /api/v1/echo", func(http.ResponseWriter, *http.Request) {}) // writes nothing: 200
	return mux
}

func wrapped(h http.Handler) http.Handler {
	rt := config.Runtime{MaxBodyBytes: 1 << 20}
	return runtime.NewHandler(rt, runtime.Function{Handler: h}, nil, slog.New(slog.DiscardHandler), nil)
}

func invokeHTTP(t *testing.T, lh *runtime.LambdaHandler, payload []byte) events.APIGatewayV2HTTPResponse {
	t.Helper()
	out, err := lh.Invoke(context.Background(), payload)
	if err != nil {
		t.Fatalf("Invoke: %v", err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("response %s: %v", out, err)
	}
	return resp
}

func TestLambdaAPIGatewayV2MatchesHTTP(t *testing.T) {
	h := wrapped(echo())
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	lh := runtime.NewLambdaHandler(h, runtime.LambdaOptions{})

	t.Run("GET with path value and query", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/echo/kabu?q=7203.T", nil)
		req.Header.Set("X-Request-Id", "req-1")
		want, wantBody := get(t, req)
		got := invokeHTTP(t, lh, apiV2Event("GET", "/api/v1/echo/kabu", "q=7203.T", "", false))
		if got.StatusCode != want.StatusCode || got.Body != wantBody {
			t.Fatalf("lambda %d %q, http %d %q", got.StatusCode, got.Body, want.StatusCode, wantBody)
		}
		if got.Headers["X-Word"] != "kabu" || got.Headers["Content-Type"] != want.Header.Get("Content-Type") {
			t.Errorf("headers %v, want X-Word and Content-Type %q", got.Headers, want.Header.Get("Content-Type"))
		}
	})
	t.Run("unknown route is the same 404 problem", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/nope", nil)
		req.Header.Set("X-Request-Id", "req-1")
		want, wantBody := get(t, req)
		got := invokeHTTP(t, lh, apiV2Event("GET", "/api/v1/nope", "", "", false))
		if got.StatusCode != want.StatusCode || got.Body != wantBody {
			t.Fatalf("lambda %d %q, http %d %q", got.StatusCode, got.Body, want.StatusCode, wantBody)
		}
	})
	t.Run("base64 body reaches the handler decoded", func(t *testing.T) {
		raw := "\x00\x01binary\xff"
		got := invokeHTTP(t, lh, apiV2Event("POST", "/api/v1/echo", "", base64.StdEncoding.EncodeToString([]byte(raw)), true))
		body := got.Body
		if got.IsBase64Encoded {
			b, _ := base64.StdEncoding.DecodeString(got.Body)
			body = string(b)
		}
		if got.StatusCode != http.StatusOK || body != raw {
			t.Fatalf("got %d %q (base64 %v), want 200 %q", got.StatusCode, body, got.IsBase64Encoded, raw)
		}
	})
	t.Run("handler that writes nothing answers 200", func(t *testing.T) {
		if got := invokeHTTP(t, lh, apiV2Event("DELETE", "/api/v1/echo", "", "", false)); got.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200", got.StatusCode)
		}
	})
	t.Run("body that is not base64 is a 400 problem", func(t *testing.T) {
		got := invokeHTTP(t, lh, apiV2Event("POST", "/api/v1/echo", "", "!!not base64!!", true))
		if got.StatusCode != http.StatusBadRequest || got.Headers["Content-Type"] != httpx.ProblemContentType {
			t.Fatalf("got %d %v %q, want a 400 problem", got.StatusCode, got.Headers, got.Body)
		}
	})
}

func get(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// received records what a real events.Receiver handed its handler.
type received struct {
	mu     sync.Mutex
	events []cloudevents.Event
	fail   error
}

func (r *received) handle(_ context.Context, e cloudevents.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.events = append(r.events, e)
	return nil
}

func (r *received) all() []cloudevents.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cloudevents.Event(nil), r.events...)
}

// receiverAt mounts a deduplicating CloudEvents receiver (real Redis) at path.
func receiverAt(t *testing.T, path, typ string) (http.Handler, *received) {
	t.Helper()
	rdb, err := store.Open(redistest.Start(t).URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	recv, err := platformevents.NewReceiver(rdb, store.NewKeys("test"), platformevents.ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := &received{}
	recv.Handle(typ, got.handle)
	mux := http.NewServeMux()
	mux.Handle("POST "+path, recv.HTTPHandler())
	return wrapped(mux), got
}

func TestLambdaEventBridgeBecomesCloudEvent(t *testing.T) {
	typ := platformevents.TypeExecutionTick
	h, got := receiverAt(t, "/events", typ)
	lh := runtime.NewLambdaHandler(h, runtime.LambdaOptions{EventPaths: map[string]string{typ: "/events"}})
	detail := `{"schedule":"market-open","at":"2026-01-05T00:00:00Z"}`
	payload := eventBridgeEvent("eb-1", typ, platformevents.SourceExecutionScheduler, detail)

	for range 2 { // the second is a redelivery: acknowledged, not processed again
		out, err := lh.Invoke(context.Background(), payload)
		if err != nil {
			t.Fatalf("Invoke: %v", err)
		}
		if !strings.Contains(string(out), `"status":2`) {
			t.Fatalf("output %s, want a 2xx status", out)
		}
	}
	evs := got.all()
	if len(evs) != 1 {
		t.Fatalf("handler ran %d times, want once (dedup on source, id)", len(evs))
	}
	e := evs[0]
	if e.ID() != "eb-1" || e.Type() != typ || e.Source() != platformevents.SourceExecutionScheduler {
		t.Errorf("event id %q type %q source %q", e.ID(), e.Type(), e.Source())
	}
	if want := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC); !e.Time().Equal(want) {
		t.Errorf("time %v, want %v", e.Time(), want)
	}
	var tick platformevents.ExecutionTick
	if err := platformevents.DecodeData(e, &tick); err != nil || tick.Schedule != "market-open" {
		t.Errorf("data %s decoded to %+v, %v", e.Data(), tick, err)
	}
}

func TestLambdaEventBridgeFailuresAreInvocationErrors(t *testing.T) {
	typ := platformevents.TypeExecutionTick
	tests := map[string]struct {
		fail    error
		payload []byte
		want    string
	}{
		"poison event":          {fail: httpx.Errorf(httpx.CodeInvalid, "bad tick"), want: "answered 400"},
		"transient failure":     {fail: httpx.Errorf(httpx.CodeUnavailable, "redis down"), want: "answered 503"},
		"type nobody handles":   {payload: eventBridgeEvent("eb-3", "com.daytrade.other.thing", "/x", `{}`), want: "answered 4"},
		"no id":                 {payload: eventBridgeEvent("", typ, "/x", `{}`), want: "lacks id"},
		"no source":             {payload: eventBridgeEvent("eb-4", typ, "", `{}`), want: "lacks source"},
		"not json":              {payload: []byte(`{"detail-type":`), want: "cannot decode event"},
		"neither shape":         {payload: []byte(`{"Records":[]}`), want: "unsupported event"},
		"both shapes":           {payload: []byte(`{"detail-type":"x","requestContext":{"http":{"method":"GET"}}}`), want: "both"},
		"detail-type not typed": {payload: []byte(`{"detail-type":7,"id":"x","source":"y"}`), want: "cannot decode event"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			h, got := receiverAt(t, "/", typ)
			got.fail = tc.fail
			payload := tc.payload
			if payload == nil {
				payload = eventBridgeEvent("eb-2", typ, platformevents.SourceExecutionScheduler, `{"schedule":"x"}`)
			}
			out, err := runtime.NewLambdaHandler(h, runtime.LambdaOptions{}).Invoke(context.Background(), payload)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Invoke = %s, %v; want an error mentioning %q", out, err, tc.want)
			}
		})
	}
}

func TestServeLambdaReturnsWhenContextEnds(t *testing.T) {
	// A Runtime API that registers the SIGTERM extension and then never hands out an
	// invocation. It is left running on purpose: aws-lambda-go exits the process when /next
	// fails, so the loop must stay parked on it until the test binary ends.
	polling := make(chan struct{}, 1)
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/2020-01-01/extension/register" {
			w.Header().Set("Lambda-Extension-Identifier", "ext-1")
			return
		}
		if r.URL.Path == "/2018-06-01/runtime/invocation/next" {
			select {
			case polling <- struct{}{}:
			default:
			}
		}
		<-r.Context().Done()
	}))
	t.Setenv("AWS_LAMBDA_RUNTIME_API", strings.TrimPrefix(api.URL, "http://"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runtime.ServeLambda(ctx, echo()) }()
	select { // the loop has read AWS_LAMBDA_RUNTIME_API before t.Setenv restores it
	case <-polling:
	case <-time.After(10 * time.Second):
		t.Fatal("the Lambda loop never asked for an invocation")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("ServeLambda = %v, want nil after its context ended", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("ServeLambda did not return after its context ended")
	}
}

func FuzzLambdaInvoke(f *testing.F) {
	f.Add(apiV2Event("GET", "/api/v1/echo/x", "q=1", "", false))
	f.Add(apiV2Event("POST", "/api/v1/echo", "", "aGk=", true))
	f.Add(eventBridgeEvent("1", "com.daytrade.execution.tick", "/s", `{"a":1}`))
	f.Add([]byte(`{"requestContext":{"http":{}},"rawPath":"%zz"}`))
	f.Add([]byte(`{"detail-type":"t","id":"1","source":"s","detail":"x"}`))
	f.Add([]byte(`null`))
	h := wrapped(echo())
	lh := runtime.NewLambdaHandler(h, runtime.LambdaOptions{EventPaths: map[string]string{"t": "/%zz"}})
	f.Fuzz(func(t *testing.T, payload []byte) {
		out, err := lh.Invoke(context.Background(), payload)
		if err != nil {
			return
		}
		var s shapeOut
		if json.Unmarshal(out, &s) != nil {
			t.Fatalf("output %q is not JSON", out)
		}
		if s.StatusCode >= 500 {
			t.Fatalf("input %q answered %d: %s", payload, s.StatusCode, s.Body)
		}
	})
}

type shapeOut struct {
	StatusCode int    `json:"statusCode"`
	Body       string `json:"body"`
}
