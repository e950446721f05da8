package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
)

// Composite makes a route an aggregation: its parts are called in parallel, each through its
// function's upstream (identity token, bulkhead, breaker, retries for idempotent parts), and
// merged into one JSON object. A failed part does not fail the answer: it is null, its status
// says why, and "complete" is false. Only when every part fails is the answer an error.
type Composite struct {
	Parts []Part
	// PartTimeout bounds each part (default 5s; never above Config.UpstreamTimeout).
	PartTimeout time.Duration
	// Params validates and normalises the route's URL parameters before any call; an error
	// is the caller's (400). Nil accepts them as they are.
	Params func(get func(string) string) (map[string]string, error)
}

// Part is one upstream call of a composite route.
type Part struct {
	Name     string // its key in the merged answer
	Function string // the catalog function it calls
	// Idempotent parts may be retried (under the upstream's budget and the part's timeout).
	Idempotent bool
	// Request builds the call from the route's (validated) parameters.
	Request func(params map[string]string) PartRequest
	// Extract turns a 2xx body into the part's value (default: the body as it is). An error
	// makes the part fail with status "bad_answer".
	Extract func(params map[string]string, body []byte) (json.RawMessage, error)
}

// PartRequest is the call a Part makes. Body, when not nil, is sent as JSON.
type PartRequest struct {
	Method string
	Path   string // already escaped
	Query  url.Values
	Body   any
}

// Part statuses in an aggregated answer.
const (
	PartOK          = "ok"
	PartTimeout     = "timeout"     // the part's deadline passed
	PartUnavailable = "unavailable" // breaker open, bulkhead full, or the function unreachable
	PartRejected    = "rejected"    // the function answered 4xx (the caller's input)
	PartFailed      = "error"       // the function answered 5xx or an unreadable answer
	PartBadAnswer   = "bad_answer"  // a 2xx the gateway could not use
)

// PartStatus reports how one part went.
type PartStatus struct {
	Status     string `json:"status"`
	HTTPStatus int    `json:"http_status,omitempty"` // the function's answer, when there was one
	Error      string `json:"error,omitempty"`
	Ms         int64  `json:"ms"`
}

// Aggregate is the answer of a composite route: the route's parameters, one key per part
// (null when the part failed), the completeness flag and each part's status.
type Aggregate struct {
	Params   map[string]string          `json:"-"`
	Values   map[string]json.RawMessage `json:"-"`
	Complete bool                       `json:"complete"`
	Parts    map[string]PartStatus      `json:"parts"`
}

// MarshalJSON flattens the parameters and the values next to complete and parts, so the
// overview reads {"symbol": ..., "data": ..., "prediction": ..., "complete": ..., "parts": ...}.
func (a Aggregate) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(a.Params)+len(a.Values)+2)
	for k, v := range a.Params {
		m[k] = v
	}
	for k, v := range a.Values {
		if v == nil {
			m[k] = nil
			continue
		}
		m[k] = v
	}
	m["complete"] = a.Complete
	m["parts"] = a.Parts
	return json.Marshal(m)
}

// maxPartBody bounds what the gateway reads from one part's answer.
const maxPartBody = 4 << 20

// aggregator serves one composite route.
type aggregator struct {
	g       *Gateway
	c       Composite
	ups     []*upstream // ups[i] serves c.Parts[i]
	timeout time.Duration
	params  []string // the route's URL parameter names
}

func (g *Gateway) newAggregator(rt Route) (*aggregator, error) {
	c := *rt.Composite
	if len(c.Parts) == 0 {
		return nil, errors.New("gateway: composite route " + rt.Method + " " + rt.Path + " has no parts")
	}
	a := &aggregator{g: g, c: c, timeout: c.PartTimeout}
	if a.timeout <= 0 {
		a.timeout = 5 * time.Second
	}
	a.timeout = min(a.timeout, g.cfg.UpstreamTimeout)
	if rt.Timeout > 0 {
		a.timeout = min(a.timeout, rt.Timeout)
	}
	seen := map[string]bool{}
	for _, p := range c.Parts {
		if p.Name == "" || p.Function == "" || p.Request == nil || seen[p.Name] {
			return nil, errors.New("gateway: composite route " + rt.Path + ": every part needs a unique name, a function and a request")
		}
		seen[p.Name] = true
		a.ups = append(a.ups, g.upstreamFor(p.Function))
	}
	a.params = pathParams(rt.Path)
	return a, nil
}

