package canary

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/template"
	"time"
)

// Metrics answers an instant PromQL query with one number. ok is false when the query
// matched nothing (or gave NaN): no requests in the window.
type Metrics interface {
	Query(ctx context.Context, query string) (value float64, ok bool, err error)
}

// Prometheus queries a Prometheus-compatible HTTP API (/api/v1/query).
type Prometheus struct {
	URL    string       // e.g. http://prometheus.monitoring.svc:9090
	Client *http.Client // nil: a client with a 10s timeout
	Header http.Header  // sent with each query, e.g. Authorization for a managed Prometheus
}

var _ Metrics = Prometheus{}

// apiResponse is the envelope of every Prometheus HTTP API answer.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

// Query runs query at the server's current time.
func (p Prometheus) Query(ctx context.Context, query string) (float64, bool, error) {
	hc := p.Client
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	u, err := url.Parse(strings.TrimSuffix(p.URL, "/") + "/api/v1/query")
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return 0, false, fmt.Errorf("prometheus: bad URL %q", p.URL)
	}
	form := url.Values{"query": {query}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(form.Encode()))
	if err != nil {
		return 0, false, fmt.Errorf("prometheus: %w", err)
	}
	for k, vs := range p.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return 0, false, fmt.Errorf("prometheus at %s unreachable: %w", p.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, false, fmt.Errorf("prometheus: reading answer: %w", err)
	}
	var env apiResponse
	if err := json.Unmarshal(body, &env); err != nil {
		return 0, false, fmt.Errorf("prometheus answered %s with a body that is not its API's JSON: %.200s", resp.Status, bytes.TrimSpace(body))
	}
	if env.Status != "success" {
		return 0, false, fmt.Errorf("prometheus refused the query (%s, %s): %s", resp.Status, env.ErrorType, env.Error)
	}
	var d queryData
	if err := json.Unmarshal(env.Data, &d); err != nil {
		return 0, false, fmt.Errorf("prometheus: data: %w", err)
	}
	return sampleValue(d)
}

// sampleValue reads the one number of a scalar or a one-series vector.
func sampleValue(d queryData) (float64, bool, error) {
	var pair []json.RawMessage
	switch d.ResultType {
	case "scalar":
		if err := json.Unmarshal(d.Result, &pair); err != nil {
			return 0, false, fmt.Errorf("prometheus: scalar: %w", err)
		}
	case "vector":
		var vec []struct {
			Value []json.RawMessage `json:"value"`
		}
		if err := json.Unmarshal(d.Result, &vec); err != nil {
			return 0, false, fmt.Errorf("prometheus: vector: %w", err)
		}
		switch len(vec) {
		case 0:
			return 0, false, nil
		case 1:
			pair = vec[0].Value
		default:
			return 0, false, fmt.Errorf("prometheus: the query returned %d series; aggregate it to one (sum, max)", len(vec))
		}
	default:
		return 0, false, fmt.Errorf("prometheus: result type %q; want a scalar or an instant vector", d.ResultType)
	}
	if len(pair) != 2 {
		return 0, false, errors.New("prometheus: sample is not [time, value]")
	}
	var s string
	if err := json.Unmarshal(pair[1], &s); err != nil {
		return 0, false, fmt.Errorf("prometheus: sample value: %w", err)
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false, fmt.Errorf("prometheus: sample value %q: %w", s, err)
	}
	if math.IsNaN(v) {
		return 0, false, nil // 0/0 and histogram_quantile over no requests
	}
	return v, true, nil
}

// Default queries over the queue-proxy metrics every Knative revision exports
// (revision_request_count, revision_request_latencies in milliseconds), labelled with
// namespace_name, revision_name and response_code_class.
const (
	// DefaultErrorRateQuery is the share of the revision's requests answered 5xx. The
	// "or vector(0)" keeps a revision with traffic and no 5xx at 0 instead of no data.
	DefaultErrorRateQuery = `(sum(rate(revision_request_count{namespace_name="{{.Namespace}}",revision_name="{{.Revision}}",response_code_class="5xx"}[{{.Window}}])) or vector(0))` +
		` / sum(rate(revision_request_count{namespace_name="{{.Namespace}}",revision_name="{{.Revision}}"}[{{.Window}}]))`
	// DefaultP95Query is the revision's 95th-percentile latency in seconds.
	DefaultP95Query = `histogram_quantile(0.95, sum by (le) (rate(revision_request_latencies_bucket{namespace_name="{{.Namespace}}",revision_name="{{.Revision}}"}[{{.Window}}]))) / 1000`
)

// QueryVars fill a query template.
type QueryVars struct {
	Namespace, Service, Revision string
	Window                       string // the observation interval as a PromQL range, e.g. 120s
}

// renderQuery fills a text/template query; label values are quoted for PromQL.
func renderQuery(name, text string, v QueryVars) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("%s query: %w", name, err)
	}
	esc := func(s string) string { return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) }
	v.Namespace, v.Service, v.Revision = esc(v.Namespace), esc(v.Service), esc(v.Revision)
	var b strings.Builder
	if err := t.Execute(&b, v); err != nil {
		return "", fmt.Errorf("%s query: %w", name, err)
	}
	return b.String(), nil
}

// promDuration writes d as a PromQL range in whole seconds, at least 1s.
func promDuration(d time.Duration) string {
	return strconv.FormatInt(max(int64((d+time.Second-1)/time.Second), 1), 10) + "s"
}
