package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/functions/ensemble/inference"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
	"github.com/day-trade/platform/shared/ml/alert"
	"github.com/day-trade/platform/shared/ml/registry"
)

// Bars is where the worker reads market data.
type Bars interface {
	Bars(ctx context.Context, q market.Query) (marketcache.Entry, bool, error)
}

// Ensemble answers batches of feature rows (inference.Client).
type Ensemble interface {
	Predict(ctx context.Context, req inference.PredictRequest) (inference.PredictResponse, error)
}

// Tracker records predictions and scores them when their outcome is known.
type Tracker interface {
	Record(ctx context.Context, p registry.Prediction) (bool, error)
	Score(ctx context.Context, symbol string, bars []market.Bar, complete int) (int, error)
}

// Publisher is the part of events.Publisher the worker needs.
type Publisher interface {
	PublishID(ctx context.Context, id, typ, source, subject string, data any) (string, error)
}

var (
	_ Bars      = (*marketcache.Cache)(nil)
	_ Ensemble  = (*inference.Client)(nil)
	_ Tracker   = (*registry.Tracker)(nil)
	_ Publisher = (*events.Publisher)(nil)
)

type worker struct {
	runner   *batch.Runner
	bars     Bars
	ensemble Ensemble
	tracker  Tracker
	alerts   *alert.Accuracy // nil: no accuracy alerts
	pub      Publisher
	history  market.Period
	log      *slog.Logger
	clock    func() time.Time // nil: time.Now
}

func (w *worker) now() time.Time {
	if w.clock != nil {
		return w.clock()
	}
	return time.Now()
}

// maxSymbols is ml-batch-predict's limit; the worker re-checks what it is given.
const maxSymbols = 100

// prediction is one symbol's stored result.
type prediction struct {
	Direction    string    `json:"direction"`   // "up" or "down" over the next trading day
	Probability  float64   `json:"probability"` // calibrated P(up)
	Confidence   float64   `json:"confidence"`
	ModelVersion string    `json:"model_version"`
	AsOf         time.Time `json:"as_of"` // the bar whose features were used
	Horizon      int       `json:"horizon"`
}

// handle carries out one ml.batch.requested event; see data-batch-worker for the error
// contract (poison 4xx, transient 5xx, resumable).
func (w *worker) handle(ctx context.Context, e cloudevents.Event) error {
	var req events.MLBatchRequested
	if err := events.DecodeData(e, &req); err != nil {
		return err
	}
	spec, err := parse(req)
	if err != nil {
		return err
	}
	sum, err := w.runner.Run(ctx, spec, w.predictChunk)
	if err != nil {
		return err
	}
	if sum.Status != jobs.StatusSucceeded && sum.Status != jobs.StatusFailed {
		return nil
	}
	done := events.MLBatchCompleted{
		JobID: spec.JobID, Tenant: spec.Tenant, Outcome: string(sum.Status),
		ResultRef: sum.ResultRef, Predicted: sum.OK, Failed: len(sum.Failed), Error: sum.Error,
	}
	if _, err := w.pub.PublishID(ctx, spec.JobID+".completed", events.TypeMLBatchCompleted, events.SourceMLBatchWorker, spec.JobID, done); err != nil {
		return err
	}
	if w.alerts != nil {
		// An alert that cannot be checked now is checked after the next job; the job is done.
		if err := w.alerts.Check(ctx); err != nil {
			w.log.WarnContext(ctx, "accuracy check failed", "err", err)
		}
	}
	return nil
}

func parse(req events.MLBatchRequested) (batch.Spec, error) {
	var fields []httpx.FieldError
	if req.JobID == "" {
		fields = append(fields, httpx.FieldError{Field: "job_id", Reason: "required"})
	}
	if req.Tenant == "" {
		fields = append(fields, httpx.FieldError{Field: "tenant", Reason: "required"})
	}
	if req.Horizon > 1 {
		fields = append(fields, httpx.FieldError{Field: "horizon", Reason: "only 1 is supported"})
	}
	syms, err := batch.ParseSymbols(req.Symbols, maxSymbols)
	if err != nil {
		fields = append(fields, httpx.AsError(err).Fields...)
	}
	if len(fields) > 0 {
		return batch.Spec{}, httpx.Invalid("invalid ml.batch.requested payload", fields...)
	}
	return batch.Spec{Tenant: req.Tenant, JobID: req.JobID, Symbols: syms}, nil
}

