// Package ml trains and evaluates the direction models: L2-regularised logistic regression,
// gradient-boosted trees, a random forest, and a calibrated ensemble of the three.
//
// The package works on plain matrices (X [][]float64, y []int with 1 = up) and knows nothing
// about bars or indicators; shared/ml/dataset builds a Dataset from bars with shared/features.
//
// Every number it reports is computed by walk-forward evaluation (chronological, expanding
// window, purge and embargo, never shuffled) and sits beside naive baselines. Honest accuracy
// for daily direction on real stocks is in the low-to-mid 50s percent; a result above 60% on
// real data is treated as a leak until proven otherwise.
//
// Training is deterministic for a given seed: every random draw comes from a seeded PCG and
// parallel work is split so that its result does not depend on scheduling.
package ml
