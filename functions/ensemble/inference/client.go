package inference

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/day-trade/platform/shared/httpx"
)

// Client calls the ensemble service. Its errors are *httpx.Error, so a handler can write
// them as they are: the ensemble's 400 and 404 keep their codes and field details, and
// everything that means "the ensemble cannot answer now" (refused, unreachable, timed out,
// 5xx) is CodeUnavailable with a Retry-After. A Client never invents a prediction.
type Client struct {
	base    string
	hc      *http.Client
	timeout time.Duration
}

// DefaultRetryAfter is the Retry-After given when the ensemble sent none.
const DefaultRetryAfter = time.Second

// ServiceURL is the ensemble's cluster-local Knative URL in namespace ns.
func ServiceURL(ns string) string { return "http://ensemble." + ns + ".svc.cluster.local" }

// NewTransport dials every connection to dialAddr when it is set (the local platform's
// activator, which routes by the Host header) and resolves hosts normally otherwise, as
// the gateway's upstream transport does.
func NewTransport(dialAddr string) *http.Transport {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	dial := d.DialContext
	if dialAddr != "" {
		dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, dialAddr)
		}
	}
	return &http.Transport{
		Proxy:               nil, // cluster-local traffic never goes through an HTTP proxy
		DialContext:         dial,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
}

// NewClient returns a client for the ensemble at baseURL, sending through rt (nil means
// http.DefaultTransport) and bounding each call by timeout.
func NewClient(baseURL string, rt http.RoundTripper, timeout time.Duration) *Client {
	if rt == nil {
		rt = http.DefaultTransport
	}
	return &Client{base: strings.TrimRight(baseURL, "/"), hc: &http.Client{Transport: rt}, timeout: timeout}
}

// Predict sends one batch.
func (c *Client) Predict(ctx context.Context, req PredictRequest) (PredictResponse, error) {
	var out PredictResponse
	body, err := json.Marshal(req)
	if err != nil {
		return out, httpx.Wrap(err, httpx.CodeInvalid, "feature values cannot be encoded")
	}
	err = c.do(ctx, http.MethodPost, "/v1/predict", body, &out)
	if err == nil && len(out.Predictions) != len(req.Rows) {
		err = &httpx.Error{Code: httpx.CodeUnavailable, Message: "the ensemble answered a different number of rows",
			RetryAfter: DefaultRetryAfter}
	}
	return out, err
}

func (c *Client) do(ctx context.Context, method, path string, body []byte, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return httpx.Wrap(err, httpx.CodeInternal, "bad ensemble URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return unavailable(err, "the ensemble cannot be reached", DefaultRetryAfter)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 32<<20))
	if err != nil {
		return unavailable(err, "the ensemble's answer was cut off", DefaultRetryAfter)
	}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, out); err != nil {
			return unavailable(err, "the ensemble answered garbage", DefaultRetryAfter)
		}
		return nil
	}
	var p httpx.Problem
	_ = json.Unmarshal(b, &p)
	cause := fmt.Errorf("ensemble answered %d: %s", resp.StatusCode, strings.TrimSpace(p.Detail))
	switch {
	case resp.StatusCode == http.StatusNotFound && len(p.Errors) > 0:
		// A 404 naming a field is the ensemble's "unknown model_version"; a bare 404 is a
		// routing problem (wrong URL, missing service), which the caller cannot fix.
		return &httpx.Error{Code: httpx.CodeNotFound, Message: p.Detail, Fields: p.Errors, Err: cause}
	case resp.StatusCode == http.StatusBadRequest:
		return &httpx.Error{Code: httpx.CodeInvalid, Message: p.Detail, Fields: p.Errors, Err: cause}
	case resp.StatusCode == http.StatusUnprocessableEntity:
		return &httpx.Error{Code: httpx.CodeUnprocessable, Message: p.Detail, Err: cause}
	}
	return unavailable(cause, "the ensemble is unavailable", retryAfter(resp.Header.Get("Retry-After")))
}

func unavailable(err error, msg string, after time.Duration) *httpx.Error {
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "the ensemble did not answer in time"
	}
	return &httpx.Error{Code: httpx.CodeUnavailable, Message: msg, RetryAfter: after, Err: err}
}

// retryAfter reads a Retry-After in seconds, bounded to [1s, 60s].
func retryAfter(h string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(h))
	if err != nil || n < 1 {
		return DefaultRetryAfter
	}
	return time.Duration(min(n, 60)) * time.Second
}
