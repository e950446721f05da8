package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

var testdata = filepath.Join("..", "..", "testdata")

func TestEvalPrintsTheTable(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	var out bytes.Buffer
	err := run(context.Background(), []string{"-eval", "-fast", "-folds", "2", "-provider", "csv", "-csv-dir", testdata, "-symbols", "7203.T,6758.T"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"walk-forward:", "ensemble", "always-up", "prev-direction", "momentum-20", "confidence decile", "total"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "registered") {
		t.Fatal("-eval registered a model")
	}
}

func TestTrainWritesRegistersAndPromotes(t *testing.T) {
	rs := redistest.Start(t)
	t.Setenv("REDIS_URL", rs.URL())
	dir := t.TempDir()
	art, rep := filepath.Join(dir, "model.json"), filepath.Join(dir, "report.json")
	var out bytes.Buffer
	err := run(context.Background(), []string{"-fast", "-folds", "2", "-provider", "csv", "-csv-dir", testdata,
		"-symbols", "8306.T", "-out", art, "-report", rep, "-promote", "-note", "test"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(art)
	if err != nil {
		t.Fatal(err)
	}
	a, err := ml.ParseArtifact(b)
	if err != nil || a.Metrics == nil {
		t.Fatalf("artifact: %v", err)
	}
	if _, err := os.Stat(rep); err != nil {
		t.Fatal(err)
	}
	rdb, _ := store.Open(rs.URL())
	defer rdb.Close()
	v, err := registry.New(rdb, store.NewKeys("ml")).Promoted(context.Background())
	hash, _ := a.Hash()
	if err != nil || v.Version != "v1" || v.ArtifactHash != hash || v.Note != "test" || v.Source != "csv" {
		t.Fatalf("promoted %+v %v\n%s", v, err, out.String())
	}
}

func TestBadArguments(t *testing.T) {
	t.Setenv("REDIS_URL", "")
	for name, args := range map[string][]string{
		"oracle without -eval":  {"-provider", "oracle"},
		"csv without files":     {"-eval", "-provider", "csv", "-csv-dir", t.TempDir()},
		"bad symbol":            {"-eval", "-provider", "csv", "-csv-dir", testdata, "-symbols", "no way"},
		"bad period":            {"-eval", "-period", "7y"},
		"promote without redis": {"-fast", "-folds", "2", "-provider", "csv", "-csv-dir", testdata, "-symbols", "8306.T", "-promote"},
		"unknown provider":      {"-eval", "-provider", "nasdaq"},
	} {
		if err := run(context.Background(), args, &bytes.Buffer{}); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
