package ml

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/day-trade/platform/shared/market"
)

// Report is the outcome of a walk-forward evaluation. Every number in it was computed from
// out-of-sample predictions; none is configured.
type Report struct {
	Rows    int          `json:"rows"` // test rows scored, all folds pooled
	Symbols []string     `json:"symbols,omitempty"`
	From    time.Time    `json:"from"`
	To      time.Time    `json:"to"`
	Split   SplitConfig  `json:"split"`
	Folds   []FoldReport `json:"folds"`
	// Results lists the ensemble, then its members, then the baselines.
	Results []Result `json:"results"`
}

// FoldReport describes one walk-forward fold.
type FoldReport struct {
	Fold      int                `json:"fold"`
	TrainRows int                `json:"train_rows"`
	TestRows  int                `json:"test_rows"`
	TrainFrom time.Time          `json:"train_from"`
	TrainTo   time.Time          `json:"train_to"`
	TestFrom  time.Time          `json:"test_from"`
	TestTo    time.Time          `json:"test_to"`
	Accuracy  float64            `json:"ensemble_accuracy"`
	Weights   map[string]float64 `json:"weights"`
}

// Result is the pooled out-of-sample score of one model or baseline.
type Result struct {
	Name string `json:"name"`
	Role string `json:"role"` // RoleEnsemble, RoleMember or RoleBaseline
	Metrics
}

// Result returns the result named name.
func (r *Report) Result(name string) (Result, bool) {
	for _, res := range r.Results {
		if res.Name == name {
			return res, true
		}
	}
	return Result{}, false
}

// Table renders the report as aligned text: a line per model, the folds, and the
// ensemble's reliability by confidence decile.
func (r *Report) Table() string {
	var b strings.Builder
	day := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		// Daily bars are stamped at midnight JST, which is the previous day in UTC: print
		// the trading day the bar is for.
		return t.In(market.JST).Format(time.DateOnly)
	}
	fmt.Fprintf(&b, "walk-forward: %d test rows, %d folds, purge %d, embargo %d, data %s..%s",
		r.Rows, len(r.Folds), r.Split.Purge, r.Split.Embargo, day(r.From), day(r.To))
	if len(r.Symbols) > 0 {
		fmt.Fprintf(&b, ", symbols %s", strings.Join(r.Symbols, " "))
	}
	b.WriteString("\n\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "model\trole\tn\taccuracy\t±se\tbal.acc\tAUC\tBrier\tlog-loss\t")
	for _, res := range r.Results {
		fmt.Fprintf(w, "%s\t%s\t%d\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t%.4f\t\n", res.Name, res.Role, res.N,
			res.Accuracy, res.AccuracySE, res.BalancedAccuracy, res.AUC, res.Brier, res.LogLoss)
	}
	w.Flush()
	b.WriteString("\nfolds (ensemble):\n")
	w = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "fold\ttrain\ttest\ttest from\ttest to\taccuracy\tweights\t")
	for _, f := range r.Folds {
		fmt.Fprintf(w, "%d\t%d\t%d\t%s\t%s\t%.4f\tlogreg %.2f gbdt %.2f forest %.2f\t\n", f.Fold, f.TrainRows, f.TestRows,
			day(f.TestFrom), day(f.TestTo), f.Accuracy, f.Weights[NameLogReg], f.Weights[NameGBDT], f.Weights[NameForest])
	}
	w.Flush()
	if ens, ok := r.Result(NameEnsemble); ok {
		b.WriteString("\nensemble accuracy by confidence decile:\n")
		w = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(w, "decile\tn\tmean conf\taccuracy\t")
		for _, bk := range ens.Reliability {
			fmt.Fprintf(w, "%d\t%d\t%.4f\t%.4f\t\n", bk.Bucket, bk.N, bk.MeanConfidence, bk.Accuracy)
		}
		w.Flush()
	}
	return b.String()
}
