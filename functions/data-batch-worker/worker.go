package main

import (
	"context"
	"errors"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/marketcache"
)

// Cache is the market-data cache the worker warms.
type Cache interface {
	Bars(ctx context.Context, q market.Query) (marketcache.Entry, bool, error)
}

var _ Cache = (*marketcache.Cache)(nil)

// Publisher is the part of events.Publisher the worker needs.
type Publisher interface {
	PublishID(ctx context.Context, id, typ, source, subject string, data any) (string, error)
}

type worker struct {
	runner *batch.Runner
	cache  Cache
	pub    Publisher
}

// maxSymbols is data-batch-fetch's limit; the worker re-checks what it is given.
const maxSymbols = 50

// fetched is one symbol's stored result.
type fetched struct {
	Bars      int       `json:"bars"`
	CacheHit  bool      `json:"cache_hit"` // the cache already held the series
	FetchedAt time.Time `json:"fetched_at"`
	First     time.Time `json:"first,omitzero"`
	Last      time.Time `json:"last,omitzero"`
}

// handle carries out one data.batch.requested event. A payload that cannot be a job is
// poison (4xx, dead-lettered); a provider or Redis outage is transient (the Broker
// redelivers and the job resumes where it stopped).
func (w *worker) handle(ctx context.Context, e cloudevents.Event) error {
	var req events.DataBatchRequested
	if err := events.DecodeData(e, &req); err != nil {
		return err
	}
	spec, q, err := parse(req)
	if err != nil {
		return err
	}
	sum, err := w.runner.Run(ctx, spec, func(ctx context.Context, symbols []string) (map[string]batch.Outcome, error) {
		out := make(map[string]batch.Outcome, len(symbols))
		for _, s := range symbols {
			q := q
			q.Symbol = s
			entry, hit, err := w.cache.Bars(ctx, q)
			if err != nil {
				if permanent(err) {
					out[s] = batch.Outcome{Err: httpx.Wrap(err, httpx.CodeUnprocessable, err.Error())}
					continue
				}
				return nil, transient(err)
			}
			f := fetched{Bars: len(entry.Bars), CacheHit: hit, FetchedAt: entry.FetchedAt}
			if n := len(entry.Bars); n > 0 {
				f.First, f.Last = entry.Bars[0].Time, entry.Bars[n-1].Time
			}
			out[s] = batch.Outcome{Value: f}
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	if sum.Status != jobs.StatusSucceeded && sum.Status != jobs.StatusFailed {
		return nil // cancelled: nobody waits for a completion
	}
	done := events.DataBatchCompleted{
		JobID: spec.JobID, Tenant: spec.Tenant, Outcome: string(sum.Status),
		ResultRef: sum.ResultRef, Fetched: sum.OK, Failed: sum.Failed, Error: sum.Error,
	}
	// The id is the job's: a redelivery after a crash between the job's end and this publish
	// announces the completion again, and consumers dedup it.
	_, err = w.pub.PublishID(ctx, spec.JobID+".completed", events.TypeDataBatchCompleted, events.SourceDataBatchWorker, spec.JobID, done)
	return err
}

// parse validates a request as a job.
func parse(req events.DataBatchRequested) (batch.Spec, market.Query, error) {
	var fields []httpx.FieldError
	if req.JobID == "" {
		fields = append(fields, httpx.FieldError{Field: "job_id", Reason: "required"})
	}
	if req.Tenant == "" {
		fields = append(fields, httpx.FieldError{Field: "tenant", Reason: "required"})
	}
	syms, err := batch.ParseSymbols(req.Symbols, maxSymbols)
	if err != nil {
		fields = append(fields, httpx.AsError(err).Fields...)
	}
	p, err := market.ParsePeriod(req.Period)
	if err != nil {
		fields = append(fields, httpx.FieldError{Field: "period", Reason: err.Error()})
	}
	i, err := market.ParseInterval(req.Interval)
	if err != nil {
		fields = append(fields, httpx.FieldError{Field: "interval", Reason: err.Error()})
	}
	if len(fields) > 0 {
		return batch.Spec{}, market.Query{}, httpx.Invalid("invalid data.batch.requested payload", fields...)
	}
	return batch.Spec{Tenant: req.Tenant, JobID: req.JobID, Symbols: syms}, market.Query{Period: p, Interval: i}, nil
}

// permanent reports whether a fetch failed for reasons a retry does not change.
func permanent(err error) bool {
	return errors.Is(err, market.ErrUnknownSymbol) || errors.Is(err, market.ErrUnsupported)
}

// transient turns a failed fetch into a retryable error.
func transient(err error) error {
	var he *httpx.Error
	if errors.As(err, &he) && he.Code.Retryable() {
		return he
	}
	return httpx.Wrap(err, httpx.CodeUnavailable, "market data unavailable")
}
