package ml

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
)

// binner maps each feature to at most 256 quantile bins fitted on training rows. A value
// falls in bin b when it is <= edges[b] and > edges[b-1]; above the last edge (and NaN) is
// the last bin. So "bin <= b" on binned data equals "x <= edges[b]" on raw data, and trees
// grown on bins predict from raw values with float thresholds.
type binner struct {
	edges [][]float64
}

func fitBinner(X [][]float64, rows []int, maxBins int) binner {
	d := len(X[0])
	b := binner{edges: make([][]float64, d)}
	vals := make([]float64, len(rows))
	for f := 0; f < d; f++ {
		for k, i := range rows {
			vals[k] = X[i][f]
		}
		slices.Sort(vals)
		n := len(vals)
		var edges []float64
		for q := 1; q < maxBins; q++ {
			e := vals[q*n/maxBins]
			if e >= vals[n-1] { // an edge at the maximum would leave the right side empty
				break
			}
			if len(edges) == 0 || e > edges[len(edges)-1] {
				edges = append(edges, e)
			}
		}
		b.edges[f] = edges
	}
	return b
}

func (b binner) nbins(f int) int { return len(b.edges[f]) + 1 }

// binColumns returns the bin of every row of X, one column per feature.
func (b binner) binColumns(X [][]float64) [][]uint8 {
	cols := make([][]uint8, len(b.edges))
	for f, edges := range b.edges {
		col := make([]uint8, len(X))
		for i, x := range X {
			col[i] = uint8(sort.SearchFloat64s(edges, x[f]))
		}
		cols[f] = col
	}
	return cols
}

// node is one tree node; Feature < 0 marks a leaf. Rows with x[Feature] <= Threshold go Left.
type node struct {
	Feature   int     `json:"f"`
	Threshold float64 `json:"t,omitempty"`
	Left      int     `json:"l,omitempty"`
	Right     int     `json:"r,omitempty"`
	Value     float64 `json:"v,omitempty"`
}

// tree is a binary regression tree stored as a flat node list with the root at 0.
type tree struct {
	Nodes []node `json:"nodes"`
	// splitBin is the bin index of each split, used during training only.
	splitBin []uint8
}

func (t *tree) predict(x []float64) float64 {
	i := 0
	for {
		n := &t.Nodes[i]
		if n.Feature < 0 {
			return n.Value
		}
		if x[n.Feature] <= n.Threshold {
			i = n.Left
		} else {
			i = n.Right
		}
	}
}

// predictBinned walks the tree on row i of binned columns.
func (t *tree) predictBinned(cols [][]uint8, i int) float64 {
	k := 0
	for {
		n := &t.Nodes[k]
		if n.Feature < 0 {
			return n.Value
		}
		if cols[n.Feature][i] <= t.splitBin[k] {
			k = n.Left
		} else {
			k = n.Right
		}
	}
}

// validate checks a decoded tree: children point forward (so walks end) and features are in
// range.
func (t *tree) validate(d int) error {
	if len(t.Nodes) == 0 {
		return fmt.Errorf("%w: empty tree", ErrBadInput)
	}
	for i, n := range t.Nodes {
		if n.Feature < 0 {
			continue
		}
		if n.Feature >= d {
			return fmt.Errorf("%w: node %d uses feature %d of %d", ErrBadInput, i, n.Feature, d)
		}
		if n.Left <= i || n.Right <= i || n.Left >= len(t.Nodes) || n.Right >= len(t.Nodes) {
			return fmt.Errorf("%w: node %d has bad children %d, %d", ErrBadInput, i, n.Left, n.Right)
		}
	}
	return nil
}

