package ml

import (
	"encoding/json"
	"math"
	"testing"
)

func TestAUC(t *testing.T) {
	cases := map[string]struct {
		score []float64
		y     []int
		want  float64
	}{
		"perfect":             {[]float64{0.1, 0.2, 0.8, 0.9}, []int{0, 0, 1, 1}, 1},
		"reversed":            {[]float64{0.9, 0.8, 0.2, 0.1}, []int{0, 0, 1, 1}, 0},
		"all tied":            {[]float64{0.5, 0.5, 0.5, 0.5}, []int{0, 1, 0, 1}, 0.5},
		"one class":           {[]float64{0.1, 0.9}, []int{1, 1}, 0.5},
		"partial ties":        {[]float64{0.2, 0.5, 0.5, 0.9}, []int{0, 0, 1, 1}, 0.875}, // pairs: 4 wins of which one tie → 3.5/4
		"one pair misordered": {[]float64{0.1, 0.4, 0.35, 0.8}, []int{0, 0, 1, 1}, 0.75},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if got := AUC(c.score, c.y); math.Abs(got-c.want) > 1e-12 {
				t.Fatalf("AUC = %v, want %v", got, c.want)
			}
		})
	}
}

func TestAUCMatchesPairCount(t *testing.T) {
	d := signalData(t, 1, 400, 1, 21)
	score := make([]float64, d.Len())
	for i, x := range d.X {
		score[i] = math.Round(x[0]*4) / 4 // coarse, so many ties
	}
	var wins, pairs float64
	for i := range score {
		for j := range score {
			if d.Y[i] == 1 && d.Y[j] == 0 {
				pairs++
				switch {
				case score[i] > score[j]:
					wins++
				case score[i] == score[j]:
					wins += 0.5
				}
			}
		}
	}
	if got, want := AUC(score, d.Y), wins/pairs; math.Abs(got-want) > 1e-12 {
		t.Fatalf("rank AUC %v, pair-count AUC %v", got, want)
	}
}

func TestScore(t *testing.T) {
	p := []float64{0.9, 0.8, 0.3, 0.6, 0.4, 0.5}
	y := []int{1, 0, 0, 1, 1, 0}
	m := Score(p, y)
	// Calls (p >= 0.5 → up): 1 1 0 1 0 1 against 1 0 0 1 1 0: rows 0, 2, 3 are right.
	if m.N != 6 || math.Abs(m.Accuracy-0.5) > 1e-12 {
		t.Fatalf("accuracy %v n %d", m.Accuracy, m.N)
	}
	// Up recall 2/3 (rows 0, 3 of 0, 3, 4); down recall 1/3 (row 2 of 1, 2, 5).
	if math.Abs(m.BalancedAccuracy-0.5) > 1e-12 || math.Abs(m.AccuracySE-math.Sqrt(0.25/6)) > 1e-12 {
		t.Fatalf("balanced accuracy %v", m.BalancedAccuracy)
	}
	brier := (0.01 + 0.64 + 0.09 + 0.16 + 0.36 + 0.25) / 6
	if math.Abs(m.Brier-brier) > 1e-12 {
		t.Fatalf("Brier %v, want %v", m.Brier, brier)
	}
	ll := -(math.Log(0.9) + math.Log(0.2) + math.Log(0.7) + math.Log(0.6) + math.Log(0.4) + math.Log(0.5)) / 6
	if math.Abs(m.LogLoss-ll) > 1e-12 {
		t.Fatalf("log-loss %v, want %v", m.LogLoss, ll)
	}
	if math.Abs(m.UpRate-0.5) > 1e-12 {
		t.Fatalf("up rate %v", m.UpRate)
	}
	if _, err := json.Marshal(Score([]float64{0, 1}, []int{1, 1})); err != nil {
		t.Fatalf("metrics with a missing class do not encode: %v", err)
	}
}

func TestReliabilityDeciles(t *testing.T) {
	n := 1000
	p := make([]float64, n)
	y := make([]int, n)
	for i := range p {
		p[i] = 0.5 + 0.5*float64(i)/float64(n) // confidence rises with i
		y[i] = b2i(i%10 < 7)
	}
	r := Score(p, y).Reliability
	if len(r) != 10 {
		t.Fatalf("%d buckets, want 10", len(r))
	}
	total := 0
	for k, b := range r {
		total += b.N
		if b.N != 100 || math.Abs(b.Accuracy-0.7) > 1e-12 {
			t.Errorf("bucket %d: n %d accuracy %v", b.Bucket, b.N, b.Accuracy)
		}
		if k > 0 && b.MeanConfidence <= r[k-1].MeanConfidence {
			t.Errorf("bucket %d is not more confident than bucket %d", b.Bucket, r[k-1].Bucket)
		}
	}
	if total != n {
		t.Fatalf("buckets hold %d rows, want %d", total, n)
	}
}
