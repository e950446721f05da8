package ml

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// trainTest splits a dataset chronologically: the first 70% of rows train, the rest test.
func trainTest(d Dataset) (train, test Dataset) {
	cut := d.Len() * 7 / 10
	idx := make([]int, d.Len())
	for i := range idx {
		idx[i] = i
	}
	return d.Subset(idx[:cut]), d.Subset(idx[cut:])
}

func TestModelsLearnRealSignal(t *testing.T) {
	d := signalData(t, 2, 1500, 10, 7)
	train, test := trainTest(d)
	// GBDT early-stops on the last 20% of the training rows.
	cut := train.Len() * 8 / 10
	idx := make([]int, train.Len())
	for i := range idx {
		idx[i] = i
	}
	fit, val := train.Subset(idx[:cut]), train.Subset(idx[cut:])

	cases := map[string]func() (Model, error){
		"logreg": func() (Model, error) { return TrainLogReg(train.X, train.Y, DefaultLogRegConfig()) },
		"gbdt":   func() (Model, error) { return TrainGBDT(fit.X, fit.Y, val.X, val.Y, DefaultGBDTConfig()) },
		"forest": func() (Model, error) { return TrainForest(train.X, train.Y, DefaultForestConfig()) },
		"ensemble": func() (Model, error) {
			return TrainEnsemble(train, DefaultEnsembleConfig())
		},
	}
	for name, train := range cases {
		t.Run(name, func(t *testing.T) {
			m, err := train()
			if err != nil {
				t.Fatal(err)
			}
			s := Score(Predict(m, test.X), test.Y)
			t.Logf("%s: acc %.4f AUC %.4f Brier %.4f (Bayes accuracy 0.75)", name, s.Accuracy, s.AUC, s.Brier)
			// 0.65 is far beyond chance (4 s.e. at n=900 is 0.067 above 0.5) and below the
			// 0.75 ceiling, so it fails for a model that learns nothing.
			if s.Accuracy < 0.65 || s.AUC < 0.72 {
				t.Errorf("accuracy %.4f AUC %.4f: the model did not learn a real signal", s.Accuracy, s.AUC)
			}
		})
	}
}

func TestLogRegRecoversCoefficients(t *testing.T) {
	// y ~ Bernoulli(σ(2·x0 - x1)) with unit-variance inputs: weights on the standardised
	// inputs should come out near (2, -1, 0) with a tiny penalty.
	d := signalData(t, 1, 20000, 3, 3)
	for i, x := range d.X {
		d.Y[i] = 0
		if sigmoid(2*x[0]-x[1]) > float64(i%1000)/1000 {
			d.Y[i] = 1
		}
	}
	m, err := TrainLogReg(d.X, d.Y, LogRegConfig{Lambda: 1e-6, MaxIter: 50, Tol: 1e-9})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{2, -1, 0}
	for j, w := range want {
		if got := m.Weights[j] * m.Std[j]; math.Abs(got-w) > 0.15 { // back to raw scale
			t.Errorf("weight %d = %.3f, want about %.1f", j, got, w)
		}
	}
}

