package ml

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// SplitConfig describes walk-forward folds over a dataset's distinct times.
type SplitConfig struct {
	// Folds is the number of consecutive test folds.
	Folds int
	// TestFrac is the share of the distinct times covered by all test folds together; the
	// earlier 1-TestFrac of the times is the first training window.
	TestFrac float64
	// Purge drops the last Purge bars before a test fold from its training set, because
	// their labels look into the test fold (next-bar labels: a label at t uses bar t+1).
	Purge int
	// Embargo drops Embargo more bars on top of the purge. Windows expand and training
	// always precedes testing, so the embargo is a gap between training end and test start
	// (it guards against serial correlation that outlives the label horizon).
	Embargo int
}

// DefaultSplitConfig is five test folds over the later half of the data with a one-bar
// purge for next-bar labels.
func DefaultSplitConfig() SplitConfig {
	return SplitConfig{Folds: 5, TestFrac: 0.5, Purge: 1, Embargo: 0}
}

// Split is one walk-forward fold as row indices into the dataset.
type Split struct {
	Train []int
	Test  []int
}

// Splits returns chronological expanding-window folds. Rows at the same time always fall on
// the same side, so all symbols share the fold boundaries. Fold k tests the distinct times
// [s_k, s_{k+1}) and trains on times before s_k - Purge - Embargo. Rows are never shuffled.
func Splits(d Dataset, cfg SplitConfig) ([]Split, error) {
	if cfg.Folds < 1 || cfg.TestFrac <= 0 || cfg.TestFrac >= 1 || cfg.Purge < 0 || cfg.Embargo < 0 {
		return nil, fmt.Errorf("%w: invalid split config %+v", ErrBadInput, cfg)
	}
	pos, nt, _ := d.timeIndex()
	testTimes := int(math.Round(cfg.TestFrac * float64(nt)))
	first := nt - testTimes
	if testTimes < cfg.Folds || first-cfg.Purge-cfg.Embargo <= 0 {
		return nil, fmt.Errorf("%w: %d distinct times cannot hold %d test folds after a training window", ErrBadInput, nt, cfg.Folds)
	}
	bound := func(k int) int { return first + k*testTimes/cfg.Folds }
	splits := make([]Split, cfg.Folds)
	for k := range splits {
		lo, hi := bound(k), bound(k+1)
		trainEnd := lo - cfg.Purge - cfg.Embargo
		for i, t := range pos {
			switch {
			case t < trainEnd:
				splits[k].Train = append(splits[k].Train, i)
			case t >= lo && t < hi:
				splits[k].Test = append(splits[k].Test, i)
			}
		}
	}
	return splits, nil
}

// WalkForwardConfig configures WalkForward.
type WalkForwardConfig struct {
	Split    SplitConfig
	Ensemble EnsembleConfig
}

// DefaultWalkForwardConfig combines DefaultSplitConfig and DefaultEnsembleConfig.
func DefaultWalkForwardConfig() WalkForwardConfig {
	return WalkForwardConfig{Split: DefaultSplitConfig(), Ensemble: DefaultEnsembleConfig()}
}

// Baseline names in reports.
const (
	BaselineAlwaysUp  = "always-up"
	BaselinePrevDir   = "prev-direction"
	BaselineMomentum  = "momentum-20"
	NameEnsemble      = "ensemble"
	RoleEnsemble      = "ensemble"
	RoleMember        = "member"
	RoleBaseline      = "baseline"
	minRuleConfidence = 0.5 + 1e-6
)

// WalkForward trains a fresh ensemble on each fold's training rows (which it splits again
// for validation) and scores the ensemble, each member and the baselines on the test rows of
// all folds pooled. Baselines need d.Ret1 (previous direction) and d.Mom20 (momentum); each
// is skipped when its column is absent.
func WalkForward(ctx context.Context, d Dataset, cfg WalkForwardConfig) (*Report, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	splits, err := Splits(d, cfg.Split)
	if err != nil {
		return nil, err
	}
	_, _, times := d.timeIndex()
	rep := &Report{Split: cfg.Split, Symbols: distinct(d.Symbol)}
	if len(times) > 0 {
		rep.From, rep.To = times[0], times[len(times)-1]
	}
	type scored struct {
		role string
		p    []float64
	}
	preds := map[string]*scored{}
	var order []string
	add := func(name, role string, p []float64) {
		s, ok := preds[name]
		if !ok {
			s = &scored{role: role}
			preds[name] = s
			order = append(order, name)
		}
		s.p = append(s.p, p...)
	}
	var testY []int
	for k, sp := range splits {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		train, test := d.Subset(sp.Train), d.Subset(sp.Test)
		e, err := TrainEnsemble(train, cfg.Ensemble)
		if err != nil {
			return nil, fmt.Errorf("fold %d: %w", k, err)
		}
		ep := Predict(e, test.X)
		add(NameEnsemble, RoleEnsemble, ep)
		fr := FoldReport{Fold: k + 1, TrainRows: train.Len(), TestRows: test.Len(),
			Accuracy: Score(ep, test.Y).Accuracy, Weights: map[string]float64{}}
		if test.Time != nil {
			fr.TrainFrom, fr.TrainTo = slices.MinFunc(train.Time, time.Time.Compare), slices.MaxFunc(train.Time, time.Time.Compare)
			fr.TestFrom, fr.TestTo = slices.MinFunc(test.Time, time.Time.Compare), slices.MaxFunc(test.Time, time.Time.Compare)
		}
		for j, m := range e.Members {
			add(m.Name, RoleMember, Predict(m.Model, test.X))
			fr.Weights[m.Name] = e.Weights[j]
		}
		add(BaselineAlwaysUp, RoleBaseline, signRule(train.Y, nil, test.Len(), nil))
		if d.Ret1 != nil {
			add(BaselinePrevDir, RoleBaseline, signRule(train.Y, train.Ret1, test.Len(), test.Ret1))
		}
		if d.Mom20 != nil {
			add(BaselineMomentum, RoleBaseline, signRule(train.Y, train.Mom20, test.Len(), test.Mom20))
		}
		testY = append(testY, test.Y...)
		rep.Folds = append(rep.Folds, fr)
	}
	rep.Rows = len(testY)
	for _, name := range order {
		s := preds[name]
		rep.Results = append(rep.Results, Result{Name: name, Role: s.role, Metrics: Score(s.p, testY)})
	}
	return rep, nil
}

// signRule turns a sign rule (up when the signal is > 0; always up when signal is nil) into
// probabilities for n test rows. The probability of the called direction is the rule's hit
// rate on the training rows, floored just above 0.5 so the call keeps the rule's direction.
// Brier and log-loss then judge the rule as a forecaster that knows its own record, instead
// of punishing a hard 0/1 call with an unbounded log-loss.
func signRule(trainY []int, trainSignal []float64, n int, testSignal []float64) []float64 {
	var hits float64
	for i, y := range trainY {
		up := trainSignal == nil || trainSignal[i] > 0
		if up == (y == 1) {
			hits++
		}
	}
	h := minRuleConfidence
	if len(trainY) > 0 {
		h = math.Max(hits/float64(len(trainY)), minRuleConfidence)
	}
	p := make([]float64, n)
	for i := range p {
		if testSignal == nil || testSignal[i] > 0 {
			p[i] = h
		} else {
			p[i] = 1 - h
		}
	}
	return p
}

func distinct(v []string) []string {
	if v == nil {
		return nil
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return slices.Compact(s)
}
