package ml

import (
	"fmt"
	"math"
	"slices"
	"sort"
)

// Calibrator maps a raw probability to a calibrated one. It is fitted on validation
// predictions only, never on rows it will be judged on.
type Calibrator interface {
	Calibrate(p float64) float64
}

var (
	_ Calibrator = Platt{}
	_ Calibrator = (*Isotonic)(nil)
)

// Platt is logistic calibration on the log-odds: σ(A·logit(p) + B). {A: 1, B: 0} is the
// identity.
type Platt struct {
	A, B float64
}

// Calibrate applies the fitted map.
func (c Platt) Calibrate(p float64) float64 { return sigmoid(c.A*logit(p) + c.B) }

// FitPlatt fits A, B by Newton's method on log-loss, with Platt's (1999) smoothed targets
// (N₊+1)/(N₊+2) and 1/(N₋+2) so a small or one-sided validation set cannot push the map to
// 0 or 1.
func FitPlatt(p []float64, y []int) Platt {
	var npos, nneg float64
	for _, v := range y {
		if v == 1 {
			npos++
		} else {
			nneg++
		}
	}
	tPos, tNeg := (npos+1)/(npos+2), 1/(nneg+2)
	x := make([]float64, len(p))
	t := make([]float64, len(p))
	for i := range p {
		x[i] = logit(p[i])
		t[i] = tNeg
		if y[i] == 1 {
			t[i] = tPos
		}
	}
	loss := func(a, b float64) float64 {
		var s float64
		for i := range x {
			z := a*x[i] + b
			s += softplus(z) - t[i]*z
		}
		return s
	}
	a, b := 1.0, 0.0
	f := loss(a, b)
	for iter := 0; iter < 100; iter++ {
		var ga, gb, haa, hab, hbb float64
		for i := range x {
			q := sigmoid(a*x[i] + b)
			r := q - t[i]
			w := q*(1-q) + 1e-12
			ga += r * x[i]
			gb += r
			haa += w * x[i] * x[i]
			hab += w * x[i]
			hbb += w
		}
		if math.Abs(ga) < 1e-9 && math.Abs(gb) < 1e-9 {
			break
		}
		haa += 1e-9 // keeps the 2×2 system solvable when every p is the same
		det := haa*hbb - hab*hab
		if det <= 0 {
			break
		}
		da := (hbb*ga - hab*gb) / det
		db := (haa*gb - hab*ga) / det
		step, improved := 1.0, false
		for k := 0; k < 30; k++ {
			na, nb := a-step*da, b-step*db
			if fn := loss(na, nb); fn < f {
				a, b, f, improved = na, nb, fn, true
				break
			}
			step /= 2
		}
		if !improved {
			break
		}
	}
	return Platt{A: a, B: b}
}

// Isotonic is a monotone step map fitted by pool-adjacent-violators, interpolated linearly
// between the pooled blocks' mean inputs and clamped at the ends.
type Isotonic struct {
	X []float64 // ascending block means of the raw probability
	Y []float64 // non-decreasing calibrated probability at X
}

// Calibrate applies the fitted map.
func (c *Isotonic) Calibrate(p float64) float64 {
	n := len(c.X)
	if n == 0 {
		return p
	}
	if p <= c.X[0] {
		return c.Y[0]
	}
	if p >= c.X[n-1] {
		return c.Y[n-1]
	}
	k := sort.SearchFloat64s(c.X, p) // c.X[k-1] < p <= c.X[k]
	x0, x1 := c.X[k-1], c.X[k]
	return c.Y[k-1] + (c.Y[k]-c.Y[k-1])*(p-x0)/(x1-x0)
}

// FitIsotonic fits the map on validation predictions. Outputs are clipped to
// [1/(2(n+1)), 1-1/(2(n+1))]: an empirical 0 or 1 from a few rows is not a certainty.
func FitIsotonic(p []float64, y []int) *Isotonic {
	order := make([]int, len(p))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case p[a] < p[b]:
			return -1
		case p[a] > p[b]:
			return 1
		}
		return 0
	})
	type block struct{ sx, sy, n float64 }
	var blocks []block
	for k, i := range order {
		// Equal inputs start in one block, so block means come out strictly ascending.
		if k > 0 && p[i] == p[order[k-1]] {
			last := &blocks[len(blocks)-1]
			last.sx, last.sy, last.n = last.sx+p[i], last.sy+float64(y[i]), last.n+1
		} else {
			blocks = append(blocks, block{p[i], float64(y[i]), 1})
		}
		for len(blocks) > 1 {
			a, b := blocks[len(blocks)-2], blocks[len(blocks)-1]
			if a.sy/a.n < b.sy/b.n {
				break
			}
			blocks = blocks[:len(blocks)-2]
			blocks = append(blocks, block{a.sx + b.sx, a.sy + b.sy, a.n + b.n})
		}
	}
	eps := 1 / (2 * (float64(len(p)) + 1))
	c := &Isotonic{}
	for _, b := range blocks {
		c.X = append(c.X, b.sx/b.n)
		c.Y = append(c.Y, math.Min(math.Max(b.sy/b.n, eps), 1-eps))
	}
	return c
}

func (c *Isotonic) validate() error {
	if len(c.X) != len(c.Y) {
		return fmt.Errorf("%w: isotonic has %d inputs and %d outputs", ErrBadInput, len(c.X), len(c.Y))
	}
	for i := 1; i < len(c.X); i++ {
		if c.X[i] < c.X[i-1] || c.Y[i] < c.Y[i-1] {
			return fmt.Errorf("%w: isotonic map is not increasing at %d", ErrBadInput, i)
		}
	}
	return nil
}
