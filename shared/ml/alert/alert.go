// Package alert raises com.daytrade.ml.accuracy.degraded when the realised accuracy the
// registry's Tracker keeps falls below a threshold. Every function that scores predictions
// (ml-predict after a request, ml-batch-worker after a job) runs the same check, and one
// Redis claim per period makes the whole platform send at most one alert per period.
package alert

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/store"
)

// Config is the alert's settings, the same names and defaults in every function that checks:
// the period must be the same everywhere for the claim to be shared.
type Config struct {
	Threshold float64       `envconfig:"ACCURACY_THRESHOLD" default:"0.5"`
	Window    int           `envconfig:"ACCURACY_WINDOW" default:"200"`
	MinScored int           `envconfig:"ACCURACY_MIN_SCORED" default:"100"`
	Every     time.Duration `envconfig:"ACCURACY_ALERT_EVERY" default:"1h"`
}

// Validate checks the settings.
func (c Config) Validate() error {
	if c.Threshold <= 0 || c.Threshold >= 1 || c.Window < 1 || c.MinScored < 1 || c.Every <= 0 {
		return errors.New("ACCURACY_THRESHOLD must be in (0,1); ACCURACY_WINDOW, ACCURACY_MIN_SCORED and ACCURACY_ALERT_EVERY positive")
	}
	return nil
}

// Tracker is the part of registry.Tracker the check reads.
type Tracker interface {
	Degraded(ctx context.Context, window int, threshold float64, minScored int) (bool, registry.Figures, error)
	Prevailing(ctx context.Context, n int) (string, error)
}

// Publisher is the part of events.Publisher the check needs.
type Publisher interface {
	PublishID(ctx context.Context, id, typ, source, subject string, data any) (string, error)
}

var (
	_ Tracker   = (*registry.Tracker)(nil)
	_ Publisher = (*events.Publisher)(nil)
)

// Accuracy publishes com.daytrade.ml.accuracy.degraded at most once per period (Config.Every):
// the period is a fixed time bucket, claimed in Redis with SET NX, so however many jobs,
// requests, replicas or redeliveries see the degraded accuracy within one bucket, one event
// goes out, with an id derived from the bucket that consumers dedup if the claim holder
// retries. It is safe for concurrent use.
type Accuracy struct {
	rdb     redis.UniversalClient
	keys    store.Keys
	tracker Tracker
	pub     Publisher
	log     *slog.Logger
	source  string
	cfg     Config
	now     func() time.Time
	// done is 1 + the bucket this process knows to be published (0: none), so that the
	// checks after it, until the next bucket, cost no Redis call.
	done atomic.Int64
}

// Options are NewAccuracy's optional settings.
type Options struct {
	Log *slog.Logger     // nil: discard
	Now func() time.Time // nil: time.Now
}

// NewAccuracy returns the check of tracker's rolling accuracy, publishing through pub with
// source (the emitting function's, events.Source(name)) and claiming periods in keys.
func NewAccuracy(rdb redis.UniversalClient, keys store.Keys, tracker Tracker, pub Publisher, source string, cfg Config, o Options) *Accuracy {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Accuracy{rdb: rdb, keys: keys, tracker: tracker, pub: pub, log: o.Log, source: source, cfg: cfg, now: o.Now}
}

// Claim values: a publish in progress, and one that went out.
const (
	claimPublishing = "publishing"
	claimPublished  = "published"
)

// Check publishes the alert when the rolling accuracy is below the threshold and nobody has
// published it in this period. A failed publish releases the claim, so that the next check in
// the same period tries again: a failure does not use up the period.
func (a *Accuracy) Check(ctx context.Context) error {
	at := a.now().UTC()
	n := at.UnixNano() / int64(a.cfg.Every)
	if a.done.Load() == n+1 {
		return nil
	}
	bad, fig, err := a.tracker.Degraded(ctx, a.cfg.Window, a.cfg.Threshold, a.cfg.MinScored)
	if err != nil || !bad {
		return err
	}
	bucket := strconv.FormatInt(n, 10)
	key := a.keys.Key("alert", "accuracy", bucket)
	ok, err := a.rdb.SetNX(ctx, key, claimPublishing, 2*a.cfg.Every).Result()
	if err != nil {
		return err
	}
	if !ok {
		// Someone else holds the period. Only a finished publish settles it for this process:
		// a claim still publishing may yet be released by a failure.
		if v, err := a.rdb.Get(ctx, key).Result(); err == nil && v == claimPublished {
			a.done.Store(n + 1)
		}
		return nil
	}
	version, err := a.tracker.Prevailing(ctx, a.cfg.Window)
	if err != nil {
		a.log.WarnContext(ctx, "cannot tell which version the degraded accuracy is about", "err", err)
	}
	payload := events.MLAccuracyDegraded{
		Model: "ensemble", Version: version, Metric: "directional_accuracy", Value: fig.Accuracy, Threshold: a.cfg.Threshold,
		Window: strconv.Itoa(a.cfg.Window) + " predictions", ObservedAt: at,
	}
	if _, err := a.pub.PublishID(ctx, "accuracy-degraded-"+bucket, events.TypeMLAccuracyDegraded, a.source, "ensemble", payload); err != nil {
		a.rdb.Del(context.WithoutCancel(ctx), key)
		return err
	}
	a.done.Store(n + 1)
	a.rdb.Set(context.WithoutCancel(ctx), key, claimPublished, 2*a.cfg.Every)
	a.log.WarnContext(ctx, "realised accuracy below threshold; alert published", "accuracy", fig.Accuracy,
		"scored", fig.Scored, "threshold", a.cfg.Threshold, "version", version)
	return nil
}