// grower builds one tree from per-row gradients g and hessians h by histogram splits with
// the second-order gain of XGBoost (Chen & Guestrin 2016, eq. 7). With g = -y, h = 1 and
// lambda = 0 the gain is the variance (Gini) reduction and a leaf holds the mean label,
// which is what the random forest uses.
type grower struct {
	cols     [][]uint8
	binner   binner
	g, h     []float64
	maxDepth int
	minLeaf  int
	lambda   float64
	scale    float64 // multiplies leaf values (the learning rate for boosting)
	mtry     int     // features tried per node; 0 means all
	rng      *rand.Rand

	features []int
	histG    []float64
	histH    []float64
	histN    []int
	tree     tree
}

func newGrower(cols [][]uint8, b binner, g, h []float64) *grower {
	d := len(cols)
	gr := &grower{cols: cols, binner: b, g: g, h: h, features: make([]int, d),
		histG: make([]float64, 256), histH: make([]float64, 256), histN: make([]int, 256)}
	for f := range gr.features {
		gr.features[f] = f
	}
	return gr
}

// grow builds a tree on rows idx, which it reorders in place.
func (gr *grower) grow(idx []int) tree {
	gr.tree = tree{}
	gr.build(idx, 0)
	t := gr.tree
	gr.tree = tree{}
	return t
}

func (gr *grower) build(idx []int, depth int) int {
	var G, H float64
	for _, i := range idx {
		G += gr.g[i]
		H += gr.h[i]
	}
	self := len(gr.tree.Nodes)
	gr.tree.Nodes = append(gr.tree.Nodes, node{Feature: -1, Value: gr.scale * -G / (H + gr.lambda)})
	gr.tree.splitBin = append(gr.tree.splitBin, 0)
	if depth >= gr.maxDepth || len(idx) < 2*gr.minLeaf {
		return self
	}
	feats := gr.features
	if gr.mtry > 0 && gr.mtry < len(feats) {
		// Partial Fisher–Yates: the first mtry entries become a uniform sample.
		for k := 0; k < gr.mtry; k++ {
			j := k + gr.rng.IntN(len(feats)-k)
			feats[k], feats[j] = feats[j], feats[k]
		}
		feats = feats[:gr.mtry]
	}
	parent := G * G / (H + gr.lambda)
	bestGain, bestF, bestB := 1e-12, -1, 0
	for _, f := range feats {
		nb := gr.binner.nbins(f)
		if nb < 2 {
			continue
		}
		hg, hh, hn := gr.histG[:nb], gr.histH[:nb], gr.histN[:nb]
		clear(hg)
		clear(hh)
		clear(hn)
		col := gr.cols[f]
		for _, i := range idx {
			b := col[i]
			hg[b] += gr.g[i]
			hh[b] += gr.h[i]
			hn[b]++
		}
		var GL, HL float64
		NL := 0
		for b := 0; b < nb-1; b++ {
			GL += hg[b]
			HL += hh[b]
			NL += hn[b]
			if NL < gr.minLeaf {
				continue
			}
			NR := len(idx) - NL
			if NR < gr.minLeaf {
				break
			}
			GR, HR := G-GL, H-HL
			gain := GL*GL/(HL+gr.lambda) + GR*GR/(HR+gr.lambda) - parent
			// Strictly greater keeps the first best split, so ties break the same way every run.
			if gain > bestGain {
				bestGain, bestF, bestB = gain, f, b
			}
		}
	}
	if bestF < 0 {
		return self
	}
	col := gr.cols[bestF]
	// Stable in-place partition keeps each side's rows ascending for cache-friendly scans.
	left := 0
	right := make([]int, 0, len(idx))
	for _, i := range idx {
		if col[i] <= uint8(bestB) {
			idx[left] = i
			left++
		} else {
			right = append(right, i)
		}
	}
	copy(idx[left:], right)
	l := gr.build(idx[:left], depth+1)
	r := gr.build(idx[left:], depth+1)
	gr.tree.Nodes[self] = node{Feature: bestF, Threshold: gr.binner.edges[bestF][bestB], Left: l, Right: r}
	gr.tree.splitBin[self] = uint8(bestB)
	return self
}
