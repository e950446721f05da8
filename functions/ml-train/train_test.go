package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

type fixture struct {
	url   string // the function's HTTP server
	redis *redistest.Server
	reg   *registry.Registry
	pub   *events.Publisher
}

func newFixture(t *testing.T, policy string) fixture {
	t.Helper()
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	keys := store.NewKeys("ml")
	recv, err := events.NewReceiver(rdb, keys, events.ReceiverOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := market.New(market.ProviderCSV, market.Options{CSVDir: filepath.Join("..", "..", "shared", "ml", "testdata")})
	wf := ml.DefaultWalkForwardConfig()
	wf.Split.Folds = 2
	wf.Ensemble.GBDT.Rounds, wf.Ensemble.Forest.Trees = 30, 15
	tr := trainer{log: log, reg: registry.New(rdb, keys), provider: p, source: "csv", policy: policy, period: "max", walkForward: wf}
	recv.Handle(events.TypeMLTrainRequested, tr.handle)
	srv := httptest.NewServer(newServer(recv))
	t.Cleanup(srv.Close)
	pub, err := events.NewPublisher(srv.URL, events.WithRetries(0, time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	return fixture{url: srv.URL, redis: rs, reg: tr.reg, pub: pub}
}

func (f fixture) send(t *testing.T, req events.MLTrainRequested) error {
	t.Helper()
	_, err := f.pub.Publish(context.Background(), events.TypeMLTrainRequested, events.SourceMLModels, "", req)
	return err
}

func TestTrainRequestRegistersAndPromotes(t *testing.T) {
	f := newFixture(t, promoteIfBetter)
	if err := f.send(t, events.MLTrainRequested{JobID: "j1", Model: "ensemble", Symbols: []string{"7203.T", "6758.T"}, Reason: "manual"}); err != nil {
		t.Fatal(err)
	}
	v, err := f.reg.Promoted(context.Background())
	if err != nil || v.Version != "v1" || v.Metrics == nil || len(v.Symbols) != 2 || v.Source != "csv" {
		t.Fatalf("promoted %+v %v", v, err)
	}
	// The same data again scores the same: "if-better" promotes on a tie.
	if err := f.send(t, events.MLTrainRequested{JobID: "j2", Symbols: []string{"7203.T", "6758.T"}, Reason: "scheduled"}); err != nil {
		t.Fatal(err)
	}
	if id, _ := f.reg.PromotedID(context.Background()); id != "v2" {
		t.Fatalf("promoted %s after an equally good model", id)
	}
}

func TestNeverPolicyOnlyRegisters(t *testing.T) {
	f := newFixture(t, promoteNever)
	if err := f.send(t, events.MLTrainRequested{JobID: "j1", Symbols: []string{"8306.T"}, Reason: "manual"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.Latest(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.reg.PromotedID(context.Background()); !errors.Is(err, registry.ErrNoModel) {
		t.Fatalf("policy never promoted: %v", err)
	}
}

func TestPoisonAndTransientEvents(t *testing.T) {
	f := newFixture(t, promoteAlways)
	var he *httpx.Error
	for name, req := range map[string]events.MLTrainRequested{
		"unknown symbol": {JobID: "p1", Symbols: []string{"9999.T"}},
		"bad symbol":     {JobID: "p2", Symbols: []string{"not a ticker"}},
		"bad period":     {JobID: "p3", Symbols: []string{"7203.T"}, Period: "7y"},
		"too little":     {JobID: "p4", Symbols: []string{"7203.T"}, Period: "1mo"},
	} {
		if err := f.send(t, req); !errors.As(err, &he) || he.Code != httpx.CodeInvalid {
			t.Fatalf("%s: %v, want a rejected (poison) event", name, err)
		}
	}
	if _, err := f.reg.Latest(context.Background()); !errors.Is(err, registry.ErrNotFound) {
		t.Fatal("a poison event registered a model")
	}
	f.redis.Kill()
	if err := f.send(t, events.MLTrainRequested{JobID: "t1", Symbols: []string{"7203.T"}}); !errors.As(err, &he) || he.Code == httpx.CodeInvalid {
		t.Fatalf("Redis down: %v, want a retryable failure", err)
	}
}
