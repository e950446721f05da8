package main

import (
	"slices"
	"testing"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/day-trade/platform/shared/ml
cpu: AMD EPYC
BenchmarkEnsemblePredictRow-2   	  88000	     13350 ns/op	       0 B/op	       0 allocs/op
BenchmarkEnsemblePredictRow-2   	  90000	     13550 ns/op	       0 B/op	       0 allocs/op
BenchmarkEnsemblePredictRow-2   	  91000	     12000 ns/op	       0 B/op	       0 allocs/op
PASS
ok  	github.com/day-trade/platform/shared/ml	3.1s
pkg: github.com/day-trade/platform/functions/ensemble/inference
BenchmarkPredictBatch-2   	  10	  1000 ns/op	  5000 rows/s
BenchmarkPredictBatch-2   	  10	  3000 ns/op	  7000 rows/s
--- BENCH: BenchmarkNoise-2 this line is not a result
`
	got := parseBench(out)
	want := []BenchResult{
		{Package: "github.com/day-trade/platform/shared/ml", Name: "BenchmarkEnsemblePredictRow", Unit: "ns/op", Median: 13350, Min: 12000, Max: 13550, Values: []float64{13350, 13550, 12000}},
		{Package: "github.com/day-trade/platform/shared/ml", Name: "BenchmarkEnsemblePredictRow", Unit: "B/op", Values: []float64{0, 0, 0}},
		{Package: "github.com/day-trade/platform/shared/ml", Name: "BenchmarkEnsemblePredictRow", Unit: "allocs/op", Values: []float64{0, 0, 0}},
		{Package: "github.com/day-trade/platform/functions/ensemble/inference", Name: "BenchmarkPredictBatch", Unit: "ns/op", Median: 2000, Min: 1000, Max: 3000, Values: []float64{1000, 3000}},
		{Package: "github.com/day-trade/platform/functions/ensemble/inference", Name: "BenchmarkPredictBatch", Unit: "rows/s", Median: 6000, Min: 5000, Max: 7000, Values: []float64{5000, 7000}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d results, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Package != w.Package || g.Name != w.Name || g.Unit != w.Unit || g.Median != w.Median || g.Min != w.Min || g.Max != w.Max || !slices.Equal(g.Values, w.Values) {
			t.Errorf("result %d: got %+v, want %+v", i, g, w)
		}
	}
}

func TestSummariseNearestRank(t *testing.T) {
	xs := []float64{9, 1, 8, 2, 7, 3, 6, 4, 5, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}
	d := summarise(xs, true)
	if d.N != 20 || d.Median != 10 || d.P95 != 19 || d.P99 != 20 || d.Min != 1 || d.Max != 20 || len(d.All) != 20 {
		t.Fatalf("%+v", d)
	}
	if d := summarise(nil, true); d.N != 0 {
		t.Fatalf("empty sample: %+v", d)
	}
}
