package main

import (
	"net/http"
	"testing"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch/batchtest"
)

// TestStructuredAndBinaryModeAreProcessedOnce: a Broker may deliver in either CloudEvents
// HTTP mode, and a redelivery may come in the other one. The same event id sent in both
// modes (structured first, then binary first) trains and registers one model version.
func TestStructuredAndBinaryModeAreProcessedOnce(t *testing.T) {
	f := newFixture(t, promoteAlways)
	req := events.MLTrainRequested{JobID: "j1", Symbols: []string{"8306.T"}, Reason: "manual"}
	for _, tc := range []struct {
		id      string
		modes   []bool // structured?
		version string // the latest version after both deliveries
	}{
		{"train-structured-first", []bool{true, false}, "v1"},
		{"train-binary-first", []bool{false, true}, "v2"},
	} {
		for _, structured := range tc.modes {
			e := batchtest.Event(t, tc.id, events.TypeMLTrainRequested, events.SourceMLModels, req)
			if st := batchtest.Send(t, f.url, e, structured); st != http.StatusOK {
				t.Fatalf("%s (structured %v): %d", tc.id, structured, st)
			}
		}
		v, err := f.reg.Latest(t.Context())
		if err != nil || v.Version != tc.version {
			t.Fatalf("after %s in both modes: latest %q %v, want %s", tc.id, v.Version, err, tc.version)
		}
	}
	if vs, err := f.reg.List(t.Context()); err != nil || len(vs) != 2 {
		t.Fatalf("%d versions registered (%v), want 2: one per event id", len(vs), err)
	}
}
