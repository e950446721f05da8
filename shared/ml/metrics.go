package ml

import (
	"math"
	"slices"
)

// Metrics scores probabilities of up against binary labels. All fields are finite, so a
// Metrics always encodes as JSON.
type Metrics struct {
	N int `json:"n"`
	// UpRate is the share of up labels, which is also the accuracy of always-up.
	UpRate float64 `json:"up_rate"`
	// Accuracy of the call p >= 0.5 → up, and its binomial standard error √(a(1-a)/n).
	Accuracy   float64 `json:"accuracy"`
	AccuracySE float64 `json:"accuracy_se"`
	// BalancedAccuracy is the mean of the recall of up and of down (over the classes present).
	BalancedAccuracy float64 `json:"balanced_accuracy"`
	// AUC is the rank (Mann–Whitney) AUC with ties counted half; 0.5 when a class is absent.
	AUC     float64 `json:"auc"`
	Brier   float64 `json:"brier"`
	LogLoss float64 `json:"log_loss"`
	// Reliability is accuracy by confidence decile, least confident first.
	Reliability []Bucket `json:"reliability"`
}

// Bucket is one confidence decile of a reliability table.
type Bucket struct {
	Bucket         int     `json:"bucket"` // 1 = least confident tenth of the rows
	N              int     `json:"n"`
	MeanConfidence float64 `json:"mean_confidence"`
	Accuracy       float64 `json:"accuracy"`
}

// Score computes Metrics for probabilities p against labels y (1 = up).
func Score(p []float64, y []int) Metrics {
	n := len(y)
	m := Metrics{N: n, AUC: 0.5}
	if n == 0 {
		return m
	}
	var correct, pos, tp, tn float64
	for i, v := range p {
		up := Up(v)
		if y[i] == 1 {
			pos++
			if up {
				tp++
			}
		} else if !up {
			tn++
		}
		if up == (y[i] == 1) {
			correct++
		}
		d := v - float64(y[i])
		m.Brier += d * d
		m.LogLoss += logLoss(v, y[i])
	}
	fn := float64(n)
	neg := fn - pos
	m.UpRate = pos / fn
	m.Accuracy = correct / fn
	m.AccuracySE = math.Sqrt(m.Accuracy * (1 - m.Accuracy) / fn)
	m.Brier /= fn
	m.LogLoss /= fn
	switch {
	case pos > 0 && neg > 0:
		m.BalancedAccuracy = (tp/pos + tn/neg) / 2
	case pos > 0:
		m.BalancedAccuracy = tp / pos
	default:
		m.BalancedAccuracy = tn / neg
	}
	m.AUC = AUC(p, y)
	m.Reliability = reliability(p, y, 10)
	return m
}

// AUC is the probability that a random up row scores higher than a random down row, ties
// counting one half, computed from average ranks in O(n log n). It is 0.5 when either class
// is absent.
func AUC(score []float64, y []int) float64 {
	n := len(score)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(a, b int) int {
		switch {
		case score[a] < score[b]:
			return -1
		case score[a] > score[b]:
			return 1
		}
		return 0
	})
	var rankSumPos, pos float64
	for i := 0; i < n; {
		j := i
		for j < n && score[idx[j]] == score[idx[i]] {
			j++
		}
		avg := float64(i+j+1) / 2 // mean of 1-based ranks i+1..j
		for k := i; k < j; k++ {
			if y[idx[k]] == 1 {
				rankSumPos += avg
				pos++
			}
		}
		i = j
	}
	neg := float64(n) - pos
	if pos == 0 || neg == 0 {
		return 0.5
	}
	return (rankSumPos - pos*(pos+1)/2) / (pos * neg)
}

// reliability splits rows into k equal-count buckets by confidence. Quantile buckets rather
// than fixed widths, because a weak but calibrated model's confidences crowd just above 0.5.
func reliability(p []float64, y []int, k int) []Bucket {
	n := len(p)
	if n < k {
		k = n
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		ca, cb := Confidence(p[a]), Confidence(p[b])
		switch {
		case ca < cb:
			return -1
		case ca > cb:
			return 1
		}
		return 0
	})
	out := make([]Bucket, 0, k)
	for b := 0; b < k; b++ {
		lo, hi := b*n/k, (b+1)*n/k
		var conf, correct float64
		for _, i := range idx[lo:hi] {
			conf += Confidence(p[i])
			if Up(p[i]) == (y[i] == 1) {
				correct++
			}
		}
		cnt := float64(hi - lo)
		out = append(out, Bucket{Bucket: b + 1, N: hi - lo, MeanConfidence: conf / cnt, Accuracy: correct / cnt})
	}
	return out
}
