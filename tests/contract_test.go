package tests

import (
	"bytes"
	"context"
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

// TestContract checks the real functions' answers, through the real gateway, against the
// OpenAPI document that gateway serves: successes, the overview and problem answers.
func TestContract(t *testing.T) {
	e := startPlatform(t, time.Minute)
	c := loadContract(t, e)

	cases := []struct {
		name, method, path, body string
		key                      string
		hdr                      map[string]string
		want                     []int
	}{
		{name: "stocks", method: "GET", path: "/api/v1/data/stocks/7203.T?period=1mo&interval=1d", key: e.key, want: []int{200}},
		{name: "stocks with indicators", method: "GET", path: "/api/v1/data/stocks/6758.T?period=3mo&interval=1d&indicators=rsi14,sma20", key: e.key, want: []int{200}},
		{name: "stocks bad period", method: "GET", path: "/api/v1/data/stocks/7203.T?period=forever", key: e.key, want: []int{400}},
		{name: "stocks without a key", method: "GET", path: "/api/v1/data/stocks/7203.T", want: []int{401}},
		{name: "predict bad body", method: "POST", path: "/api/v1/ml/predict", body: `{"symbol":""}`, key: e.key, want: []int{400}},
		{name: "select", method: "POST", path: "/api/v1/symbols/select", body: `{"count":5}`, key: e.key, want: []int{200}},
		{name: "trade", method: "POST", path: "/api/v1/execution/trade", body: `{"symbol":"7203.T","side":"buy","type":"market","quantity":100}`,
			key: e.key, hdr: map[string]string{"Idempotency-Key": "contract-1"}, want: []int{201, 409, 422}},
		{name: "trade bad body", method: "POST", path: "/api/v1/execution/trade", body: `{"symbol":"7203.T","side":"hold"}`,
			key: e.key, hdr: map[string]string{"Idempotency-Key": "contract-2"}, want: []int{400}},
		{name: "overview bad symbol", method: "GET", path: "/api/v1/overview/%3Cx%3E", key: e.key, want: []int{400}},
		{name: "sla", method: "GET", path: "/api/v1/gateway/sla", key: e.key, want: []int{200}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := c.exchange(t, e, tc.method, tc.path, tc.key, tc.body, tc.hdr)
			if !slices.Contains(tc.want, status) {
				t.Fatalf("status %d, want %v: %s", status, tc.want, body)
			}
		})
	}

	// The ensemble may still be loading: every answer, 503 or 200, must match the document,
	// and the overview is checked once a prediction is possible (complete) and before (partial).
	t.Run("predict and overview", func(t *testing.T) {
		deadline := time.Now().Add(90 * time.Second)
		for {
			ostatus, obody := c.exchange(t, e, "GET", "/api/v1/overview/7203.T", e.key, "", nil)
			if ostatus != 200 {
				t.Fatalf("overview: %d %s", ostatus, obody)
			}
			status, body := c.exchange(t, e, "POST", "/api/v1/ml/predict", e.key, `{"symbol":"7203.T"}`, nil)
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
}
