package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// GBDTConfig configures TrainGBDT.
type GBDTConfig struct {
	Rounds       int     // maximum number of trees
	LearningRate float64 // shrinkage applied to every leaf
	MaxDepth     int
	MinLeaf      int     // minimum rows per leaf
	Lambda       float64 // L2 penalty on leaf values
	Subsample    float64 // share of rows drawn (Bernoulli) for each tree, in (0, 1]
	Bins         int     // quantile bins per feature, 2..256
	// Patience stops boosting after this many rounds without a better validation log-loss;
	// the model keeps the trees up to the best round. 0 disables early stopping.
	Patience int
	Seed     uint64
}

// DefaultGBDTConfig is deliberately conservative: shallow trees, large leaves and strong
// shrinkage, because daily direction carries little signal and deep trees fit noise.
func DefaultGBDTConfig() GBDTConfig {
	return GBDTConfig{Rounds: 300, LearningRate: 0.05, MaxDepth: 3, MinLeaf: 40, Lambda: 1,
		Subsample: 0.8, Bins: 32, Patience: 30, Seed: 1}
}

// GBDT is a gradient-boosted tree model for binary log-loss. The learning rate is already
// folded into the leaf values.
type GBDT struct {
	Features int     // input width
	Base     float64 // initial log-odds: the training base rate
	Trees    []tree
}

// NumFeatures is the input width the model expects.
func (m *GBDT) NumFeatures() int { return m.Features }

// PredictProba returns P(up | x).
func (m *GBDT) PredictProba(x []float64) float64 {
	z := m.Base
	for i := range m.Trees {
		z += m.Trees[i].predict(x)
	}
	return sigmoid(z)
}

// TrainGBDT boosts trees on (X, y). When a validation set is given, each round is scored on
// it and training stops early after cfg.Patience rounds without improvement; the validation
// rows never contribute to bins, gradients or splits.
func TrainGBDT(X [][]float64, y []int, valX [][]float64, valY []int, cfg GBDTConfig) (*GBDT, error) {
	d, err := checkXY(X, y)
	if err != nil {
		return nil, err
	}
	if err := checkVal(valX, valY, d); err != nil {
		return nil, err
	}
	if cfg.Rounds <= 0 || cfg.LearningRate <= 0 || cfg.MaxDepth <= 0 || cfg.MinLeaf <= 0 ||
		cfg.Lambda < 0 || cfg.Subsample <= 0 || cfg.Subsample > 1 || cfg.Bins < 2 || cfg.Bins > 256 {
		return nil, fmt.Errorf("%w: invalid GBDT config %+v", ErrBadInput, cfg)
	}
	n := len(X)
	all := make([]int, n)
	pos := 0
	for i := range all {
		all[i] = i
		pos += y[i]
	}
	rate := (float64(pos) + 0.5) / (float64(n) + 1) // smoothed so one class alone stays finite
	m := &GBDT{Features: d, Base: math.Log(rate / (1 - rate))}

	b := fitBinner(X, all, cfg.Bins)
	cols := b.binColumns(X)
	var valCols [][]uint8
	if len(valX) > 0 {
		valCols = b.binColumns(valX)
	}
	F := make([]float64, n)
	valF := make([]float64, len(valX))
	for i := range F {
		F[i] = m.Base
	}
	for i := range valF {
		valF[i] = m.Base
	}
	g := make([]float64, n)
	h := make([]float64, n)
	gr := newGrower(cols, b, g, h)
	gr.maxDepth, gr.minLeaf, gr.lambda, gr.scale = cfg.MaxDepth, cfg.MinLeaf, cfg.Lambda, cfg.LearningRate
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6764_6274))
	idx := make([]int, 0, n)

	best, bestLoss, bad := 0, math.Inf(1), 0
	if len(valX) > 0 {
		bestLoss = meanLogLoss(valF, valY)
	}
	for round := 0; round < cfg.Rounds; round++ {
		for i := range F {
			p := sigmoid(F[i])
			g[i] = p - float64(y[i])
			h[i] = math.Max(p*(1-p), 1e-12)
		}
		idx = idx[:0]
		for i := 0; i < n; i++ {
			if cfg.Subsample >= 1 || rng.Float64() < cfg.Subsample {
				idx = append(idx, i)
			}
		}
		t := gr.grow(idx)
		for i := range F {
			F[i] += t.predictBinned(cols, i)
		}
		m.Trees = append(m.Trees, t)
		if len(valX) == 0 || cfg.Patience <= 0 {
			best = len(m.Trees)
			continue
		}
		for i := range valF {
			valF[i] += t.predictBinned(valCols, i)
		}
		if loss := meanLogLoss(valF, valY); loss < bestLoss-1e-12 {
			best, bestLoss, bad = len(m.Trees), loss, 0
		} else if bad++; bad >= cfg.Patience {
			break
		}
	}
	m.Trees = m.Trees[:best:best]
	for i := range m.Trees {
		m.Trees[i].splitBin = nil
	}
	return m, nil
}

// meanLogLoss of logits z against labels y.
func meanLogLoss(z []float64, y []int) float64 {
	var s float64
	for i, v := range z {
		s += logLoss(sigmoid(v), y[i])
	}
	return s / float64(len(z))
}
