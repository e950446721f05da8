package ml

import "testing"

// benchData is the realistic training size: 10 symbols × 1000 daily rows × 30 features.
func benchData(b *testing.B) Dataset {
	b.Helper()
	return signalData(b, 10, 1000, 30, 71)
}

func BenchmarkTrainEnsemble(b *testing.B) {
	d := benchData(b)
	cfg := DefaultEnsembleConfig()
	for b.Loop() {
		if _, err := TrainEnsemble(d, cfg); err != nil {
			b.Fatal(err)
		}
	}
}

func trainedBenchEnsemble(b *testing.B) (*Ensemble, Dataset) {
	d := benchData(b)
	e, err := TrainEnsemble(d, DefaultEnsembleConfig())
	if err != nil {
		b.Fatal(err)
	}
	return e, d
}

func BenchmarkEnsemblePredictRow(b *testing.B) {
	e, d := trainedBenchEnsemble(b)
	x := d.X[0]
	for b.Loop() {
		_ = e.PredictProba(x)
	}
}

func BenchmarkEnsemblePredictBatch100(b *testing.B) {
	e, d := trainedBenchEnsemble(b)
	X := d.X[:100]
	for b.Loop() {
		_ = Predict(e, X)
	}
}
