// Package openapi builds the OpenAPI 3.1 document of the gateway's public API from its route
// table. Paths, methods, parameters, roles and security come from the routes (so the document
// cannot drift from what the gateway serves); the main bodies' schemas are written by hand in
// components.json, beside this file, and attached to operations by the Bodies table.
package openapi

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
)

//go:embed components.json
var componentsJSON []byte

// Operation is one route of the public API.
type Operation struct {
	Method   string
	Path     string // chi pattern; {name:regexp} parameters are written {name}
	Roles    []string
	Function string // the function behind it ("" for the gateway's own routes)
	// Composite routes merge several functions' answers.
	Composite  bool
	Idempotent bool
	// Public operations need no credential.
	Public bool
}

// Body names the component schemas of one operation's request and success answer.
type Body struct {
	Summary string
	Request string // component schema of the JSON request body ("" = none)
	// RequestOptional marks a request body that may be left out.
	RequestOptional bool
	Status          int    // success status (default 200)
	Response        string // component schema of the success answer (required: see TestEveryOperationHasARealSchema)
	// ContentType of the success answer (default application/json).
	ContentType string
	Query       []Param
}

// Param is a query parameter.
type Param struct {
	Name, Description string
	Enum              []string
	Default           string
}

var (
	periods   = []string{"1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"}
	intervals = []string{"1m", "2m", "5m", "15m", "30m", "60m", "90m", "1h", "1d", "5d", "1wk", "1mo", "3mo"}
)

