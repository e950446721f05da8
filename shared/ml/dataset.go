package ml

import (
	"fmt"
	"slices"
	"time"
)

// Dataset is a labelled design matrix whose rows carry a timestamp, so rows from several
// symbols share the same chronological fold boundaries.
type Dataset struct {
	X [][]float64
	Y []int // 1 = up, 0 = down
	// Time of each row (the bar the features were computed at). When nil, row order is time.
	Time   []time.Time
	Symbol []string // optional, for reports
	// Ret1 and Mom20 feed the previous-direction and 20-bar momentum baselines: the last
	// bar's return and the 20-bar return known at the row's time. Optional.
	Ret1  []float64
	Mom20 []float64
}

// Len is the number of rows.
func (d Dataset) Len() int { return len(d.Y) }

// Validate checks that every column has one entry per row and that X and Y are usable.
func (d Dataset) Validate() error {
	if _, err := checkXY(d.X, d.Y); err != nil {
		return err
	}
	n := len(d.Y)
	for name, l := range map[string]int{"Time": len(d.Time), "Symbol": len(d.Symbol), "Ret1": len(d.Ret1), "Mom20": len(d.Mom20)} {
		if l != 0 && l != n {
			return fmt.Errorf("%w: %s has %d entries for %d rows", ErrBadInput, name, l, n)
		}
	}
	return nil
}

// Subset returns the rows idx, in that order. Rows are shared, not copied.
func (d Dataset) Subset(idx []int) Dataset {
	var s Dataset
	s.X = make([][]float64, len(idx))
	s.Y = make([]int, len(idx))
	for k, i := range idx {
		s.X[k], s.Y[k] = d.X[i], d.Y[i]
	}
	s.Time = pick(d.Time, idx)
	s.Symbol = pick(d.Symbol, idx)
	s.Ret1 = pick(d.Ret1, idx)
	s.Mom20 = pick(d.Mom20, idx)
	return s
}

func pick[T any](v []T, idx []int) []T {
	if v == nil {
		return nil
	}
	out := make([]T, len(idx))
	for k, i := range idx {
		out[k] = v[i]
	}
	return out
}

// Concat joins datasets (typically one per symbol) and orders the rows by time, keeping the
// input order among rows with equal times. Every input must have Time set; optional columns
// are kept only when every input has them.
func Concat(ds ...Dataset) (Dataset, error) {
	var all Dataset
	has := func(f func(Dataset) int) bool {
		for _, d := range ds {
			if f(d) == 0 && d.Len() > 0 {
				return false
			}
		}
		return true
	}
	hasSym := has(func(d Dataset) int { return len(d.Symbol) })
	hasRet := has(func(d Dataset) int { return len(d.Ret1) })
	hasMom := has(func(d Dataset) int { return len(d.Mom20) })
	for k, d := range ds {
		if err := d.Validate(); err != nil {
			return Dataset{}, fmt.Errorf("dataset %d: %w", k, err)
		}
		if len(d.Time) == 0 {
			return Dataset{}, fmt.Errorf("%w: dataset %d has no times", ErrBadInput, k)
		}
		all.X = append(all.X, d.X...)
		all.Y = append(all.Y, d.Y...)
		all.Time = append(all.Time, d.Time...)
		if hasSym {
			all.Symbol = append(all.Symbol, d.Symbol...)
		}
		if hasRet {
			all.Ret1 = append(all.Ret1, d.Ret1...)
		}
		if hasMom {
			all.Mom20 = append(all.Mom20, d.Mom20...)
		}
	}
	idx := make([]int, all.Len())
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return all.Time[a].Compare(all.Time[b]) })
	return all.Subset(idx), nil
}

// timeIndex ranks each row's time among the distinct times: rows at the k-th distinct
// time get k. It returns the ranks, the number of distinct times and those times (nil when
// the dataset has no Time column, in which case rank = row index).
func (d Dataset) timeIndex() ([]int, int, []time.Time) {
	n := d.Len()
	pos := make([]int, n)
	if d.Time == nil {
		for i := range pos {
			pos[i] = i
		}
		return pos, n, nil
	}
	uniq := slices.Clone(d.Time)
	slices.SortFunc(uniq, func(a, b time.Time) int { return a.Compare(b) })
	uniq = slices.CompactFunc(uniq, func(a, b time.Time) bool { return a.Equal(b) })
	for i, t := range d.Time {
		k, _ := slices.BinarySearchFunc(uniq, t, func(a, b time.Time) int { return a.Compare(b) })
		pos[i] = k
	}
	return pos, len(uniq), uniq
}
