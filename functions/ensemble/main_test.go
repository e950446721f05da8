package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// The bootstrap that `make run` relies on trains, evaluates, registers and promotes a model
// on the synthetic market, and a second replica does not train again.
func TestBootstrapTrainsAndPromotes(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a model")
	}
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	reg := registry.New(rdb, store.NewKeys("ml"))
	boot := bootstrap(reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	v, err := boot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	p, err := reg.Promoted(context.Background())
	if err != nil || p.Version != v.Version || p.Metrics == nil || len(p.Symbols) != 5 || p.Source != "synthetic" {
		t.Fatalf("promoted %+v %v", p, err)
	}
	if _, _, err := reg.Artifact(context.Background(), v.Version); err != nil {
		t.Fatal(err)
	}
	again, err := boot(context.Background())
	if err != nil || again.Version != "" {
		t.Fatalf("second bootstrap: %+v %v; the claim should stop it", again, err)
	}
}