// Bodies describes every operation's bodies, keyed "METHOD /path".
var Bodies = map[string]Body{
	"GET /api/v1/data/stocks/{symbol}": {Summary: "OHLCV bars of a symbol", Response: "StocksResponse",
		Query: []Param{
			{Name: "period", Description: "how far back", Default: "1mo", Enum: periods},
			{Name: "interval", Description: "bar length", Default: "1d", Enum: intervals},
			{Name: "indicators", Description: "comma-separated indicator names to add to each point (e.g. rsi14,sma20)"},
		}},
	"POST /api/v1/data/batch-fetch": {Summary: "Warm the market-data cache for up to 50 symbols in the background",
		Request: "BatchFetchRequest", Status: http.StatusAccepted, Response: "BatchAccepted"},
	"GET /api/v1/data/cache": {Summary: "Market-data cache statistics", Response: "CacheStats"},
	"DELETE /api/v1/data/cache": {Summary: "Clear market-data cache entries", Response: "CacheCleared",
		Query: []Param{{Name: "pattern", Description: "glob over cached entries", Default: "*"}}},
	"GET /api/v1/events/dead-letters": {Summary: "Events whose delivery retries ran out, most recent first", Response: "DeadLetterList",
		Query: []Param{{Name: "limit", Description: "at most this many (1..500)", Default: "50"}}},
	"POST /api/v1/events/dead-letters/{id}/replay": {Summary: "Send a dead-lettered event back to the Broker, unchanged",
		Status: http.StatusAccepted, Response: "DeadLetterReplayed"},
	"GET /api/v1/execution/jobs/{job_id}":        {Summary: "A job's status, progress and result summary", Response: "Job"},
	"GET /api/v1/execution/jobs/{job_id}/events": {Summary: "A job's changes as Server-Sent Events, until it ends", Response: "JobEvents", ContentType: "text/event-stream"},
	"GET /api/v1/execution/orders": {Summary: "The tenant's paper orders", Response: "OrdersResponse",
		Query: []Param{
			{Name: "status", Description: "only orders in this status", Enum: []string{"open", "filled", "rejected", "expired", "cancelled"}},
			{Name: "limit", Description: "at most this many (1..1000)", Default: "100"},
		}},
	"GET /api/v1/execution/positions":        {Summary: "The paper account: cash, positions and P&L", Response: "PositionsResponse"},
	"POST /api/v1/execution/schedule":        {Summary: "Run a workflow on a schedule", Request: "ScheduleRequest", Status: http.StatusCreated, Response: "ScheduleCreated"},
	"GET /api/v1/execution/schedule":         {Summary: "The tenant's schedules", Response: "ScheduleList"},
	"DELETE /api/v1/execution/schedule/{id}": {Summary: "Cancel a schedule (and its first run, if it has not started)", Response: "Schedule"},
	"POST /api/v1/execution/trade":           {Summary: "Place a paper order", Request: "OrderRequest", Status: http.StatusCreated, Response: "Order"},
	"POST /api/v1/ml/batch-predict": {Summary: "Predict up to 100 symbols in the background",
		Request: "BatchPredictRequest", Status: http.StatusAccepted, Response: "BatchAccepted"},
	"GET /api/v1/ml/models":           {Summary: "Registered model versions, their evaluation and realised accuracy", Response: "ModelsResponse"},
	"POST /api/v1/ml/predict":         {Summary: "Direction forecast for a symbol's next bar", Request: "PredictRequest", Response: "PredictResponse"},
	"POST /api/v1/notifications/send": {Summary: "Send a notification over one or more channels", Request: "NotificationRequest", Status: http.StatusAccepted, Response: "NotificationAccepted"},
	"GET /api/v1/notifications/{id}":  {Summary: "A notification's delivery status per channel", Response: "NotificationStatus"},
	"GET /api/v1/symbols/recommend": {Summary: "Top symbols by selection score that the ensemble predicts up", Response: "RecommendResponse",
		Query: []Param{
			{Name: "count", Description: "how many recommendations at most"},
			{Name: "criteria", Description: "a selection preset", Default: "day_trading"},
			{Name: "lookback", Description: "market-data window of the selection score", Default: "3mo", Enum: []string{"1mo", "3mo", "6mo", "1y"}},
		}},
	"POST /api/v1/symbols/screen":      {Summary: "Filter and sort the universe, a page at a time", Request: "ScreenRequest", Response: "ScreenResponse"},
	"POST /api/v1/symbols/select":      {Summary: "Score the universe and pick the top symbols", Request: "SelectRequest", Response: "SelectResponse"},
	"GET /api/v1/overview/{symbol}":    {Summary: "Market data, prediction and score of a symbol in one call", Response: "Overview"},
	"GET /api/v1/openapi.json":         {Summary: "This document", Response: "OpenAPIDocument"},
	"POST /api/v1/gateway/keys":        {Summary: "Create an API key (the secret is shown once)", Request: "KeyRequest", Status: http.StatusCreated, Response: "KeyCreated"},
	"GET /api/v1/gateway/keys":         {Summary: "List the tenant's API keys", Response: "KeyList"},
	"DELETE /api/v1/gateway/keys/{id}": {Summary: "Revoke an API key", Response: "KeyRecord"},
	"POST /api/v1/gateway/keys/{id}/rotate": {Summary: "Rotate an API key", Request: "RotateRequest", RequestOptional: true,
		Status: http.StatusCreated, Response: "KeyCreated"},
	"GET /api/v1/gateway/sla":                            {Summary: "Per-route availability and latency over the rolling window", Response: "SLA"},
	"GET /api/v1/gateway/upstreams":                      {Summary: "Every upstream with the instances this gateway routes to, their health and balancing policy", Response: "UpstreamList"},
	"GET /api/v1/gateway/upstreams/{upstream}/instances": {Summary: "An upstream's registered instances (from the registry) and their state here", Response: "InstanceList"},
	"POST /api/v1/gateway/upstreams/{upstream}/instances": {Summary: "Register (or renew) an instance of an upstream, with a weight and a TTL; the URL must match the allowed hosts",
		Request: "InstanceRequest", Status: http.StatusCreated, Response: "RegisteredInstance"},
	"DELETE /api/v1/gateway/upstreams/{upstream}/instances/{id}": {Summary: "Deregister an instance", Response: "Deregistered"},
}

// Info heads the document.
type Info struct {
	Title, Version, Description string
	ServerURL                   string // "" = "/"
}

// Document is the OpenAPI 3.1 document for ops, as JSON.
func Document(info Info, ops []Operation) ([]byte, error) {
	var comps map[string]any
	if err := json.Unmarshal(componentsJSON, &comps); err != nil {
		return nil, fmt.Errorf("openapi: components.json: %w", err)
	}
	paths := map[string]map[string]any{}
	sorted := slices.Clone(ops)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Path != sorted[j].Path {
			return sorted[i].Path < sorted[j].Path
		}
		return sorted[i].Method < sorted[j].Method
	})
	for _, op := range sorted {
		path, params := openAPIPath(op.Path)
		item := paths[path]
		if item == nil {
			item = map[string]any{}
			paths[path] = item
		}
		item[strings.ToLower(op.Method)] = operation(op, path, params)
	}
	server := info.ServerURL
	if server == "" {
		server = "/"
	}
	doc := map[string]any{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info":              map[string]any{"title": info.Title, "version": info.Version, "description": info.Description},
		"servers":           []any{map[string]any{"url": server}},
		"security":          []any{map[string]any{"apiKey": []string{}}, map[string]any{"bearer": []string{}}},
		"paths":             paths,
		"components":        comps,
	}
	return json.Marshal(doc)
}