// predictChunk builds each symbol's latest complete feature row and sends the chunk's rows
// to the ensemble in one call.
func (w *worker) predictChunk(ctx context.Context, symbols []string) (map[string]batch.Outcome, error) {
	out := make(map[string]batch.Outcome, len(symbols))
	var (
		rows  [][]inference.Value
		syms  []string
		asOf  []time.Time
		names = features.Names()
	)
	for _, s := range symbols {
		entry, _, err := w.bars.Bars(ctx, market.Query{Symbol: s, Period: w.history, Interval: "1d"})
		if err != nil {
			if errors.Is(err, market.ErrUnknownSymbol) || errors.Is(err, market.ErrUnsupported) {
				out[s] = batch.Outcome{Err: httpx.Wrap(err, httpx.CodeUnprocessable, err.Error())}
				continue
			}
			return nil, retryable(err, "market data unavailable")
		}
		// As ml-predict does: features of the latest bar; only bars a day old settle earlier
		// predictions (today's bar is still forming).
		bars := entry.Bars
		m, first := features.Matrix(bars)
		if len(bars) == 0 || first > len(bars)-1 {
			out[s] = batch.Outcome{Err: httpx.Errorf(httpx.CodeUnprocessable, "%d daily bars in %s; the features need more history", len(bars), w.history)}
			continue
		}
		complete := len(bars)
		if w.now().Before(bars[len(bars)-1].Time.Add(24 * time.Hour)) {
			complete--
		}
		if _, err := w.tracker.Score(ctx, s, bars, complete); err != nil {
			w.log.WarnContext(ctx, "cannot score earlier predictions", "symbol", s, "err", err)
		}
		row := make([]inference.Value, len(names))
		for i, v := range m[len(m)-1] {
			row[i] = inference.Value(v)
		}
		rows, syms, asOf = append(rows, row), append(syms, s), append(asOf, bars[len(bars)-1].Time)
	}
	if len(rows) == 0 {
		return out, nil
	}
	resp, err := w.ensemble.Predict(ctx, inference.PredictRequest{FeatureNames: names, Rows: rows})
	if err != nil {
		if httpx.ErrorCode(err).Retryable() {
			return nil, err
		}
		// The ensemble refused the rows (a model that does not know our features): no
		// retry changes that, so each symbol of the chunk is recorded as failed.
		for _, s := range syms {
			out[s] = batch.Outcome{Err: httpx.Wrap(err, httpx.CodeUnprocessable, "the model cannot predict this symbol")}
		}
		return out, nil
	}
	now := w.now().UTC()
	for i, s := range syms {
		p := resp.Predictions[i]
		out[s] = batch.Outcome{Value: prediction{
			Direction: p.Class, Probability: p.Probability, Confidence: p.Confidence,
			ModelVersion: resp.ModelVersion, AsOf: asOf[i], Horizon: 1,
		}}
		if _, err := w.tracker.Record(ctx, registry.Prediction{
			Symbol: s, Version: resp.ModelVersion, BarTime: asOf[i], Up: p.Class == inference.ClassUp,
			Probability: p.Probability, PredictedAt: now,
		}); err != nil {
			w.log.WarnContext(ctx, "cannot record prediction for accuracy tracking", "symbol", s, "err", err)
		}
	}
	return out, nil
}

func retryable(err error, msg string) error {
	var he *httpx.Error
	if errors.As(err, &he) && he.Code.Retryable() {
		return he
	}
	return httpx.Wrap(err, httpx.CodeUnavailable, msg)
}
