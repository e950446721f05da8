package gateway_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/gateway"
	"github.com/day-trade/platform/shared/auth"
)

func catalogRoutes() []gateway.Route {
	cat := functions.Catalog()
	return append(gateway.RoutesFromCatalog(cat), gateway.CompositeRoutes(cat)...)
}

// loadOpenAPI parses and validates an OpenAPI document with kin-openapi.
func loadOpenAPI(t testing.TB, b []byte) *openapi3.T {
	t.Helper()
	l := openapi3.NewLoader()
	doc, err := l.LoadFromData(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("invalid OpenAPI document: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValidAndCoversEveryRoute(t *testing.T) {
	t.Parallel()
	routes := catalogRoutes()
	b, err := gateway.OpenAPIDocument(routes)
	if err != nil {
		t.Fatal(err)
	}
	doc := loadOpenAPI(t, b)
	if !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1", doc.OpenAPI)
	}
	for _, op := range gateway.OpenAPIOperations(routes) {
		path := op.Path
		item := doc.Paths.Find(path)
		if item == nil || item.GetOperation(op.Method) == nil {
			t.Errorf("%s %s is served but not documented", op.Method, path)
			continue
		}
		o := item.GetOperation(op.Method)
		if op.Public != (o.Security != nil && len(*o.Security) == 0) {
			t.Errorf("%s %s: public %v but security %v", op.Method, path, op.Public, o.Security)
		}
		if o.Responses.Default() == nil {
			t.Errorf("%s %s: no problem+json default answer", op.Method, path)
		}
	}
	// Hand-written bodies are attached where they belong.
	for path, want := range map[string]string{
		"/api/v1/data/stocks/{symbol}": "StocksResponse",
		"/api/v1/overview/{symbol}":    "Overview",
	} {
		r := doc.Paths.Find(path).Get.Responses.Status(200)
		if r == nil || r.Value.Content.Get("application/json").Schema.Ref != "#/components/schemas/"+want {
			t.Errorf("GET %s does not answer %s", path, want)
		}
	}
	if rb := doc.Paths.Find("/api/v1/ml/predict").Post.RequestBody; rb == nil || rb.Value.Content.Get("application/json").Schema.Ref != "#/components/schemas/PredictRequest" {
		t.Error("POST /api/v1/ml/predict has no PredictRequest body")
	}
	if doc.Paths.Find("/api/v1/execution/trade").Post.Responses.Status(201) == nil {
		t.Error("POST /api/v1/execution/trade does not document its 201")
	}
}

// Every operation's success answer has a real schema, not the free-form Object, and the fixed
// Go structs are closed (additionalProperties: false), so a renamed field breaks the contract.
func TestEveryOperationHasARealSchema(t *testing.T) {
	t.Parallel()
	routes := catalogRoutes()
	b, err := gateway.OpenAPIDocument(routes)
	if err != nil {
		t.Fatal(err)
	}
	doc := loadOpenAPI(t, b)
	for _, op := range gateway.OpenAPIOperations(routes) {
		o := doc.Paths.Find(op.Path).GetOperation(op.Method)
		var got []string
		for code, r := range o.Responses.Map() {
			if code == "default" || code[0] != '2' {
				continue
			}
			for _, mt := range r.Value.Content {
				got = append(got, mt.Schema.Ref)
			}
		}
		if len(got) != 1 || got[0] == "" || strings.HasSuffix(got[0], "/Object") {
			t.Errorf("%s %s: success schema %v, want one named, real schema", op.Method, op.Path, got)
		}
	}
	c := newContract(t, b)
	req, _ := http.NewRequest("GET", "http://gateway/api/v1/execution/jobs/j1", nil)
	hdr := http.Header{"Content-Type": {"application/json"}}
	job := `{"id":"j1","kind":"ml.batch","tenant":"t","status":"queued","done":0,"total":3,"created_at":"2025-01-07T00:00:00Z","version":1}`
	if err := c.check(req, 200, hdr, []byte(job)); err != nil {
		t.Fatalf("a job breaks the contract: %v", err)
	}
	for name, bad := range map[string]string{
		"renamed field": strings.Replace(job, `"done"`, `"completed"`, 1),
		"missing field": strings.Replace(job, `"version":1`, `"versions":1`, 1),
		"wrong type":    strings.Replace(job, `"total":3`, `"total":"3"`, 1),
		"unknown enum":  strings.Replace(job, `"queued"`, `"waiting"`, 1),
	} {
		if err := c.check(req, 200, hdr, []byte(bad)); err == nil {
			t.Errorf("a job with a %s passed: %s", name, bad)
		}
	}
}

func TestOpenAPIServedWithoutCredentials(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) { t.Errorf("upstream called: %s", r.URL) })
	h := newHarness(t, dial, gateway.Config{}, catalogRoutes())
	resp := h.do(t, "GET", gateway.PathOpenAPI, "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	b, _ := io.ReadAll(resp.Body)
	loadOpenAPI(t, b)
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("the outer chain (security headers) did not run")
	}
	etag := resp.Header.Get("ETag")
	if again := h.do(t, "GET", gateway.PathOpenAPI, "", "If-None-Match", etag); etag == "" || again.StatusCode != 304 {
		t.Fatalf("revalidation: ETag %q status %d", etag, again.StatusCode)
	}
	if resp := h.do(t, "POST", gateway.PathOpenAPI, ""); resp.StatusCode != 405 {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}

