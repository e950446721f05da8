package ml

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSplitsPurgeEmbargo(t *testing.T) {
	d := signalData(t, 3, 200, 2, 1) // 3 symbols share every timestamp
	cases := map[string]SplitConfig{
		"purge 1":            {Folds: 4, TestFrac: 0.5, Purge: 1},
		"purge 1 embargo 5":  {Folds: 4, TestFrac: 0.5, Purge: 1, Embargo: 5},
		"purge 3 embargo 2":  {Folds: 3, TestFrac: 0.4, Purge: 3, Embargo: 2},
		"no purge (allowed)": {Folds: 2, TestFrac: 0.3},
	}
	for name, cfg := range cases {
		t.Run(name, func(t *testing.T) {
			splits, err := Splits(d, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(splits) != cfg.Folds {
				t.Fatalf("%d folds, want %d", len(splits), cfg.Folds)
			}
			pos, _, _ := d.timeIndex()
			prevTestEnd := -1
			var testRows int
			for k, sp := range splits {
				testRows += len(sp.Test)
				testLo, testHi := pos[sp.Test[0]], pos[sp.Test[0]]
				for _, i := range sp.Test {
					testLo, testHi = min(testLo, pos[i]), max(testHi, pos[i])
				}
				trainHi := -1
				for _, i := range sp.Train {
					trainHi = max(trainHi, pos[i])
				}
				if gap := testLo - trainHi - 1; gap != cfg.Purge+cfg.Embargo {
					t.Errorf("fold %d: %d bars between train end and test start, want purge+embargo = %d", k, gap, cfg.Purge+cfg.Embargo)
				}
				if testLo != prevTestEnd+1 && k > 0 {
					t.Errorf("fold %d starts at %d, previous ended at %d: folds must tile the test period", k, testLo, prevTestEnd)
				}
				prevTestEnd = testHi
				if k > 0 && len(sp.Train) <= len(splits[k-1].Train) {
					t.Errorf("fold %d: training window did not expand", k)
				}
				// All symbols share boundaries: every time in the fold has all 3 rows.
				if len(sp.Test)%3 != 0 || len(sp.Train)%3 != 0 {
					t.Errorf("fold %d splits a timestamp across symbols", k)
				}
				if !slices.IsSorted(sp.Train) || !slices.IsSorted(sp.Test) {
					t.Errorf("fold %d rows are not in chronological order", k)
				}
			}
			if prevTestEnd != 199 {
				t.Errorf("test folds end at time %d, want the last time 199", prevTestEnd)
			}
			if testRows != 3*int(float64(200)*cfg.TestFrac+0.5) {
				t.Errorf("%d test rows", testRows)
			}
		})
	}
}

func TestSplitsUseTimeNotRowOrder(t *testing.T) {
	// Rows in symbol-major order (all of A, then all of B) must split exactly like rows in
	// time order.
	byTime := signalData(t, 2, 100, 1, 2)
	var idx []int
	for s := 0; s < 2; s++ {
		for i := s; i < byTime.Len(); i += 2 {
			idx = append(idx, i)
		}
	}
	bySymbol := byTime.Subset(idx)
	cfg := SplitConfig{Folds: 3, TestFrac: 0.5, Purge: 1, Embargo: 1}
	a, err := Splits(byTime, cfg)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Splits(bySymbol, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k := range a {
		maxTrain := func(d Dataset, rows []int) time.Time {
			var m time.Time
			for _, i := range rows {
				if d.Time[i].After(m) {
					m = d.Time[i]
				}
			}
			return m
		}
		if len(a[k].Train) != len(b[k].Train) || len(a[k].Test) != len(b[k].Test) ||
			!maxTrain(byTime, a[k].Train).Equal(maxTrain(bySymbol, b[k].Train)) {
			t.Fatalf("fold %d differs between row orders", k)
		}
	}
}

func TestSplitsReject(t *testing.T) {
	d := signalData(t, 1, 20, 1, 1)
	for name, cfg := range map[string]SplitConfig{
		"no folds":         {Folds: 0, TestFrac: 0.5},
		"test frac 1":      {Folds: 2, TestFrac: 1},
		"negative purge":   {Folds: 2, TestFrac: 0.5, Purge: -1},
		"more folds":       {Folds: 50, TestFrac: 0.5},
		"no training left": {Folds: 2, TestFrac: 0.5, Purge: 5, Embargo: 5},
	} {
		if _, err := Splits(d, cfg); err == nil {
			t.Errorf("%s: accepted %+v", name, cfg)
		}
	}
}

func TestWalkForwardReport(t *testing.T) {
	d, _ := randomWalk(t, 1200, 4)
	cfg := WalkForwardConfig{Split: DefaultSplitConfig(), Ensemble: fastEnsemble()}
	r, err := WalkForward(context.Background(), d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{NameEnsemble, NameLogReg, NameGBDT, NameForest, BaselineAlwaysUp, BaselinePrevDir, BaselineMomentum}
	var got []string
	for _, res := range r.Results {
		got = append(got, res.Name)
		if res.N != r.Rows {
			t.Errorf("%s scored %d rows, report has %d", res.Name, res.N, r.Rows)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("results %v, want %v", got, want)
	}
	up := mustResult(t, r, BaselineAlwaysUp)
	if up.Accuracy != up.UpRate {
		t.Errorf("always-up accuracy %v != up rate %v", up.Accuracy, up.UpRate)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Fatalf("report does not encode: %v", err)
	}
	table := r.Table()
	for _, s := range append(want, "decile", "fold") {
		if !strings.Contains(table, s) {
			t.Errorf("table lacks %q:\n%s", s, table)
		}
	}
	t.Log("\n" + table)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := WalkForward(ctx, d, cfg); err == nil {
		t.Error("WalkForward ignored a cancelled context")
	}
}
