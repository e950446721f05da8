package main

import (
	"context"
	"math"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/day-trade/platform/shared/ml/registry"
)

// metrics exports the prediction latency histogram and the rolling realised accuracy
// gauge. The gauge reports the value computed when predictions were last scored, so a
// scrape never waits on Redis.
type metrics struct {
	latency  metric.Float64Histogram
	accuracy atomic.Uint64 // math.Float64bits of the rolling accuracy
	scored   atomic.Int64  // outcomes behind it; 0 means nothing to report yet
	window   int
}

func newMetrics(mp metric.MeterProvider, window int) (*metrics, error) {
	meter := mp.Meter("github.com/day-trade/platform/functions/ml-predict")
	m := &metrics{window: window}
	var err error
	// Exported to Prometheus as ml_prediction_latency_seconds (the exporter appends the unit).
	m.latency, err = meter.Float64Histogram("ml_prediction_latency",
		metric.WithDescription("Time to answer a prediction, from request to response, including features and the ensemble call"),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
	if err != nil {
		return nil, err
	}
	_, err = meter.Float64ObservableGauge("ml_prediction_accuracy",
		metric.WithDescription("Realised directional accuracy of the latest scored predictions (rolling window)"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			if m.scored.Load() > 0 {
				o.Observe(math.Float64frombits(m.accuracy.Load()),
					metric.WithAttributes(attribute.Int("window", m.window)))
			}
			return nil
		}))
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) observe(ctx context.Context, d time.Duration, cacheHit bool) {
	m.latency.Record(ctx, d.Seconds(), metric.WithAttributes(attribute.Bool("cache_hit", cacheHit)))
}

// refresh re-reads the rolling accuracy from the tracker.
func (m *metrics) refresh(ctx context.Context, t *registry.Tracker) {
	ctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	f, err := t.Rolling(ctx, 0)
	if err != nil || f.Scored == 0 {
		return
	}
	m.accuracy.Store(math.Float64bits(f.Accuracy))
	m.scored.Store(f.Scored)
}
