package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/registry"
)

// Promotion policies.
const (
	promoteNever    = "never"
	promoteAlways   = "always"
	promoteIfBetter = "if-better"
)

type trainer struct {
	log         *slog.Logger
	reg         *registry.Registry
	provider    market.Provider
	source      string
	policy      string
	period      market.Period
	walkForward ml.WalkForwardConfig
}

// handle trains for one event. Bad requests and data that cannot train a model are poison
// (CodeInvalid: dead-lettered, never retried); a provider or Redis outage is transient.
// A redelivery after a crash between Register and the ack registers a second, identical
// version: harmless, and visible in the registry.
func (t trainer) handle(ctx context.Context, e cloudevents.Event) error {
	var req events.MLTrainRequested
	if err := events.DecodeData(e, &req); err != nil {
		return err
	}
	var fields []httpx.FieldError
	symbols := make([]string, 0, len(req.Symbols))
	for i, s := range req.Symbols {
		sym, err := market.ParseSymbol(s)
		if err != nil {
			fields = append(fields, httpx.FieldError{Field: fmt.Sprintf("symbols[%d]", i), Reason: err.Error()})
		}
		symbols = append(symbols, sym)
	}
	period := t.period
	if req.Period != "" {
		p, err := market.ParsePeriod(req.Period)
		if err != nil {
			fields = append(fields, httpx.FieldError{Field: "period", Reason: err.Error()})
		}
		period = p
	}
	if len(fields) > 0 {
		return httpx.Invalid("invalid "+events.TypeMLTrainRequested+" payload", fields...)
	}
	started := time.Now()
	tr, err := registry.Train(ctx, registry.TrainConfig{Provider: t.provider, Symbols: symbols, Period: period,
		Evaluate: true, WalkForward: t.walkForward})
	switch {
	case errors.Is(err, registry.ErrNoData):
		return httpx.Wrap(err, httpx.CodeInvalid, "these symbols and period cannot train a model")
	case err != nil:
		return httpx.Wrap(err, httpx.CodeUnavailable, "training failed")
	}
	note := fmt.Sprintf("ml-train: job %s, reason %s", req.JobID, req.Reason)
	v, err := t.reg.Register(ctx, tr.Artifact, registry.Meta{Source: t.source, Note: note})
	if err != nil {
		return httpx.Wrap(err, httpx.CodeUnavailable, "registering the model failed")
	}
	promote, why, err := t.shouldPromote(ctx, tr.Report)
	if err != nil {
		return httpx.Wrap(err, httpx.CodeUnavailable, "reading the promoted model failed")
	}
	if promote {
		if _, err := t.reg.Promote(ctx, v.Version); err != nil {
			return httpx.Wrap(err, httpx.CodeUnavailable, "promoting the model failed")
		}
	}
	ens, _ := tr.Report.Result(ml.NameEnsemble)
	t.log.InfoContext(ctx, "model trained", "version", v.Version, "job", req.JobID, "reason", req.Reason,
		"symbols", len(tr.Artifact.Symbols), "rows", tr.Rows, "balanced_accuracy", ens.BalancedAccuracy,
		"promoted", promote, "why", why, "seconds", time.Since(started).Seconds())
	return nil
}

// shouldPromote applies the promotion policy to a freshly evaluated model.
func (t trainer) shouldPromote(ctx context.Context, rep *ml.Report) (bool, string, error) {
	switch t.policy {
	case promoteNever:
		return false, "policy never", nil
	case promoteAlways:
		return true, "policy always", nil
	}
	cur, err := t.reg.Promoted(ctx)
	if errors.Is(err, registry.ErrNoModel) {
		return true, "nothing promoted yet", nil
	}
	if err != nil {
		return false, "", err
	}
	if cur.Metrics == nil {
		return true, "the promoted model has no walk-forward metrics", nil
	}
	newE, _ := rep.Result(ml.NameEnsemble)
	oldE, _ := cur.Metrics.Result(ml.NameEnsemble)
	if newE.BalancedAccuracy >= oldE.BalancedAccuracy {
		return true, fmt.Sprintf("balanced accuracy %.4f >= %.4f of %s", newE.BalancedAccuracy, oldE.BalancedAccuracy, cur.Version), nil
	}
	return false, fmt.Sprintf("balanced accuracy %.4f < %.4f of %s", newE.BalancedAccuracy, oldE.BalancedAccuracy, cur.Version), nil
}
