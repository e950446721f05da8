package registry

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/store"
)

func dailyBars(closes ...float64) []market.Bar {
	day := time.Date(2024, 3, 4, 0, 0, 0, 0, market.JST)
	bars := make([]market.Bar, len(closes))
	for i, c := range closes {
		bars[i] = market.Bar{Time: day.AddDate(0, 0, i).UTC(), Open: c, High: c, Low: c, Close: c, Volume: 100, AdjClose: c}
	}
	return bars
}

func TestTrackerScoresOnceTheOutcomeIsFinal(t *testing.T) {
	_, rdb, _ := newRegistry(t)
	tr := NewTracker(rdb, store.NewKeys("ml"), 3)
	ctx := context.Background()
	bars := dailyBars(100, 101, 100, 100, 102)
	// Calls at bars 0..3: up (right: 101 > 100), up (wrong), up (wrong: unchanged is down), down (wrong).
	calls := []bool{true, true, true, false}
	for i, up := range calls {
		p := Prediction{Symbol: "7203.T", Version: "v1", BarTime: bars[i].Time, Up: up, Probability: 0.6}
		if fresh, err := tr.Record(ctx, p); err != nil || !fresh {
			t.Fatalf("record %d: %v %v", i, fresh, err)
		}
		if again, _ := tr.Record(ctx, p); again {
			t.Fatal("the same bar, symbol and version counted twice")
		}
	}
	// With bar 4 still forming (complete = 4), the call at bar 3 cannot be scored yet.
	n, err := tr.Score(ctx, "7203.T", bars, 4)
	if err != nil || n != 3 {
		t.Fatalf("scored %d, %v; want 3", n, err)
	}
	f, _ := tr.Version(ctx, "v1")
	if f.Recorded != 4 || f.Pending != 1 || f.Scored != 3 || f.Correct != 1 {
		t.Fatalf("figures %+v", f)
	}
	if n, _ := tr.Score(ctx, "7203.T", bars, 4); n != 0 {
		t.Fatalf("scored %d twice", n)
	}
	n, _ = tr.Score(ctx, "7203.T", bars, len(bars))
	if n != 1 {
		t.Fatalf("final bar: scored %d", n)
	}
	// Rolling over the window of 3: outcomes newest first are wrong(bar 3) and two of the
	// first three; the window drops the oldest.
	r, _ := tr.Rolling(ctx, 0)
	if r.Scored != 3 {
		t.Fatalf("rolling %+v, want 3 outcomes", r)
	}
	deg, f2, err := tr.Degraded(ctx, 3, 0.5, 3)
	if err != nil || !deg || f2.Accuracy >= 0.5 {
		t.Fatalf("degraded %v %+v %v", deg, f2, err)
	}
	if deg, _, _ := tr.Degraded(ctx, 3, 0.5, 10); deg {
		t.Fatal("3 outcomes cannot prove a model degraded when 10 are required")
	}
	if n, _ := tr.Score(ctx, "6758.T", bars, len(bars)); n != 0 {
		t.Fatal("another symbol's bars scored predictions")
	}
}

func TestTrackerIgnoresBarsThatDoNotReach(t *testing.T) {
	_, rdb, _ := newRegistry(t)
	tr := NewTracker(rdb, store.NewKeys("ml"), 0)
	ctx := context.Background()
	bars := dailyBars(100, 101, 102)
	tr.Record(ctx, Prediction{Symbol: "X", Version: "v1", BarTime: bars[2].Time.AddDate(0, 0, 5), Up: true})
	if n, err := tr.Score(ctx, "X", bars, 3); n != 0 || err != nil {
		t.Fatalf("scored %d %v for a bar outside the series", n, err)
	}
	if f, _ := tr.Version(ctx, "v1"); f.Pending != 1 {
		t.Fatalf("%+v", f)
	}
}

func TestTrackerPrevailingVersion(t *testing.T) {
	_, rdb, _ := newRegistry(t)
	tr := NewTracker(rdb, store.NewKeys("ml"), 5)
	ctx := context.Background()
	if v, err := tr.Prevailing(ctx, 0); v != "" || err != nil {
		t.Fatalf("nothing scored: %q %v", v, err)
	}
	// Outcomes oldest first: v1 v1 v1 v2 v2 v2 v3; the window of 5 keeps v1 v2 v2 v2 v3.
	closes := []float64{100, 101, 102, 103, 104, 105, 106, 107}
	bars := dailyBars(closes...)
	for i, v := range []string{"v1", "v1", "v1", "v2", "v2", "v2", "v3"} {
		tr.Record(ctx, Prediction{Symbol: "S" + strconv.Itoa(i), Version: v, BarTime: bars[i].Time, Up: true})
		if n, err := tr.Score(ctx, "S"+strconv.Itoa(i), bars, len(bars)); n != 1 || err != nil {
			t.Fatalf("score %d: %d %v", i, n, err)
		}
	}
	for n, want := range map[int]string{0: "v2", 5: "v2", 1: "v3", 2: "v3", 3: "v2"} {
		if v, err := tr.Prevailing(ctx, n); v != want || err != nil {
			t.Errorf("Prevailing(%d) = %q %v, want %q", n, v, err, want)
		}
	}
}