func (a *aggregator) serve(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	get := func(name string) string { return chi.URLParam(r, name) }
	var params map[string]string
	if a.c.Params != nil {
		var err error
		if params, err = a.c.Params(get); err != nil {
			httpx.WriteError(w, r, nil, err)
			return
		}
	} else {
		params = make(map[string]string, len(a.params))
		for _, n := range a.params {
			params[n] = get(n)
		}
	}
	out := Aggregate{Params: params, Values: make(map[string]json.RawMessage, len(a.c.Parts)), Parts: make(map[string]PartStatus, len(a.c.Parts)), Complete: true}
	results := make([]partResult, len(a.c.Parts))
	var wg sync.WaitGroup
	for i := range a.c.Parts {
		wg.Go(func() { results[i] = a.call(r, p, i, params) })
	}
	wg.Wait()
	ok := 0
	for i, part := range a.c.Parts {
		res := results[i]
		out.Parts[part.Name] = res.status
		out.Values[part.Name] = res.value
		if res.status.Status == PartOK {
			ok++
		} else {
			out.Complete = false
		}
	}
	if ok == 0 {
		httpx.WriteError(w, r, a.g.log, allFailed(results))
		return
	}
	if !out.Complete {
		// An incomplete answer must not be stored by shared caches as if it were whole.
		w.Header().Set("Cache-Control", "no-store")
	}
	_ = httpx.Encode(w, http.StatusOK, out)
}

type partResult struct {
	status PartStatus
	value  json.RawMessage
	err    error // the classified failure, for allFailed
}

