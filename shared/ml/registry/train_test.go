package registry

import (
	"context"
	"errors"
	"path/filepath"
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
