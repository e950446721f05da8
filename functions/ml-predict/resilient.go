package main

import (
	"context"
	"errors"

	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/resilience"
)

// resilientPredictor is the one retry layer around the ensemble client (STYLE.md habit 8):
// a prediction changes nothing, so a call the ensemble could not answer (refused,
// unreachable, timed out, 5xx: CodeUnavailable) is tried again with jittered backoff, each
// retry paid from a budget so that retries cannot multiply the load on a struggling
// ensemble; a breaker stops calling an ensemble that keeps failing and answers 503 at once.
// The ensemble's 4xx answers are final and do not count against it.
type resilientPredictor struct {
	next    predictor
	retry   resilience.Retry
	breaker *resilience.Breaker
}

var _ predictor = (*resilientPredictor)(nil)

func (p *resilientPredictor) Predict(ctx context.Context, req inference.PredictRequest) (inference.PredictResponse, error) {
	var out inference.PredictResponse
	err := p.retry.Do(ctx, func(ctx context.Context) error {
		done, err := p.breaker.Allow()
		if err != nil {
			return &httpx.Error{Code: httpx.CodeUnavailable, Message: "the ensemble keeps failing; not calling it for now",
				RetryAfter: p.breaker.OpenFor(), Err: err}
		}
		res, err := p.next.Predict(ctx, req)
		done(err == nil || httpx.ErrorCode(err) != httpx.CodeUnavailable)
		if err == nil {
			out = res
		}
		return err
	}, func(err error) bool {
		return httpx.ErrorCode(err) == httpx.CodeUnavailable && !errors.Is(err, resilience.ErrOpen)
	})
	// A refused retry or an ended ctx is joined to the last attempt's error, whose code and
	// Retry-After httpx finds through the join.
	return out, err
}