// call makes one part's request through the part's upstream, as a proxied route would.
func (a *aggregator) call(in *http.Request, p *auth.Principal, i int, params map[string]string) (res partResult) {
	part, u := a.c.Parts[i], a.ups[i]
	start := time.Now()
	defer func() { res.status.Ms = time.Since(start).Milliseconds() }()
	fail := func(status string, httpStatus int, err error) partResult {
		msg := err.Error()
		var he *httpx.Error
		if errors.As(err, &he) && he.Message != "" {
			msg = he.Message
		}
		return partResult{status: PartStatus{Status: status, HTTPStatus: httpStatus, Error: msg}, err: err}
	}
	if !u.bulkhead.TryAcquire() {
		return fail(PartUnavailable, 0, &httpx.Error{Code: httpx.CodeUnavailable, RetryAfter: time.Second, Message: "upstream " + u.name + " is at its concurrency limit"})
	}
	defer u.bulkhead.Release()
	tok, err := a.g.deps.Signer.Mint(p, u.name)
	if err != nil {
		return fail(PartFailed, 0, err)
	}
	pr := part.Request(params)
	var body io.Reader
	var raw []byte
	if pr.Body != nil {
		if raw, err = json.Marshal(pr.Body); err != nil {
			return fail(PartFailed, 0, err)
		}
		body = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(in.Context(), a.timeout)
	defer cancel()
	// The upstream's RoundTrip reads the retry policy from the request state, as for a proxied call.
	ctx = context.WithValue(ctx, stateKey{}, &reqState{route: &route{Route: Route{Idempotent: part.Idempotent}}, token: tok})
	target := url.URL{Scheme: "http", Host: u.host, Path: pr.Path, RawQuery: pr.Query.Encode()}
	req, err := http.NewRequestWithContext(ctx, orDefault(pr.Method, http.MethodGet), target.String(), body)
	if err != nil {
		return fail(PartFailed, 0, err)
	}
	req.Header.Set("Accept", "application/json")
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set(auth.InternalTokenHeader, tok)
	if id := httpx.RequestIDFromContext(in.Context()); id != "" {
		req.Header.Set(httpx.RequestIDHeader, id)
	}
	resp, err := u.RoundTrip(req)
	if err != nil {
		err = u.upstreamError(err)
		if ctx.Err() != nil && in.Context().Err() == nil {
			// The part's own deadline, not the caller leaving.
			return fail(PartTimeout, 0, httpx.Wrap(ctx.Err(), httpx.CodeTimeout, "part "+part.Name+" timed out after "+a.timeout.String()))
		}
		var he *httpx.Error
		if errors.As(err, &he) && he.Code == httpx.CodeUnavailable {
			return fail(PartUnavailable, 0, err)
		}
		return fail(PartFailed, 0, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxPartBody+1))
	switch {
	case err != nil && ctx.Err() != nil && in.Context().Err() == nil:
		return fail(PartTimeout, resp.StatusCode, httpx.Wrap(ctx.Err(), httpx.CodeTimeout, "part "+part.Name+" timed out after "+a.timeout.String()))
	case err != nil:
		return fail(PartFailed, resp.StatusCode, httpx.Wrap(err, httpx.CodeUpstream, "reading part "+part.Name))
	case len(b) > maxPartBody:
		return fail(PartBadAnswer, resp.StatusCode, httpx.Errorf(httpx.CodeUpstream, "part %s answered more than %d bytes", part.Name, maxPartBody))
	}
	if resp.StatusCode >= 300 {
		msg := problemDetail(b, resp.Status)
		switch {
		case resp.StatusCode >= 500:
			return fail(PartFailed, resp.StatusCode, &httpx.Error{Code: httpx.CodeUpstream, Message: part.Name + ": " + msg})
		default:
			return fail(PartRejected, resp.StatusCode, &httpx.Error{Code: codeForStatus(resp.StatusCode), Message: part.Name + ": " + msg})
		}
	}
	val := json.RawMessage(b)
	if part.Extract != nil {
		if val, err = part.Extract(params, b); err != nil {
			return fail(PartBadAnswer, resp.StatusCode, httpx.Wrap(err, httpx.CodeUpstream, "part "+part.Name+": "+err.Error()))
		}
	} else if !json.Valid(b) {
		return fail(PartBadAnswer, resp.StatusCode, httpx.Errorf(httpx.CodeUpstream, "part %s did not answer JSON", part.Name))
	}
	return partResult{status: PartStatus{Status: PartOK, HTTPStatus: resp.StatusCode}, value: val}
}

// allFailed is the error when no part succeeded: the caller's mistake (4xx) when a function
// rejected the input, else 503 when every part was unavailable (with the shortest
// Retry-After), 504 when every part timed out, 502 otherwise.
func allFailed(rs []partResult) error {
	count := map[string]int{}
	var retry time.Duration
	for _, r := range rs {
		count[r.status.Status]++
		var he *httpx.Error
		if errors.As(r.err, &he) && he.RetryAfter > 0 && (retry == 0 || he.RetryAfter < retry) {
			retry = he.RetryAfter
		}
	}
	for _, r := range rs {
		if r.status.Status == PartRejected {
			return r.err
		}
	}
	switch len(rs) {
	case count[PartUnavailable]:
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "every part of this answer is unavailable", RetryAfter: max(retry, time.Second)}
	case count[PartTimeout]:
		return httpx.Errorf(httpx.CodeTimeout, "every part of this answer timed out")
	}
	return &httpx.Error{Code: httpx.CodeUpstream, Message: "every part of this answer failed", RetryAfter: retry}
}

func codeForStatus(status int) httpx.Code {
	switch status {
	case http.StatusNotFound:
		return httpx.CodeNotFound
	case http.StatusUnprocessableEntity:
		return httpx.CodeUnprocessable
	case http.StatusConflict:
		return httpx.CodeConflict
	case http.StatusTooManyRequests:
		return httpx.CodeRateLimited
	case http.StatusUnauthorized, http.StatusForbidden:
		// The function refused the gateway's identity: the gateway's fault, not the caller's.
		return httpx.CodeUpstream
	}
	return httpx.CodeInvalid
}

// problemDetail reads a problem+json answer's detail (or title) for a part's error.
func problemDetail(b []byte, fallback string) string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
	}
	if json.Unmarshal(b, &p) == nil {
		if p.Detail != "" {
			return p.Detail
		}
		if p.Title != "" {
			return p.Title
		}
	}
	return fallback
}

func orDefault(s, fallback string) string {
	if s == "" {
		return fallback
	}
	return s
}

