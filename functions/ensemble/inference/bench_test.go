package inference

import (
	"slices"
	"testing"
	"time"
)

// BenchmarkPredictRow is one row through validation and the default ensemble trained on
// the ten real daily files: the in-process cost of a single prediction.
func BenchmarkPredictRow(b *testing.B) {
	l, d := realModel(b)
	req := PredictRequest{Rows: [][]Value{toValues(d.X[len(d.X)/2])}}
	out := make([]Prediction, 1)
	b.ReportAllocs()
	for b.Loop() {
		X, err := Rows(l, req)
		if err != nil {
			b.Fatal(err)
		}
		l.Predict(X, out)
	}
}

// BenchmarkPredictBatch is a batch of 1000 rows; rows/s is the throughput on one core
// (run with -cpu 1).
func BenchmarkPredictBatch(b *testing.B) {
	l, d := realModel(b)
	const n = 1000
	req := PredictRequest{Rows: make([][]Value, n)}
	for i := range req.Rows {
		req.Rows[i] = toValues(d.X[i%len(d.X)])
	}
	out := make([]Prediction, n)
	b.ReportAllocs()
	for b.Loop() {
		X, err := Rows(l, req)
		if err != nil {
			b.Fatal(err)
		}
		l.Predict(X, out)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "rows/s")
}

func toValues(x []float64) []Value {
	v := make([]Value, len(x))
	for i, f := range x {
		v[i] = Value(f)
	}
	return v
}

// BenchmarkPredictRowLatency times every single-row prediction separately and reports the
// median and 99th percentile, the figures the budget (p50 < 20µs) is stated in.
func BenchmarkPredictRowLatency(b *testing.B) {
	l, d := realModel(b)
	reqs := make([]PredictRequest, 512)
	for i := range reqs {
		reqs[i] = PredictRequest{Rows: [][]Value{toValues(d.X[(i*37)%len(d.X)])}}
	}
	out := make([]Prediction, 1)
	var lat []time.Duration
	i := 0
	for b.Loop() {
		start := time.Now()
		X, err := Rows(l, reqs[i%len(reqs)])
		if err != nil {
			b.Fatal(err)
		}
		l.Predict(X, out)
		lat = append(lat, time.Since(start))
		i++
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
