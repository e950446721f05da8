package ml

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// Calibration methods for EnsembleConfig.Calibration.
const (
	CalibrationPlatt    = "platt"
	CalibrationIsotonic = "isotonic"
	CalibrationNone     = "none"
)

// EnsembleConfig configures TrainEnsemble.
type EnsembleConfig struct {
	LogReg LogRegConfig
	GBDT   GBDTConfig
	Forest ForestConfig
	// ValFrac is the latest share of the training period held out as the validation fold:
	// it early-stops boosting and fits the blend weights and the calibrator. Members never
	// train on it.
	ValFrac float64
	// Purge drops this many bars between the fitting part and the validation fold, so no
	// fitting row's label horizon reaches into it (1 for next-bar labels).
	Purge int
	// Calibration is CalibrationPlatt, CalibrationIsotonic or CalibrationNone.
	Calibration string
}

// DefaultEnsembleConfig holds out the latest quarter of the training period and uses Platt
// calibration, which needs far fewer rows than isotonic regression to be stable.
func DefaultEnsembleConfig() EnsembleConfig {
	return EnsembleConfig{
		LogReg: DefaultLogRegConfig(), GBDT: DefaultGBDTConfig(), Forest: DefaultForestConfig(),
		ValFrac: 0.25, Purge: 1, Calibration: CalibrationPlatt,
	}
}

// Member is one named model of an ensemble.
type Member struct {
	Name  string
	Model Model
}

// Ensemble blends its members' probabilities with non-negative weights that sum to 1, then
// calibrates the blend.
type Ensemble struct {
	Members    []Member
	Weights    []float64
	Calibrator Calibrator
}

// Member names used by TrainEnsemble.
const (
	NameLogReg = "logreg"
	NameGBDT   = "gbdt"
	NameForest = "forest"
)

// PredictProba returns the calibrated P(up | x).
func (e *Ensemble) PredictProba(x []float64) float64 {
	return e.Calibrator.Calibrate(e.blend(x))
}

func (e *Ensemble) blend(x []float64) float64 {
	var p float64
	for i, m := range e.Members {
		if w := e.Weights[i]; w > 0 {
			p += w * m.Model.PredictProba(x)
		}
	}
	return p
}

// NumFeatures is the input width the model expects.
func (e *Ensemble) NumFeatures() int { return numFeatures(e.Members[0].Model) }

// TrainEnsemble trains logistic regression, boosted trees and a forest on the earlier part
// of train, then fits blend weights and the calibrator on the validation fold (the latest
// cfg.ValFrac of train's distinct times, after a purge gap). The three members train
// concurrently; each is deterministic, so the result is too.
//
// The members are not refitted on the validation fold afterwards: the weights and the
// calibrator describe exactly the models that ship.
func TrainEnsemble(train Dataset, cfg EnsembleConfig) (*Ensemble, error) {
	if err := train.Validate(); err != nil {
		return nil, err
	}
	if cfg.ValFrac <= 0 || cfg.ValFrac >= 1 || cfg.Purge < 0 {
		return nil, fmt.Errorf("%w: ensemble needs 0 < ValFrac < 1 and Purge >= 0", ErrBadInput)
	}
	pos, nt, _ := train.timeIndex()
	nVal := max(1, int(math.Round(cfg.ValFrac*float64(nt))))
	valStart := nt - nVal
	fitEnd := valStart - cfg.Purge
	var fitIdx, valIdx []int
	for i, k := range pos {
		switch {
		case k < fitEnd:
			fitIdx = append(fitIdx, i)
		case k >= valStart:
			valIdx = append(valIdx, i)
		}
	}
	const minFit, minVal = 100, 30
	if len(fitIdx) < minFit || len(valIdx) < minVal {
		return nil, fmt.Errorf("%w: %d fitting and %d validation rows; need at least %d and %d",
			ErrBadInput, len(fitIdx), len(valIdx), minFit, minVal)
	}
	fit, val := train.Subset(fitIdx), train.Subset(valIdx)

	var (
		wg            sync.WaitGroup
		lr            *LogReg
		gb            *GBDT
		rf            *Forest
		lrE, gbE, rfE error
	)
	wg.Add(3)
	go func() { defer wg.Done(); lr, lrE = TrainLogReg(fit.X, fit.Y, cfg.LogReg) }()
	go func() { defer wg.Done(); gb, gbE = TrainGBDT(fit.X, fit.Y, val.X, val.Y, cfg.GBDT) }()
	go func() { defer wg.Done(); rf, rfE = TrainForest(fit.X, fit.Y, cfg.Forest) }()
	wg.Wait()
	for _, err := range []error{lrE, gbE, rfE} {
		if err != nil {
			return nil, err
		}
	}
	e := &Ensemble{Members: []Member{{NameLogReg, lr}, {NameGBDT, gb}, {NameForest, rf}}}
	P := make([][]float64, len(e.Members))
	for j, m := range e.Members {
		P[j] = Predict(m.Model, val.X)
	}
	e.Weights = FitWeights(P, val.Y)
	blended := make([]float64, val.Len())
	for i := range blended {
		for j := range P {
			blended[i] += e.Weights[j] * P[j][i]
		}
	}
	switch cfg.Calibration {
	case CalibrationPlatt, "":
		e.Calibrator = FitPlatt(blended, val.Y)
	case CalibrationIsotonic:
		e.Calibrator = FitIsotonic(blended, val.Y)
	case CalibrationNone:
		e.Calibrator = Platt{A: 1}
	default:
		return nil, fmt.Errorf("%w: unknown calibration %q", ErrBadInput, cfg.Calibration)
	}
	return e, nil
}

