package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/dataset"
)

// DefaultSymbols is the training universe when a caller names none: ten liquid TSE names,
// the same as the real daily files in ../shared/data/tse-daily.
var DefaultSymbols = []string{"4502.T", "6758.T", "7203.T", "7267.T", "7751.T", "8306.T", "8316.T", "8411.T", "8591.T", "8604.T"}

// TrainConfig describes one training run.
type TrainConfig struct {
	Provider market.Provider
	// Symbols to train on; empty means DefaultSymbols.
	Symbols []string
	// Period of daily history per symbol; "" means "5y".
	Period market.Period
	// End is the last instant of history; zero means the provider's now.
	End time.Time
	// Evaluate runs the walk-forward evaluation before training the shipped model and
	// attaches its report to the artifact. Without it the artifact has no metrics.
	Evaluate bool
	// WalkForward holds the folds (used when Evaluate) and the ensemble settings (always used).
	WalkForward ml.WalkForwardConfig
	// Now stamps the artifact; nil means time.Now.
	Now func() time.Time
}

// Trained is the outcome of Train.
type Trained struct {
	Artifact *ml.Artifact
	Report   *ml.Report // nil unless Evaluate
	Rows     int
	// Durations of the three stages, for the command's summary.
	Fetch, Evaluation, Training time.Duration
}

// ErrNoData wraps every failure caused by the bars themselves (unknown symbol, too little
// history), as opposed to a provider or Redis outage.
var ErrNoData = errors.New("registry: not enough data to train")

// Train fetches daily bars for every symbol, builds the feature rows, optionally evaluates
// walk-forward, then trains the ensemble on all rows and wraps it in an artifact. The
// features are features.Names() in order, which is what a caller must send to the model.
func Train(ctx context.Context, cfg TrainConfig) (*Trained, error) {
	if cfg.Provider == nil {
		return nil, errors.New("registry: train: no provider")
	}
	symbols := cfg.Symbols
	if len(symbols) == 0 {
		symbols = DefaultSymbols
	}
	symbols = slices.Clone(symbols)
	slices.Sort(symbols)
	symbols = slices.Compact(symbols)
	period := cfg.Period
	if period == "" {
		period = "5y"
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	out := &Trained{}

	start := time.Now()
	bars, err := fetch(ctx, cfg.Provider, symbols, period, cfg.End)
	if err != nil {
		return nil, err
	}
	d, err := dataset.FromSymbols(bars)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoData, err)
	}
	out.Rows = d.Len()
	out.Fetch = time.Since(start)

	if cfg.Evaluate {
		start = time.Now()
		if out.Report, err = ml.WalkForward(ctx, d, cfg.WalkForward); err != nil {
			if errors.Is(err, ml.ErrBadInput) {
				err = fmt.Errorf("%w: %w", ErrNoData, err)
			}
			return nil, fmt.Errorf("walk-forward: %w", err)
		}
		out.Evaluation = time.Since(start)
	}

	start = time.Now()
	model, err := ml.TrainEnsemble(d, cfg.WalkForward.Ensemble)
	if err != nil {
		if errors.Is(err, ml.ErrBadInput) {
			err = fmt.Errorf("%w: %w", ErrNoData, err)
		}
		return nil, fmt.Errorf("train: %w", err)
	}
	out.Training = time.Since(start)
	span := ml.DataRange{From: slices.MinFunc(d.Time, time.Time.Compare), To: slices.MaxFunc(d.Time, time.Time.Compare)}
	out.Artifact, err = ml.NewArtifact(model, features.Names(), out.Report, span, symbols, now())
	if err != nil {
		return nil, err
	}
	return out, nil
}

// fetch reads every symbol's daily bars concurrently (a few at a time: a remote provider
// rate-limits) and fails on the first error.
func fetch(ctx context.Context, p market.Provider, symbols []string, period market.Period, end time.Time) (map[string][]market.Bar, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu    sync.Mutex
		bars  = make(map[string][]market.Bar, len(symbols))
		first error
		wg    sync.WaitGroup
		sem   = make(chan struct{}, 4)
	)
	for _, s := range symbols {
		wg.Go(func() {
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			b, err := p.Bars(ctx, market.Query{Symbol: s, Period: period, Interval: "1d", End: end})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if first == nil {
					if errors.Is(err, market.ErrUnknownSymbol) {
						err = fmt.Errorf("%w: %w", ErrNoData, err)
					}
					first = fmt.Errorf("bars for %s: %w", s, err)
					cancel()
				}
				return
			}
			bars[s] = b
		})
	}
	wg.Wait()
	if first != nil {
		return nil, first
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return bars, nil
}
