package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func TestModelsListsVersionsWithMetricsAndRealisedFigures(t *testing.T) {
	rs := redistest.Start(t)
	rdb, _ := store.Open(rs.URL())
	defer rdb.Close()
	keys := store.NewKeys("ml")
	reg, tr := registry.New(rdb, keys), registry.NewTracker(rdb, keys, 50)
	srv := httptest.NewServer(newServer(slog.New(slog.NewTextHandler(io.Discard, nil)), reg, tr))
	defer srv.Close()
	get := func() (*http.Response, modelsResponse) {
		resp, err := http.Get(srv.URL + "/api/v1/ml/models")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m modelsResponse
		json.NewDecoder(resp.Body).Decode(&m)
		return resp, m
	}
	if resp, m := get(); resp.StatusCode != 200 || len(m.Versions) != 0 || m.Promoted != "" {
		t.Fatalf("empty registry: %d %+v", resp.StatusCode, m)
	}

	p, _ := market.New(market.ProviderCSV, market.Options{CSVDir: filepath.Join("..", "..", "shared", "ml", "testdata")})
	wf := ml.DefaultWalkForwardConfig()
	wf.Split.Folds = 2
	wf.Ensemble.GBDT.Rounds, wf.Ensemble.Forest.Trees = 20, 10
	trained, err := registry.Train(context.Background(), registry.TrainConfig{Provider: p, Symbols: []string{"7203.T"}, Period: "max", Evaluate: true, WalkForward: wf})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v1, _ := reg.Register(ctx, trained.Artifact, registry.Meta{Source: "csv"})
	trained.Artifact.Metrics = nil
	v2, _ := reg.Register(ctx, trained.Artifact, registry.Meta{Source: "csv", Note: "unevaluated"})
	reg.Promote(ctx, v1.Version)
	day := time.Date(2024, 1, 4, 0, 0, 0, 0, time.UTC)
	tr.Record(ctx, registry.Prediction{Symbol: "7203.T", Version: v1.Version, BarTime: day, Up: true})
	bars := []market.Bar{{Time: day, Close: 100}, {Time: day.AddDate(0, 0, 1), Close: 101}}
	if n, _ := tr.Score(ctx, "7203.T", bars, 2); n != 1 {
		t.Fatal("not scored")
	}

	resp, m := get()
	if resp.StatusCode != 200 || m.Promoted != v1.Version || m.Latest != v2.Version || len(m.Versions) != 2 {
		t.Fatalf("%d %+v", resp.StatusCode, m)
	}
	if m.Realised.Scored != 1 || m.Realised.Accuracy != 1 || m.Realised.Window != 50 {
		t.Fatalf("rolling %+v", m.Realised)
	}
	got1, got2 := m.Versions[1], m.Versions[0]
	if !got1.Promoted || got1.Realised.Scored != 1 || got1.WalkForward == nil || got1.WalkForward.TopDecile == nil ||
		len(got1.WalkForward.Results) < 5 || got1.WalkForward.Results[0].Name != ml.NameEnsemble {
		t.Fatalf("v1 %+v", got1)
	}
	if got2.Promoted || got2.WalkForward != nil || got2.Note != "unevaluated" {
		t.Fatalf("v2 %+v", got2)
	}

	rs.Kill()
	resp, _ = get()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || resp.Header.Get("Content-Type") != httpx.ProblemContentType {
		t.Fatalf("Redis down: %d", resp.StatusCode)
	}
}
