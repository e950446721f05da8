package registry

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func newRegistry(t *testing.T) (*Registry, *redis.Client, *redistest.Server) {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return New(rdb, store.NewKeys("ml")), rdb, rs
}

// testArtifact is a logistic regression over the real feature names, trained on random
// rows: cheap, and a genuine model document.
func testArtifact(t testing.TB, seed uint64) *ml.Artifact {
	t.Helper()
	names := features.Names()
	rng := rand.New(rand.NewPCG(seed, 1))
	var X [][]float64
	var y []int
	for range 300 {
		x := make([]float64, len(names))
		for j := range x {
			x[j] = rng.NormFloat64()
		}
		X = append(X, x)
		y = append(y, int(rng.IntN(2)))
	}
	m, err := ml.TrainLogReg(X, y, ml.DefaultLogRegConfig())
	if err != nil {
		t.Fatal(err)
	}
	day := time.Date(2020, 1, 6, 0, 0, 0, 0, time.UTC)
	a, err := ml.NewArtifact(m, names, nil, ml.DataRange{From: day, To: day.AddDate(1, 0, 0)}, []string{"7203.T"}, day.AddDate(1, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRegisterPromoteRollback(t *testing.T) {
	reg, _, _ := newRegistry(t)
	ctx := context.Background()
	if _, err := reg.Promoted(ctx); !errors.Is(err, ErrNoModel) {
		t.Fatalf("empty registry: promoted err = %v, want ErrNoModel", err)
	}
	if _, err := reg.Latest(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("empty registry: latest err = %v", err)
	}
	var ids []string
	for i := range 3 {
		a := testArtifact(t, uint64(i))
		v, err := reg.Register(ctx, a, Meta{Source: "test", Note: "n"})
		if err != nil {
			t.Fatal(err)
		}
		hash, _ := a.Hash()
		if v.ArtifactHash != hash || len(v.Features) != len(features.Names()) || v.Source != "test" || v.Seq != int64(i+1) {
			t.Fatalf("version %+v", v)
		}
		ids = append(ids, v.Version)
	}
	if ids[0] != "v1" || ids[2] != "v3" {
		t.Fatalf("ids %v", ids)
	}
	if l, _ := reg.Latest(ctx); l.Version != "v3" {
		t.Fatalf("latest %s", l.Version)
	}
	list, err := reg.List(ctx)
	if err != nil || len(list) != 3 || list[0].Version != "v3" || list[2].Version != "v1" {
		t.Fatalf("list %v %v", list, err)
	}
	if _, err := reg.Promoted(ctx); !errors.Is(err, ErrNoModel) {
		t.Fatal("registering must not promote")
	}
	for _, id := range []string{"v1", "v2", "v3"} {
		if _, err := reg.Promote(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.Promote(ctx, "v9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("promote unknown: %v", err)
	}
	for _, want := range []string{"v2", "v1"} {
		v, err := reg.Rollback(ctx)
		if err != nil || v.Version != want {
			t.Fatalf("rollback = %s, %v; want %s", v.Version, err, want)
		}
		if id, _ := reg.PromotedID(ctx); id != want {
			t.Fatalf("promoted %s after rollback, want %s", id, want)
		}
	}
	if _, err := reg.Rollback(ctx); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("rollback past the first promotion: %v", err)
	}
}

func TestArtifactRoundTripAndTamper(t *testing.T) {
	reg, rdb, _ := newRegistry(t)
	ctx := context.Background()
	a := testArtifact(t, 1)
	v, err := reg.Register(ctx, a, Meta{})
	if err != nil {
		t.Fatal(err)
	}
	got, gv, err := reg.Artifact(ctx, v.Version)
	if err != nil || gv.Version != v.Version {
		t.Fatal(err)
	}
	m1, _ := a.LoadModel()
	m2, _ := got.LoadModel()
	x := make([]float64, len(features.Names()))
	x[3] = 0.7
	if m1.PredictProba(x) != m2.PredictProba(x) {
		t.Fatal("the stored model predicts differently")
	}
	// Change one weight in Redis: the hash no longer matches, and the artifact is refused.
	b, _ := json.Marshal(testArtifact(t, 2))
	if err := rdb.Set(ctx, "ml:registry:artifact:"+v.Version, b, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Artifact(ctx, v.Version); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("tampered artifact: err = %v, want ErrCorrupt", err)
	}
	if err := rdb.Set(ctx, "ml:registry:artifact:"+v.Version, "{not json", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reg.Artifact(ctx, v.Version); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("garbage artifact: err = %v, want ErrCorrupt", err)
	}
	if _, _, err := reg.Artifact(ctx, "v77"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
}

func TestSubscribeSeesPromotions(t *testing.T) {
	reg, _, _ := newRegistry(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := reg.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v1, _ := reg.Register(ctx, testArtifact(t, 1), Meta{})
	v2, _ := reg.Register(ctx, testArtifact(t, 2), Meta{})
	reg.Promote(ctx, v1.Version)
	reg.Promote(ctx, v2.Version)
	reg.Promote(ctx, v2.Version) // no change, no event
	reg.Rollback(ctx)
	want := []Event{{Type: EventRegistered, Version: "v1"}, {Type: EventRegistered, Version: "v2"},
		{Type: EventPromoted, Version: "v1"}, {Type: EventPromoted, Version: "v2"}, {Type: EventRolledBack, Version: "v1"}}
	for i, w := range want {
		select {
		case ev := <-ch:
			if ev.Type != w.Type || ev.Version != w.Version || ev.At.IsZero() {
				t.Fatalf("event %d = %+v, want %+v", i, ev, w)
			}
		case <-ctx.Done():
			t.Fatalf("event %d never came", i)
		}
	}
}

func TestRedisDownIsAnErrorNotAPanic(t *testing.T) {
	reg, _, rs := newRegistry(t)
	rs.Kill()
	ctx := context.Background()
	if _, err := reg.PromotedID(ctx); err == nil || errors.Is(err, ErrNoModel) {
		t.Fatalf("promoted with Redis down: %v", err)
	}
	if _, err := reg.Register(ctx, testArtifact(t, 1), Meta{}); err == nil {
		t.Fatal("register with Redis down succeeded")
	}
	if _, err := reg.Subscribe(ctx); err == nil {
		t.Fatal("subscribe with Redis down succeeded")
	}
}

func TestClaim(t *testing.T) {
	reg, _, _ := newRegistry(t)
	ctx := context.Background()
	a, err1 := reg.Claim(ctx, "bootstrap", time.Minute)
	b, err2 := reg.Claim(ctx, "bootstrap", time.Minute)
	if err1 != nil || err2 != nil || !a || b {
		t.Fatalf("claims %v %v (%v %v): want exactly the first", a, b, err1, err2)
	}
}
