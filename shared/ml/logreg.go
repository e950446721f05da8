package ml

import (
	"fmt"
	"math"
)

// LogRegConfig configures TrainLogReg.
type LogRegConfig struct {
	// Lambda is the L2 penalty on the standardised weights (never the intercept). The
	// objective is mean log-loss + Lambda/2·‖w‖².
	Lambda float64
	// MaxIter caps the Newton iterations; 10–20 are usually enough because the objective is
	// smooth and strictly convex.
	MaxIter int
	// Tol stops training when the largest gradient component falls below it.
	Tol float64
}

// DefaultLogRegConfig is a mild penalty suited to ~30 correlated indicator features.
func DefaultLogRegConfig() LogRegConfig {
	return LogRegConfig{Lambda: 0.01, MaxIter: 50, Tol: 1e-7}
}

// LogReg is a logistic regression on inputs standardised with the training set's mean and
// standard deviation, which the model carries so prediction needs nothing else.
type LogReg struct {
	Mean    []float64
	Std     []float64
	Weights []float64
	Bias    float64
}

// NumFeatures is the input width the model expects.
func (m *LogReg) NumFeatures() int { return len(m.Weights) }

// PredictProba returns P(up | x). A NaN input counts as the training mean.
func (m *LogReg) PredictProba(x []float64) float64 {
	z := m.Bias
	for j, w := range m.Weights {
		v := (x[j] - m.Mean[j]) / m.Std[j]
		if math.IsNaN(v) {
			continue
		}
		z += w * v
	}
	return sigmoid(z)
}

// TrainLogReg fits the model by damped Newton's method (iteratively reweighted least
// squares with a backtracking line search). With a few dozen features the Hessian is tiny,
// so Newton converges in far fewer passes over the data than gradient descent or L-BFGS, and
// it needs nothing outside the standard library.
func TrainLogReg(X [][]float64, y []int, cfg LogRegConfig) (*LogReg, error) {
	d, err := checkXY(X, y)
	if err != nil {
		return nil, err
	}
	if cfg.Lambda < 0 || cfg.MaxIter <= 0 {
		return nil, fmt.Errorf("%w: logreg needs Lambda >= 0 and MaxIter > 0", ErrBadInput)
	}
	n := len(X)
	mean := make([]float64, d)
	std := make([]float64, d)
	for _, x := range X {
		for j, v := range x {
			mean[j] += v
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for _, x := range X {
		for j, v := range x {
			std[j] += (v - mean[j]) * (v - mean[j])
		}
	}
	for j := range std {
		std[j] = math.Sqrt(std[j] / float64(n))
		if std[j] < 1e-12 { // a constant feature: standardises to 0 and so carries no weight
			std[j] = 1
		}
	}
	// Z holds [1, z_1..z_d] per row, flat, so the intercept is parameter 0.
	p := d + 1
	Z := make([]float64, n*p)
	for i, x := range X {
		row := Z[i*p : (i+1)*p]
		row[0] = 1
		for j, v := range x {
			row[j+1] = (v - mean[j]) / std[j]
		}
	}
	theta := make([]float64, p)
	grad := make([]float64, p)
	hess := make([]float64, p*p)
	step := make([]float64, p)
	trial := make([]float64, p)
	s := make([]float64, n)

	objective := func(th []float64) float64 {
		var loss float64
		for i := 0; i < n; i++ {
			z := dot(Z[i*p:(i+1)*p], th)
			loss += softplus(z) - float64(y[i])*z
		}
		loss /= float64(n)
		for j := 1; j < p; j++ {
			loss += cfg.Lambda / 2 * th[j] * th[j]
		}
		return loss
	}

	f := objective(theta)
	for iter := 0; iter < cfg.MaxIter; iter++ {
		clear(grad)
		clear(hess)
		for i := 0; i < n; i++ {
			row := Z[i*p : (i+1)*p]
			pi := sigmoid(dot(row, theta))
			r := pi - float64(y[i])
			w := pi * (1 - pi)
			s[i] = w
			for a := 0; a < p; a++ {
				grad[a] += r * row[a]
				wa := w * row[a]
				h := hess[a*p : a*p+p]
				for b := 0; b <= a; b++ {
					h[b] += wa * row[b]
				}
			}
		}
		inv := 1 / float64(n)
		maxG := 0.0
		for a := 0; a < p; a++ {
			grad[a] *= inv
			if a > 0 {
				grad[a] += cfg.Lambda * theta[a]
			}
			maxG = math.Max(maxG, math.Abs(grad[a]))
			for b := 0; b <= a; b++ {
				hess[a*p+b] *= inv
				hess[b*p+a] = hess[a*p+b]
			}
			if a > 0 {
				hess[a*p+a] += cfg.Lambda
			}
		}
		if maxG < cfg.Tol {
			break
		}
		if !solveSPD(hess, grad, step, p) {
			break
		}
		// Backtracking (Armijo) keeps every accepted step a decrease of the objective.
		slope := dot(grad, step)
		t := 1.0
		accepted := false
		for k := 0; k < 30; k++ {
			for j := range trial {
				trial[j] = theta[j] - t*step[j]
			}
			ft := objective(trial)
			if ft <= f-1e-4*t*slope {
				copy(theta, trial)
				f = ft
				accepted = true
				break
			}
			t /= 2
		}
		if !accepted {
			break
		}
	}
	return &LogReg{Mean: mean, Std: std, Weights: append([]float64(nil), theta[1:]...), Bias: theta[0]}, nil
}

func dot(a, b []float64) float64 {
	var s float64
	for i := range a {
		s += a[i] * b[i]
	}
	return s
}

// softplus is log(1+e^z) without overflow.
func softplus(z float64) float64 {
	if z > 0 {
		return z + math.Log1p(math.Exp(-z))
	}
	return math.Log1p(math.Exp(z))
}

// solveSPD solves A x = b for a symmetric positive-definite p×p matrix by Cholesky, adding a
// small ridge when A is numerically singular (e.g. Lambda = 0 on separable data).
func solveSPD(A, b, x []float64, p int) bool {
	L := make([]float64, p*p)
	for jitter := 0.0; jitter <= 1e-3; jitter = math.Max(jitter*100, 1e-10) {
		if cholesky(A, L, p, jitter) {
			// Forward then back substitution.
			for i := 0; i < p; i++ {
				s := b[i]
				for k := 0; k < i; k++ {
					s -= L[i*p+k] * x[k]
				}
				x[i] = s / L[i*p+i]
			}
			for i := p - 1; i >= 0; i-- {
				s := x[i]
				for k := i + 1; k < p; k++ {
					s -= L[k*p+i] * x[k]
				}
				x[i] = s / L[i*p+i]
			}
			return true
		}
	}
	return false
}

func cholesky(A, L []float64, p int, jitter float64) bool {
	clear(L)
	for i := 0; i < p; i++ {
		for j := 0; j <= i; j++ {
			s := A[i*p+j]
			if i == j {
				s += jitter
			}
			for k := 0; k < j; k++ {
				s -= L[i*p+k] * L[j*p+k]
			}
			if i == j {
				if s <= 0 {
					return false
				}
				L[i*p+i] = math.Sqrt(s)
			} else {
				L[i*p+j] = s / L[j*p+j]
			}
		}
	}
	return true
}
