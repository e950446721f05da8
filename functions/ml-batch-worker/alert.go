package main

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/store"
)

// Degrader is the tracker's alert check.
type Degrader interface {
	Degraded(ctx context.Context, window int, threshold float64, minScored int) (bool, registry.Figures, error)
}

// alerter publishes com.daytrade.ml.accuracy.degraded at most once per period ("every"):
// the period is a fixed time bucket, claimed in Redis with SET NX, so however many jobs,
// replicas or redeliveries see the degraded accuracy within one bucket, one event goes out,
// with an id derived from the bucket that consumers dedup if the claim holder retries.
type alerter struct {
	rdb       redis.UniversalClient
	keys      store.Keys
	tracker   Degrader
	pub       Publisher
	log       *slog.Logger
	threshold float64
	window    int
	minScored int
	every     time.Duration
	now       func() time.Time
}

func (a *alerter) check(ctx context.Context) error {
	bad, fig, err := a.tracker.Degraded(ctx, a.window, a.threshold, a.minScored)
	if err != nil || !bad {
		return err
	}
	now := time.Now
	if a.now != nil {
		now = a.now
	}
	at := now().UTC()
	bucket := strconv.FormatInt(at.UnixNano()/int64(a.every), 10)
	key := a.keys.Key("alert", "accuracy", bucket)
	// The claim records a publish in progress; it is released if the publish fails, so the
	// next check in the same period tries again.
	ok, err := a.rdb.SetNX(ctx, key, "publishing", 2*a.every).Result()
	if err != nil || !ok {
		return err
	}
	payload := events.MLAccuracyDegraded{
		Model: "ensemble", Metric: "directional_accuracy", Value: fig.Accuracy, Threshold: a.threshold,
		Window: strconv.Itoa(a.window) + " predictions", ObservedAt: at,
	}
	if _, err := a.pub.PublishID(ctx, "accuracy-degraded-"+bucket, events.TypeMLAccuracyDegraded, events.SourceMLBatchWorker, "ensemble", payload); err != nil {
		a.rdb.Del(context.WithoutCancel(ctx), key)
		return err
	}
	a.rdb.Set(ctx, key, "published", 2*a.every)
	a.log.WarnContext(ctx, "realised accuracy below threshold; alert published", "accuracy", fig.Accuracy, "scored", fig.Scored, "threshold", a.threshold)
	return nil
}
