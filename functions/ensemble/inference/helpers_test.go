package inference

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/dataset"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type fixture struct {
	reg   *registry.Registry
	rdb   *redis.Client
	redis *redistest.Server
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return fixture{reg: registry.New(rdb, store.NewKeys("ml")), rdb: rdb, redis: rs}
}

// logRegArtifact is a logistic regression over the real feature names whose weight on
// feature 0 has sign sign, so two versions give visibly different answers.
func logRegArtifact(t testing.TB, sign float64) *ml.Artifact {
	t.Helper()
	names := features.Names()
	rng := rand.New(rand.NewPCG(1, 2))
	var X [][]float64
	var y []int
	for range 400 {
		x := make([]float64, len(names))
		for j := range x {
			x[j] = rng.NormFloat64()
		}
		up := 0
		if sign*x[0]+0.5*rng.NormFloat64() > 0 {
			up = 1
		}
		X, y = append(X, x), append(y, up)
	}
	m, err := ml.TrainLogReg(X, y, ml.DefaultLogRegConfig())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ml.NewArtifact(m, names, nil, ml.DataRange{}, []string{"TEST"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (f fixture) registerAndPromote(t testing.TB, a *ml.Artifact) registry.Version {
	t.Helper()
	v, err := f.reg.Register(context.Background(), a, registry.Meta{Source: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Promote(context.Background(), v.Version); err != nil {
		t.Fatal(err)
	}
	return v
}

// startService runs a Service against the fixture's registry and serves it over real HTTP.
func (f fixture) startService(t *testing.T, opts RunOptions) (*Service, *httptest.Server) {
	t.Helper()
	s := NewService(f.reg, quietLog())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx, opts) }()
	srv := httptest.NewServer(NewServer(quietLog(), s))
	t.Cleanup(func() { srv.Close(); cancel(); <-done })
	return s, srv
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func row(vals ...float64) []Value {
	r := make([]Value, len(features.Names()))
	for i, v := range vals {
		r[i] = Value(v)
	}
	return r
}

// realModel trains the default ensemble on the ten real daily files, as `make train` does.
func realModel(tb testing.TB) (*Loaded, ml.Dataset) {
	tb.Helper()
	p, err := market.New(market.ProviderCSV, market.Options{CSVDir: filepath.Join("..", "..", "..", "shared", "ml", "testdata")})
	if err != nil {
		tb.Fatal(err)
	}
	tr, err := registry.Train(context.Background(), registry.TrainConfig{Provider: p, Period: "max", WalkForward: ml.DefaultWalkForwardConfig()})
	if err != nil {
		tb.Fatal(err)
	}
	m, err := tr.Artifact.LoadModel()
	if err != nil {
		tb.Fatal(err)
	}
	l := &Loaded{Version: registry.Version{Version: "bench", Features: tr.Artifact.FeatureNames}, Model: m, index: map[string]int{}}
	for i, n := range l.Version.Features {
		l.index[n] = i
	}
	bars := map[string][]market.Bar{}
	for _, s := range registry.DefaultSymbols[:2] {
		b, err := p.Bars(context.Background(), market.Query{Symbol: s, Period: "max", Interval: "1d"})
		if err != nil {
			tb.Fatal(err)
		}
		bars[s] = b
	}
	d, err := dataset.FromSymbols(bars)
	if err != nil {
		tb.Fatal(err)
	}
	return l, d
}
