package registry

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/ml"
)

func fastWalkForward() ml.WalkForwardConfig {
	wf := ml.DefaultWalkForwardConfig()
	wf.Split.Folds = 2
	wf.Ensemble.GBDT.Rounds, wf.Ensemble.Forest.Trees = 20, 10
	return wf
}

func TestTrainOnCSVAndRegister(t *testing.T) {
	p, err := market.New(market.ProviderCSV, market.Options{CSVDir: filepath.Join("..", "testdata")})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Train(context.Background(), TrainConfig{Provider: p, Symbols: []string{"7203.T", "6758.T"}, Period: "max",
		Evaluate: true, WalkForward: fastWalkForward()})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Report == nil || tr.Artifact.Metrics != tr.Report || len(tr.Artifact.Symbols) != 2 || tr.Rows < 1500 {
		t.Fatalf("trained %+v", tr)
	}
	if len(tr.Artifact.FeatureNames) != len(features.Names()) || tr.Artifact.DataRange.From.Year() != 2016 {
		t.Fatalf("artifact %v %v", tr.Artifact.FeatureNames, tr.Artifact.DataRange)
	}
	reg, _, _ := newRegistry(t)
	v, err := reg.Register(context.Background(), tr.Artifact, Meta{Source: "csv"})
	if err != nil || v.Metrics == nil || len(v.Metrics.Results) == 0 {
		t.Fatalf("register: %+v %v", v, err)
	}
}

func TestTrainRejectsUnknownSymbolsAndShortHistory(t *testing.T) {
	p, _ := market.New(market.ProviderCSV, market.Options{CSVDir: filepath.Join("..", "testdata")})
	_, err := Train(context.Background(), TrainConfig{Provider: p, Symbols: []string{"9999.T"}, Period: "max", WalkForward: fastWalkForward()})
	if !errors.Is(err, ErrNoData) || !errors.Is(err, market.ErrUnknownSymbol) {
		t.Fatalf("unknown symbol: %v", err)
	}
	_, err = Train(context.Background(), TrainConfig{Provider: p, Symbols: []string{"7203.T"}, Period: "3mo", WalkForward: fastWalkForward()})
	if !errors.Is(err, ErrNoData) {
		t.Fatalf("three months of bars: %v", err)
	}
}

// TestRealTSENotWorseThanBestBaseline is the real-data rule of docs/ml.md as a test: on all
// ten real TSE files, the walk-forward `make eval` runs (this same Train call: csv provider,
// every file, period max, the default walk-forward) must leave the ensemble's balanced
// accuracy no more than one point below the best naive baseline's. It asserts no skill:
// daily direction is close to a coin flip, and the ensemble may lose to "previous
// direction" by noise, but not by more than a point. The walk-forward is deterministic, so
// the numbers are docs/ml.md's exactly; a change that moves them past the rule fails here.
// It takes about a second (half a minute under -race), and runs in `make test`, which does
// not pass -short.
func TestRealTSENotWorseThanBestBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("real-data walk-forward of ten symbols takes seconds")
	}
	dir := filepath.Join("..", "testdata")
	files, err := filepath.Glob(filepath.Join(dir, "*.csv"))
	if err != nil || len(files) != 10 {
		t.Fatalf("want the 10 real TSE files in %s, found %d (%v)", dir, len(files), err)
	}
	var symbols []string
	for _, f := range files {
		symbols = append(symbols, strings.TrimSuffix(filepath.Base(f), ".csv"))
	}
	p, err := market.New(market.ProviderCSV, market.Options{CSVDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := Train(context.Background(), TrainConfig{Provider: p, Symbols: symbols, Period: "max",
		Evaluate: true, WalkForward: ml.DefaultWalkForwardConfig()})
	if err != nil {
		t.Fatal(err)
	}
	r := tr.Report
	t.Log("\n" + r.Table())
	ens, ok := r.Result(ml.NameEnsemble)
	if !ok {
		t.Fatal("no ensemble result")
	}
	best := ml.Result{}
	best.BalancedAccuracy = -1
	for _, res := range r.Results {
		if res.Role == ml.RoleBaseline && res.BalancedAccuracy > best.BalancedAccuracy {
			best = res
		}
	}
	if best.Name == "" {
		t.Fatal("no baseline results")
	}
	const tolerance = 0.01 // one point of balanced accuracy
	t.Logf("ensemble balanced accuracy %.4f, best baseline %s %.4f, floor %.4f", ens.BalancedAccuracy,
		best.Name, best.BalancedAccuracy, best.BalancedAccuracy-tolerance)
	if ens.BalancedAccuracy < best.BalancedAccuracy-tolerance {
		t.Fatalf("ensemble balanced accuracy %.4f is more than a point below the best naive baseline (%s, %.4f)",
			ens.BalancedAccuracy, best.Name, best.BalancedAccuracy)
	}
}
