package ml

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var day0 = time.Date(2016, 1, 4, 0, 0, 0, 0, time.UTC)

// signalData is the positive control: symbols × times rows of d standard-normal features
// where up = 1[x0 + noise > 0] with noise sd 1, so the best possible accuracy is
// 1/2 + asin(1/√2)/π = 0.75. Rows of one time share a timestamp.
func signalData(tb testing.TB, symbols, times, d int, seed uint64) Dataset {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 1))
	var ds Dataset
	for t := 0; t < times; t++ {
		for s := 0; s < symbols; s++ {
			x := make([]float64, d)
			for j := range x {
				x[j] = rng.NormFloat64()
			}
			y := 0
			if x[0]+rng.NormFloat64() > 0 {
				y = 1
			}
			ds.X = append(ds.X, x)
			ds.Y = append(ds.Y, y)
			ds.Time = append(ds.Time, day0.AddDate(0, 0, t))
			ds.Symbol = append(ds.Symbol, string(rune('A'+s)))
		}
	}
	if err := ds.Validate(); err != nil {
		tb.Fatal(err)
	}
	return ds
}

// randomWalk is a price series with i.i.d. returns, so the next return is unpredictable
// from anything known today. Features at t use returns up to and including t only:
// r_t, r_{t-1}, 5- and 10-bar sums and 10-bar volatility. Label t is 1[r_{t+1} > 0]; the
// returned dataset also carries the per-row returns r (aligned with rows) for the leak tests.
func randomWalk(tb testing.TB, n int, seed uint64) (d Dataset, r []float64) {
	tb.Helper()
	rng := rand.New(rand.NewPCG(seed, 2))
	ret := make([]float64, n+1)
	for i := range ret {
		ret[i] = 0.01 * rng.NormFloat64()
	}
	const warm = 10
	for t := warm; t < n; t++ {
		var s5, s10, ss float64
		for k := 0; k < 10; k++ {
			if k < 5 {
				s5 += ret[t-k]
			}
			s10 += ret[t-k]
			ss += ret[t-k] * ret[t-k]
		}
		d.X = append(d.X, []float64{ret[t], ret[t-1], s5, s10, math.Sqrt(ss / 10)})
		d.Y = append(d.Y, b2i(ret[t+1] > 0))
		d.Time = append(d.Time, day0.AddDate(0, 0, t))
		d.Ret1 = append(d.Ret1, ret[t])
		d.Mom20 = append(d.Mom20, s10)
		r = append(r, ret[t])
	}
	return d, r
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fastEnsemble is the default ensemble with fewer trees, for tests that train many folds.
func fastEnsemble() EnsembleConfig {
	cfg := DefaultEnsembleConfig()
	cfg.GBDT.Rounds = 100
	cfg.Forest.Trees = 40
	return cfg
}

// chanceBound is the tolerance of the leak tests: four binomial standard errors of an
// accuracy under the null p = 0.5, 4·√(0.25/n). A leak-free model exceeds it by chance with
// probability about 6e-5 per test, while a real leak moves accuracy far beyond it.
func chanceBound(n int) float64 { return 4 * math.Sqrt(0.25/float64(n)) }

func mustResult(tb testing.TB, r *Report, name string) Result {
	tb.Helper()
	res, ok := r.Result(name)
	if !ok {
		tb.Fatalf("report has no result %q", name)
	}
	return res
}