func TestTrainingIsDeterministic(t *testing.T) {
	d := signalData(t, 2, 600, 8, 11)
	enc := func() []byte {
		e, err := TrainEnsemble(d, DefaultEnsembleConfig())
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := enc(), enc()
	if !bytes.Equal(a, b) {
		t.Fatal("two trainings with the same seed produced different models")
	}
	cfg := DefaultEnsembleConfig()
	cfg.Forest.Seed, cfg.GBDT.Seed = 2, 2
	e, err := TrainEnsemble(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := json.Marshal(e)
	if bytes.Equal(a, c) {
		t.Fatal("changing the seed changed nothing: the seed is not used")
	}
}

func TestGBDTEarlyStopping(t *testing.T) {
	// Pure noise: validation loss stops improving almost at once, so boosting must stop
	// long before the cap.
	d := signalData(t, 1, 2000, 5, 5)
	for i := range d.Y {
		d.Y[i] = (i * 7919 / 13) % 2
	}
	tr, va := trainTest(d)
	cfg := DefaultGBDTConfig()
	m, err := TrainGBDT(tr.X, tr.Y, va.X, va.Y, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Trees) >= cfg.Rounds {
		t.Fatalf("kept %d of %d trees on noise; early stopping did not trigger", len(m.Trees), cfg.Rounds)
	}
}

func TestTrainRejectsBadInput(t *testing.T) {
	good := [][]float64{{1, 2}, {3, 4}}
	cases := map[string]struct {
		X [][]float64
		y []int
	}{
		"no rows":      {nil, nil},
		"length":       {good, []int{1}},
		"ragged":       {[][]float64{{1, 2}, {3}}, []int{0, 1}},
		"NaN":          {[][]float64{{1, math.NaN()}, {3, 4}}, []int{0, 1}},
		"label not 01": {good, []int{0, 2}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := TrainLogReg(c.X, c.y, DefaultLogRegConfig()); err == nil {
				t.Error("logreg accepted bad input")
			}
			if _, err := TrainGBDT(c.X, c.y, nil, nil, DefaultGBDTConfig()); err == nil {
				t.Error("gbdt accepted bad input")
			}
			if _, err := TrainForest(c.X, c.y, DefaultForestConfig()); err == nil {
				t.Error("forest accepted bad input")
			}
		})
	}
}

func TestFitWeights(t *testing.T) {
	// Member 0 is informative, member 1 is constant 0.5, member 2 is anti-informative: the
	// blend should lean on member 0 and the weights must stay on the simplex.
	d := signalData(t, 1, 3000, 1, 9)
	P := make([][]float64, 3)
	for _, x := range d.X {
		P[0] = append(P[0], sigmoid(1.5*x[0]))
		P[1] = append(P[1], 0.5)
		P[2] = append(P[2], sigmoid(-1.5*x[0]))
	}
	w := FitWeights(P, d.Y)
	var sum float64
	for _, v := range w {
		if v < 0 {
			t.Fatalf("negative weight in %v", w)
		}
		sum += v
	}
	if math.Abs(sum-1) > 1e-12 {
		t.Fatalf("weights %v sum to %v", w, sum)
	}
	if w[0] < 0.8 || w[2] > 0.05 {
		t.Fatalf("weights %v: expected most weight on the informative member", w)
	}
}

func TestProjectSimplex(t *testing.T) {
	cases := map[string]struct{ in, want []float64 }{
		"already on simplex": {[]float64{0.2, 0.3, 0.5}, []float64{0.2, 0.3, 0.5}},
		"shift down":         {[]float64{1, 1, 1}, []float64{1.0 / 3, 1.0 / 3, 1.0 / 3}},
		"clip negative":      {[]float64{2, -1, 0}, []float64{1, 0, 0}},
		"partial clip":       {[]float64{0.8, 0.6, -0.5}, []float64{0.6, 0.4, 0}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			projectSimplex(c.in)
			for i := range c.in {
				if math.Abs(c.in[i]-c.want[i]) > 1e-12 {
					t.Fatalf("got %v, want %v", c.in, c.want)
				}
			}
		})
	}
}

func TestCalibration(t *testing.T) {
	// Raw scores that are overconfident: the truth is σ(0.5·logit(p)). Platt should find
	// A ≈ 0.5; isotonic must be monotone and improve the log-loss on fresh data.
	d := signalData(t, 1, 8000, 1, 13)
	p := make([]float64, d.Len())
	for i, x := range d.X {
		p[i] = sigmoid(2 * x[0])
		d.Y[i] = b2i(sigmoid(x[0]) > float64((i*7919)%1000)/1000)
	}
	half := d.Len() / 2
	pl := FitPlatt(p[:half], d.Y[:half])
	if math.Abs(pl.A-0.5) > 0.08 || math.Abs(pl.B) > 0.1 {
		t.Errorf("Platt %+v, want A≈0.5 B≈0", pl)
	}
	iso := FitIsotonic(p[:half], d.Y[:half])
	if err := iso.validate(); err != nil {
		t.Fatal(err)
	}
	raw, cal := 0.0, 0.0
	for i := half; i < d.Len(); i++ {
		raw += logLoss(p[i], d.Y[i])
		cal += logLoss(iso.Calibrate(p[i]), d.Y[i])
	}
	if cal >= raw {
		t.Errorf("isotonic calibration did not reduce held-out log-loss: %.4f >= %.4f", cal, raw)
	}
	for q := 0.0; q < 1; q += 0.01 {
		if iso.Calibrate(q) > iso.Calibrate(q+0.01)+1e-15 {
			t.Fatalf("isotonic map decreases at %.2f", q)
		}
	}
}

func TestConfidence(t *testing.T) {
	for p, want := range map[float64]float64{0.5: 0.5, 0.7: 0.7, 0.3: 0.7, 0: 1, 1: 1} {
		if got := Confidence(p); math.Abs(got-want) > 1e-15 {
			t.Errorf("Confidence(%v) = %v, want %v", p, got, want)
		}
	}
}
