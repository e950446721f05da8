package ml

import (
	"errors"
	"fmt"
	"math"
)

// Model predicts the probability that the label is 1 (the next bar closes up).
type Model interface {
	PredictProba(x []float64) float64
}

var (
	_ Model = (*LogReg)(nil)
	_ Model = (*GBDT)(nil)
	_ Model = (*Forest)(nil)
	_ Model = (*Ensemble)(nil)
)

// ErrBadInput reports training data or a model document that cannot be used.
var ErrBadInput = errors.New("ml: bad input")

// Predict returns m's probability for every row of X.
func Predict(m Model, X [][]float64) []float64 {
	out := make([]float64, len(X))
	for i, x := range X {
		out[i] = m.PredictProba(x)
	}
	return out
}

// Confidence is the probability of the predicted direction: max(p, 1-p).
func Confidence(p float64) float64 { return math.Max(p, 1-p) }

// Up is the direction call for probability p; ties go up.
func Up(p float64) bool { return p >= 0.5 }

// probEps keeps logs finite; 1e-15 is the usual clip for log-loss.
const probEps = 1e-15

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

func clampProb(p float64) float64 { return math.Min(math.Max(p, probEps), 1-probEps) }

func logit(p float64) float64 {
	p = clampProb(p)
	return math.Log(p / (1 - p))
}

// logLoss is the negative log-likelihood of one label under probability p.
func logLoss(p float64, y int) float64 {
	p = clampProb(p)
	if y == 1 {
		return -math.Log(p)
	}
	return -math.Log(1 - p)
}

// checkXY validates a training matrix: at least one row, equal widths, finite values and
// binary labels. It returns the number of features.
func checkXY(X [][]float64, y []int) (int, error) {
	if len(X) == 0 {
		return 0, fmt.Errorf("%w: no rows", ErrBadInput)
	}
	if len(X) != len(y) {
		return 0, fmt.Errorf("%w: %d rows but %d labels", ErrBadInput, len(X), len(y))
	}
	d := len(X[0])
	if d == 0 {
		return 0, fmt.Errorf("%w: no features", ErrBadInput)
	}
	for i, x := range X {
		if len(x) != d {
			return 0, fmt.Errorf("%w: row %d has %d features, want %d", ErrBadInput, i, len(x), d)
		}
		for j, v := range x {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return 0, fmt.Errorf("%w: row %d feature %d is %v", ErrBadInput, i, j, v)
			}
		}
		if y[i] != 0 && y[i] != 1 {
			return 0, fmt.Errorf("%w: row %d label %d is not 0 or 1", ErrBadInput, i, y[i])
		}
	}
	return d, nil
}

// checkVal validates an optional validation set against the training width.
func checkVal(X [][]float64, y []int, d int) error {
	if len(X) == 0 && len(y) == 0 {
		return nil
	}
	vd, err := checkXY(X, y)
	if err != nil {
		return fmt.Errorf("validation set: %w", err)
	}
	if vd != d {
		return fmt.Errorf("%w: validation set has %d features, training %d", ErrBadInput, vd, d)
	}
	return nil
}
