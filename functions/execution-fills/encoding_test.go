package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch/batchtest"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
)

// TestStructuredAndBinaryModeTicksSweepOnce: the same tick id delivered in both CloudEvents
// HTTP modes is accepted both times and sweeps once (one read of the resting orders' bars
// per tick id), structured first and then binary first; the crossing order fills once.
func TestStructuredAndBinaryModeTicksSweepOnce(t *testing.T) {
	f := newFixture(t)
	f.open(t, "acme", "ord_1", trading.Buy, "2500", 10_000_000) // crossed by the 10:05 bar
	f.open(t, "acme", "ord_2", trading.Buy, "2000", 0)          // never crossed: rests, so every sweep reads bars
	f.setNow(placed.Add(7 * time.Minute))
	recv, err := events.NewReceiver(f.client(t), store.NewKeys("exec"), events.ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(newServer(f.sweeper(t, nil, bars), recv))
	defer srv.Close()
	for i, tc := range []struct {
		id    string
		modes []bool // structured?
	}{
		{"tick-structured-first", []bool{true, false}},
		{"tick-binary-first", []bool{false, true}},
	} {
		for _, structured := range tc.modes {
			e := batchtest.Event(t, tc.id, events.TypeExecutionTick, events.SourceExecutionScheduler, events.ExecutionTick{})
			if st := batchtest.Send(t, srv.URL, e, structured); st != http.StatusOK {
				t.Fatalf("%s (structured %v): %d", tc.id, structured, st)
			}
		}
		if n := f.reads.Load(); n != int64(i+1) {
			t.Fatalf("after %s in both modes: %d sweeps read bars, want %d", tc.id, n, i+1)
		}
	}
	if n, _ := f.ledger.Fills(t.Context(), "acme", "ord_1"); n != 1 {
		t.Fatalf("ord_1: %d fills", n)
	}
	if n, _ := f.ledger.Fills(t.Context(), "acme", "ord_2"); n != 0 {
		t.Fatalf("ord_2: %d fills", n)
	}
}