// FitWeights returns non-negative weights summing to 1 that minimise the mean log-loss of
// the blend Σ w_j·P[j][i] against y. P[j] holds member j's validation predictions. The loss
// is convex in w, so projected gradient descent on the simplex (projection of Duchi et al.
// 2008, step halved until the loss falls) reaches the optimum; it starts from equal weights
// and runs a fixed number of steps, so it is deterministic.
func FitWeights(P [][]float64, y []int) []float64 {
	m := len(P)
	w := make([]float64, m)
	for j := range w {
		w[j] = 1 / float64(m)
	}
	if m == 1 || len(y) == 0 {
		return w
	}
	n := len(y)
	loss := func(w []float64) float64 {
		var s float64
		for i := 0; i < n; i++ {
			var p float64
			for j := range P {
				p += w[j] * P[j][i]
			}
			s += logLoss(p, y[i])
		}
		return s / float64(n)
	}
	grad := make([]float64, m)
	trial := make([]float64, m)
	f := loss(w)
	eta := 1.0
	for iter := 0; iter < 200; iter++ {
		clear(grad)
		for i := 0; i < n; i++ {
			var p float64
			for j := range P {
				p += w[j] * P[j][i]
			}
			p = clampProb(p)
			d := -(float64(y[i])/p - float64(1-y[i])/(1-p)) / float64(n)
			for j := range P {
				grad[j] += d * P[j][i]
			}
		}
		improved := false
		for k := 0; k < 40; k++ {
			for j := range trial {
				trial[j] = w[j] - eta*grad[j]
			}
			projectSimplex(trial)
			if ft := loss(trial); ft < f {
				done := f-ft < 1e-12
				copy(w, trial)
				f = ft
				improved = !done
				eta *= 2
				break
			}
			eta /= 2
		}
		if !improved {
			break
		}
	}
	return w
}

// projectSimplex replaces v by its Euclidean projection onto {w >= 0, Σw = 1}.
func projectSimplex(v []float64) {
	u := slices.Clone(v)
	slices.Sort(u)
	slices.Reverse(u)
	var cum, theta float64
	for i, x := range u {
		cum += x
		if t := (cum - 1) / float64(i+1); x-t > 0 {
			theta = t
		}
	}
	var s float64
	for i := range v {
		v[i] = math.Max(v[i]-theta, 0)
		s += v[i]
	}
	for i := range v {
		v[i] /= s
	}
}

// numFeatures returns a model's input width, or 0 when it does not say.
func numFeatures(m Model) int {
	if w, ok := m.(interface{ NumFeatures() int }); ok {
		return w.NumFeatures()
	}
	return 0
}
