package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/resilience"
)

// fakeEnsemble answers POST /v1/predict with status(n) for the n-th call (1-based).
func fakeEnsemble(t *testing.T, status func(n int64) int) (url string, calls *atomic.Int64) {
	t.Helper()
	calls = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		code := status(n)
		if code != http.StatusOK {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(httpx.Problem{Status: code, Detail: "fake"})
			return
		}
		_ = json.NewEncoder(w).Encode(inference.PredictResponse{ModelVersion: "v1", Predictions: []inference.Prediction{{Probability: 0.6, Class: "up", Confidence: 0.6}}})
	}))
	t.Cleanup(srv.Close)
	return srv.URL, calls
}

func newResilient(url string, attempts int, budget *resilience.Budget, b *resilience.Breaker) *resilientPredictor {
	if b == nil {
		b = resilience.NewBreaker("ensemble", resilience.BreakerSettings{})
	}
	return &resilientPredictor{
		next:    inference.NewClient(url, nil, 2*time.Second),
		retry:   resilience.Retry{Attempts: attempts, Backoff: resilience.Backoff{Base: time.Millisecond, Max: 5 * time.Millisecond}, Budget: budget},
		breaker: b,
	}
}

var oneRow = inference.PredictRequest{Rows: [][]inference.Value{{1, 2, 3}}}

func TestEnsembleCallsAreRetried(t *testing.T) {
	tests := map[string]struct {
		status    func(n int64) int
		wantCalls int64
		wantCode  httpx.Code // "" = success
	}{
		"503 twice then ok": {func(n int64) int { return map[bool]int{true: 503, false: 200}[n <= 2] }, 3, ""},
		"always 503":        {func(int64) int { return 503 }, 3, httpx.CodeUnavailable},
		"400 is final":      {func(int64) int { return 400 }, 1, httpx.CodeInvalid},
		"422 is final":      {func(int64) int { return 422 }, 1, httpx.CodeUnprocessable},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, calls := fakeEnsemble(t, tc.status)
			out, err := newResilient(url, 3, nil, nil).Predict(t.Context(), oneRow)
			if got := calls.Load(); got != tc.wantCalls {
				t.Errorf("%d calls to the ensemble, want %d", got, tc.wantCalls)
			}
			switch {
			case tc.wantCode == "" && (err != nil || len(out.Predictions) != 1):
				t.Errorf("Predict = %+v, %v; want one prediction", out, err)
			case tc.wantCode != "" && httpx.ErrorCode(err) != tc.wantCode:
				t.Errorf("err %v (code %s), want code %s", err, httpx.ErrorCode(err), tc.wantCode)
			}
		})
	}
}

// TestEnsembleDownIsRetriedThenUnavailable closes the ensemble's port: every attempt is
// refused, and the caller gets 503 with a Retry-After, not a 500.
func TestEnsembleDownIsRetriedThenUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens there any more
	_, err = newResilient(url, 3, nil, nil).Predict(t.Context(), oneRow)
	he := httpx.AsError(err)
	if he.Code != httpx.CodeUnavailable || he.RetryAfter <= 0 {
		t.Errorf("err %v: code %s retry-after %s, want unavailable with a Retry-After", err, he.Code, he.RetryAfter)
	}
}

// TestRetryBudgetBoundsRetries: once the budget's starting credit (10 retries) is spent, a
// failing ensemble gets one call per request, not three: 20 requests make 30 calls, not 60.
func TestRetryBudgetBoundsRetries(t *testing.T) {
	url, calls := fakeEnsemble(t, func(int64) int { return 503 })
	// 1% of calls plus a floor of 1e-9/s: after its starting credit it refuses retries.
	p := newResilient(url, 3, resilience.NewBudget(0.01, 1e-9), nil)
	const requests = 20
	for range requests {
		if _, err := p.Predict(t.Context(), oneRow); httpx.ErrorCode(err) != httpx.CodeUnavailable {
			t.Fatalf("err %v, want unavailable", err)
		}
	}
	if got := calls.Load(); got > requests+10+1 {
		t.Errorf("%d calls for %d requests: the budget did not bound the retries (unbounded would be %d)", got, requests, 3*requests)
	}
}

// TestBreakerStopsCallingAFailingEnsemble: once the breaker opens, requests fail fast with
// 503 and never reach the ensemble.
func TestBreakerStopsCallingAFailingEnsemble(t *testing.T) {
	url, calls := fakeEnsemble(t, func(int64) int { return 503 })
	b := resilience.NewBreaker("ensemble", resilience.BreakerSettings{MinRequests: 5, OpenFor: time.Hour})
	p := newResilient(url, 1, nil, b)
	for range 5 {
		_, _ = p.Predict(t.Context(), oneRow)
	}
	if b.State() != resilience.StateOpen {
		t.Fatalf("breaker %s after 5 failures, want open", b.State())
	}
	before := calls.Load()
	_, err := p.Predict(context.Background(), oneRow)
	he := httpx.AsError(err)
	if he.Code != httpx.CodeUnavailable || he.RetryAfter != time.Hour {
		t.Errorf("open breaker: %v (code %s, retry-after %s), want unavailable for the open period", err, he.Code, he.RetryAfter)
	}
	if calls.Load() != before {
		t.Error("the ensemble was called through an open breaker")
	}
}