func TestOpenAPIRouteCannotBeTaken(t *testing.T) {
	t.Parallel()
	priv, _ := auth.GenerateInternalKey()
	pk, _ := auth.ParsePrivateKey(priv)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled by New
	defer rdb.Close()
	deps := gateway.Deps{Redis: rdb, Signer: auth.NewSigner(pk), Transport: http.DefaultTransport}
	taken := []gateway.Route{{Method: "GET", Path: gateway.PathOpenAPI, Function: "data-stocks", Roles: []string{"viewer"}}}
	if _, err := gateway.New(gateway.Config{}, taken, deps); err == nil || !strings.Contains(err.Error(), "openapi.json") {
		t.Fatalf("a route over the document: %v", err)
	}
	if _, err := gateway.New(gateway.Config{}, catalogRoutes(), deps); err != nil {
		t.Fatalf("the catalog's routes: %v", err)
	}
}

// contract checks answers against an OpenAPI document, as kin-openapi's response validator.
type contract struct {
	doc    *openapi3.T
	router routers.Router
}

func newContract(t testing.TB, b []byte) contract {
	t.Helper()
	doc := loadOpenAPI(t, b)
	doc.Servers = nil // match paths wherever the gateway runs
	r, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return contract{doc: doc, router: r}
}

// check validates one answer (status, headers, body) to req against the document.
func (c contract) check(req *http.Request, status int, hdr http.Header, body []byte) error {
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		return err
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	return openapi3filter.ValidateResponse(req.Context(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: hdr, Body: io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	})
}

func TestOverviewAnswersMatchTheContract(t *testing.T) {
	t.Parallel()
	b, err := gateway.OpenAPIDocument(catalogRoutes())
	if err != nil {
		t.Fatal(err)
	}
	c := newContract(t, b)
	f := newFakes()
	f.data = okJSON(`{"symbol":"7203.T","period":"1mo","interval":"1d","data_points":[{"timestamp":"2025-01-06T00:00:00Z","open":1,"high":2,"low":0.5,"close":1.5,"volume":100,"adjusted_close":1.5}],"total_points":1,"cache_hit":false,"fetched_at":"2025-01-07T00:00:00Z"}`)
	f.pred = okJSON(`{"symbol":"7203.T","prediction":"up","probability":0.55,"confidence":0.1,"model_version":"v1","features_used":{"rsi14":40},"cache_hit":false,"predicted_at":"2025-01-07T00:00:00Z"}`)
	dial := upstream(t, f.ServeHTTP)
	h := newHarness(t, dial, gateway.Config{RetryAttempts: 1}, overviewRoutes(t, 2*time.Second))

	get := func(path string) (*http.Request, *http.Response, []byte) {
		resp := h.do(t, "GET", path, h.key)
		body, _ := io.ReadAll(resp.Body)
		req, _ := http.NewRequest("GET", "http://gateway"+path, nil)
		return req, resp, body
	}
	req, resp, body := get("/api/v1/overview/7203.T")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"complete":true`) {
		t.Fatalf("complete overview: %d %s", resp.StatusCode, body)
	}
	if err := c.check(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("complete overview breaks the contract: %v", err)
	}
	f.pred = func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }
	req, resp, body = get("/api/v1/overview/7203.T")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"complete":false`) {
		t.Fatalf("partial overview: %d %s", resp.StatusCode, body)
	}
	if err := c.check(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("partial overview breaks the contract: %v", err)
	}
	req, resp, body = get("/api/v1/overview/%3Cx%3E")
	if resp.StatusCode != 400 {
		t.Fatalf("bad symbol: %d", resp.StatusCode)
	}
	if err := c.check(req, resp.StatusCode, resp.Header, body); err != nil {
		t.Errorf("problem breaks the contract: %v", err)
	}
	// The validator is not a rubber stamp: a forecast the schema does not allow fails it.
	bad := strings.Replace(`{"symbol":"7203.T","complete":true,"parts":{},"prediction":{"symbol":"7203.T","prediction":"sideways","probability":0.5,"confidence":0,"model_version":"v1","features_used":{},"cache_hit":false,"predicted_at":"2025-01-07T00:00:00Z"}}`, "\n", "", -1)
	if err := c.check(req, 200, http.Header{"Content-Type": {"application/json"}}, []byte(bad)); err == nil {
		t.Error("an answer outside the schema passed")
	}
}
