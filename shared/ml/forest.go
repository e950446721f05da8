package ml

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
)

// ForestConfig configures TrainForest.
type ForestConfig struct {
	Trees    int
	MaxDepth int
	MinLeaf  int
	Bins     int // quantile bins per feature, 2..256
	// MaxFeatures is the number of features tried at each split; 0 means round(sqrt(d)).
	MaxFeatures int
	Seed        uint64
}

// DefaultForestConfig uses large leaves for the same reason as DefaultGBDTConfig.
func DefaultForestConfig() ForestConfig {
	return ForestConfig{Trees: 100, MaxDepth: 6, MinLeaf: 30, Bins: 32, Seed: 1}
}

// Forest is a random forest whose probability is the mean of its trees' leaf frequencies.
type Forest struct {
	Features int
	Trees    []tree
}

// NumFeatures is the input width the model expects.
func (m *Forest) NumFeatures() int { return m.Features }

// PredictProba returns P(up | x).
func (m *Forest) PredictProba(x []float64) float64 {
	var s float64
	for i := range m.Trees {
		s += m.Trees[i].predict(x)
	}
	return s / float64(len(m.Trees))
}

// TrainForest grows cfg.Trees trees on bootstrap samples with per-split feature sampling.
// Trees are grown in parallel, but tree k always draws from its own PCG stream (Seed, k), so
// the forest is the same for any number of workers.
func TrainForest(X [][]float64, y []int, cfg ForestConfig) (*Forest, error) {
	d, err := checkXY(X, y)
	if err != nil {
		return nil, err
	}
	if cfg.Trees <= 0 || cfg.MaxDepth <= 0 || cfg.MinLeaf <= 0 || cfg.Bins < 2 || cfg.Bins > 256 || cfg.MaxFeatures < 0 {
		return nil, fmt.Errorf("%w: invalid forest config %+v", ErrBadInput, cfg)
	}
	mtry := cfg.MaxFeatures
	if mtry == 0 {
		mtry = max(1, int(math.Round(math.Sqrt(float64(d)))))
	}
	n := len(X)
	all := make([]int, n)
	g := make([]float64, n)
	h := make([]float64, n)
	for i := range all {
		all[i] = i
		g[i] = -float64(y[i])
		h[i] = 1
	}
	b := fitBinner(X, all, cfg.Bins)
	cols := b.binColumns(X)

	m := &Forest{Features: d, Trees: make([]tree, cfg.Trees)}
	workers := min(runtime.GOMAXPROCS(0), cfg.Trees)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			gr := newGrower(cols, b, g, h)
			gr.maxDepth, gr.minLeaf, gr.lambda, gr.scale, gr.mtry = cfg.MaxDepth, cfg.MinLeaf, 0, 1, mtry
			counts := make([]int, n)
			idx := make([]int, 0, n)
			for k := w; k < cfg.Trees; k += workers {
				gr.rng = rand.New(rand.NewPCG(cfg.Seed, uint64(k)+1))
				for f := range gr.features { // same feature order at the start of every tree
					gr.features[f] = f
				}
				// Bootstrap by counts, so the sample comes out sorted by row.
				clear(counts)
				for j := 0; j < n; j++ {
					counts[gr.rng.IntN(n)]++
				}
				idx = idx[:0]
				for i, c := range counts {
					for ; c > 0; c-- {
						idx = append(idx, i)
					}
				}
				t := gr.grow(idx)
				t.splitBin = nil
				m.Trees[k] = t
			}
		}()
	}
	wg.Wait()
	return m, nil
}