// PathOverview is the composite overview of one symbol.
const PathOverview = "/api/v1/overview/{symbol}"

// Overview parts' functions (each part is left out when its function is not in the catalog).
const (
	overviewData       = "data-stocks"
	overviewPrediction = "ml-predict"
	overviewScore      = "symbols-select"
)

// CompositeRoutes are the gateway's aggregation routes over the functions of fs. A part
// whose function is not in fs is left out; a route with no parts left is not served.
//
// GET /api/v1/overview/{symbol} merges:
//   - data: data-stocks GET /api/v1/data/stocks/{symbol}?period=1mo&interval=1d
//   - prediction: ml-predict POST /api/v1/ml/predict {"symbol": ...}
//   - score: symbols-select POST /api/v1/symbols/select over the whole universe with the
//     default criteria, reduced to this symbol's score and rank ({"ranked": false} when the
//     symbol is not in the universe or not in the top 100). A score is a percentile among the
//     scored candidates, so it is asked of the universe, not of the symbol alone.
func CompositeRoutes(fs []functions.Function) []Route {
	has := func(name string) bool {
		return slices.ContainsFunc(fs, func(f functions.Function) bool { return f.Name == name })
	}
	var parts []Part
	if has(overviewData) {
		parts = append(parts, Part{Name: "data", Function: overviewData, Idempotent: true,
			Request: func(p map[string]string) PartRequest {
				return PartRequest{Method: http.MethodGet, Path: "/api/v1/data/stocks/" + url.PathEscape(p["symbol"]),
					Query: url.Values{"period": {"1mo"}, "interval": {"1d"}}}
			}})
	}
	if has(overviewPrediction) {
		parts = append(parts, Part{Name: "prediction", Function: overviewPrediction, Idempotent: true,
			Request: func(p map[string]string) PartRequest {
				return PartRequest{Method: http.MethodPost, Path: "/api/v1/ml/predict", Body: map[string]string{"symbol": p["symbol"]}}
			}})
	}
	if has(overviewScore) {
		parts = append(parts, Part{Name: "score", Function: overviewScore, Idempotent: true,
			Request: func(map[string]string) PartRequest {
				return PartRequest{Method: http.MethodPost, Path: "/api/v1/symbols/select", Body: map[string]int{"count": 100}}
			},
			Extract: extractScore})
	}
	if len(parts) == 0 {
		return nil
	}
	return []Route{{
		Method: http.MethodGet, Path: PathOverview, Roles: []string{functions.RoleViewer, functions.RoleTrader, functions.RoleAdmin},
		Idempotent: true, Composite: &Composite{Parts: parts, PartTimeout: 5 * time.Second, Params: symbolParam},
	}}
}

func symbolParam(get func(string) string) (map[string]string, error) {
	s, err := market.ParseSymbol(get("symbol"))
	if err != nil {
		return nil, httpx.Invalid("invalid symbol", httpx.FieldError{Field: "symbol", Reason: err.Error()})
	}
	return map[string]string{"symbol": s}, nil
}

// ScoreSummary is the overview's score part.
type ScoreSummary struct {
	Ranked   bool            `json:"ranked"`
	Rank     int             `json:"rank,omitempty"` // 1 = best
	Of       int             `json:"of,omitempty"`   // symbols scored
	Criteria string          `json:"criteria,omitempty"`
	Score    json.RawMessage `json:"score,omitempty"` // symbols-select's score: total and components
}

func extractScore(p map[string]string, body []byte) (json.RawMessage, error) {
	var sel struct {
		Scores   []json.RawMessage `json:"scores"` // best first
		Metadata struct {
			Criteria string `json:"criteria"`
			Scored   int    `json:"scored"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &sel); err != nil {
		return nil, errors.New("symbols-select answer is not a selection")
	}
	out := ScoreSummary{Of: sel.Metadata.Scored, Criteria: sel.Metadata.Criteria}
	for i, raw := range sel.Scores {
		var s struct {
			Symbol string `json:"symbol"`
		}
		if json.Unmarshal(raw, &s) == nil && strings.EqualFold(s.Symbol, p["symbol"]) {
			out.Ranked, out.Rank, out.Score = true, i+1, raw
			break
		}
	}
	return json.Marshal(out)
}