func operation(op Operation, path string, params []string) map[string]any {
	key := op.Method + " " + path
	b := Bodies[key]
	o := map[string]any{"operationId": operationID(op.Method, path)}
	if b.Summary != "" {
		o["summary"] = b.Summary
	}
	desc := ""
	switch {
	case op.Composite:
		desc = "Aggregated by the gateway from several functions, called in parallel."
	case op.Function != "":
		desc = "Served by the function " + op.Function + "."
	default:
		desc = "Served by the gateway."
	}
	if len(op.Roles) > 0 {
		desc += " Roles: " + strings.Join(op.Roles, ", ") + "."
		o["x-roles"] = op.Roles
	}
	if op.Idempotent {
		desc += " Idempotent: the gateway may retry it."
	}
	o["description"] = desc
	if tag := tagOf(path); tag != "" {
		o["tags"] = []string{tag}
	}
	var ps []any
	for _, p := range params {
		ps = append(ps, map[string]any{"name": p, "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
	}
	for _, q := range b.Query {
		s := map[string]any{"type": "string"}
		if len(q.Enum) > 0 {
			s["enum"] = q.Enum
		}
		if q.Default != "" {
			s["default"] = q.Default
		}
		ps = append(ps, map[string]any{"name": q.Name, "in": "query", "description": q.Description, "schema": s})
	}
	if op.Method == http.MethodPost && op.Function == "execution-trade" {
		ps = append(ps, map[string]any{"name": "Idempotency-Key", "in": "header", "required": true,
			"description": "Makes a retried order safe: the same key never places a second order.", "schema": map[string]any{"type": "string", "maxLength": 200}})
	}
	if len(ps) > 0 {
		o["parameters"] = ps
	}
	if b.Request != "" {
		o["requestBody"] = map[string]any{"required": !b.RequestOptional, "content": map[string]any{
			"application/json": map[string]any{"schema": ref(b.Request)}}}
	} else if op.Method == http.MethodPost || op.Method == http.MethodPut || op.Method == http.MethodPatch {
		o["requestBody"] = map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": ref("Object")}}}
	}
	status := b.Status
	if status == 0 {
		status = http.StatusOK
	}
	respSchema := ref(orDefault(b.Response, "Object"))
	responses := map[string]any{
		fmt.Sprint(status): map[string]any{"description": http.StatusText(status), "content": map[string]any{orDefault(b.ContentType, "application/json"): map[string]any{"schema": respSchema}}},
		"default":          problem("An error, as RFC 9457 problem details (400, 404, 405, 413, 415, 422, 502, 503, 504, ...)."),
	}
	if op.Public {
		o["security"] = []any{}
	} else {
		responses["401"] = problem("Missing or invalid credentials (with WWW-Authenticate).")
		responses["403"] = problem("The caller lacks the route's roles.")
		responses["429"] = problem("Rate limit or quota exceeded (with Retry-After and RateLimit headers).")
	}
	o["responses"] = responses
	return o
}

func problem(desc string) map[string]any {
	return map[string]any{"description": desc, "content": map[string]any{"application/problem+json": map[string]any{"schema": ref("Problem")}}}
}

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// openAPIPath turns a chi pattern into an OpenAPI path and its parameter names.
func openAPIPath(pattern string) (string, []string) {
	segs := strings.Split(pattern, "/")
	var params []string
	for i, s := range segs {
		if strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") {
			name := strings.SplitN(s[1:len(s)-1], ":", 2)[0]
			params = append(params, name)
			segs[i] = "{" + name + "}"
		}
	}
	return strings.Join(segs, "/"), params
}

// operationID is a stable id from method and path: "get_data_stocks_symbol".
func operationID(method, path string) string {
	var b strings.Builder
	b.WriteString(strings.ToLower(method))
	for _, s := range strings.Split(strings.TrimPrefix(path, "/api/v1"), "/") {
		s = strings.Trim(s, "{}")
		if s == "" {
			continue
		}
		b.WriteByte('_')
		for _, r := range s {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

func tagOf(path string) string {
	rest := strings.TrimPrefix(path, "/api/v1/")
	if rest == path {
		return ""
	}
	return strings.SplitN(rest, "/", 2)[0]
}
