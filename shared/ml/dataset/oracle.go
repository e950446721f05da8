package dataset

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/ml"
)

// OracleConfig describes a synthetic market whose next-bar direction has a known
// probability: P(up at t+1 | bars up to t) = sigmoid(Bias + Ret1·ret_1/σ + Ret5·ret_5/(σ√5)),
// where ret_k = close[t]/close[t-k] - 1 exactly as features.Matrix computes it and σ is the
// daily volatility. The move's size is drawn independently of its sign, so the direction is
// all there is to predict and the best possible classifier — the oracle — calls up when that
// probability is at least one half.
//
// The data are real bars run through the real feature pipeline (FromBars): the models see
// the 29 indicator columns, never the probability or its formula, and must find that two of
// the columns carry the signal while the rest are noise.
type OracleConfig struct {
	Symbols int     // independent stocks sharing the calendar
	Bars    int     // daily bars per stock
	Vol     float64 // daily volatility σ of the close-to-close log return
	Bias    float64
	Ret1    float64 // weight of the standardised 1-bar return (negative: mean reversion)
	Ret5    float64 // weight of the standardised 5-bar return (positive: momentum)
	Seed    uint64
}

// DefaultOracleConfig gives an oracle accuracy near 0.66: a strong but not trivial signal,
// so that reaching 90% of the oracle's margin over a coin flip takes real learning.
func DefaultOracleConfig() OracleConfig {
	return OracleConfig{Symbols: 8, Bars: 1500, Vol: 0.015, Bias: 0, Ret1: -0.6, Ret5: 0.8, Seed: 7}
}

var oracleStart = time.Date(2012, 1, 4, 0, 0, 0, 0, market.JST)

// OracleBars simulates one stock. pUp[i] is the true probability that bars[i+1] closes
// above bars[i], given bars[0..i]; it is NaN for the first five bars.
func OracleBars(cfg OracleConfig, symbol int) (bars []market.Bar, pUp []float64) {
	rng := rand.New(rand.NewPCG(cfg.Seed, uint64(symbol)+1))
	bars = make([]market.Bar, cfg.Bars)
	pUp = make([]float64, cfg.Bars)
	day := oracleStart
	closes := make([]float64, cfg.Bars)
	prev := 1000 + 100*float64(symbol)
	next := 0.5
	for i := range bars {
		for !market.IsTradingDay(day) {
			day = day.AddDate(0, 0, 1)
		}
		open := prev * math.Exp(0.002*rng.NormFloat64())
		size := cfg.Vol * math.Abs(rng.NormFloat64())
		if size < 1e-4 {
			size = 1e-4 // a zero move would be labelled down whatever its drawn sign
		}
		cl := prev * math.Exp(size)
		if i > 0 && rng.Float64() >= next {
			cl = prev * math.Exp(-size)
		} else if i == 0 {
			cl = open
		}
		hi := math.Max(open, cl) * (1 + 0.004*math.Abs(rng.NormFloat64()))
		lo := math.Min(open, cl) * (1 - 0.004*math.Abs(rng.NormFloat64()))
		bars[i] = market.Bar{Time: day.UTC(), Open: open, High: hi, Low: lo, Close: cl,
			Volume: math.Round(1e6 * math.Exp(0.3*rng.NormFloat64())), AdjClose: cl}
		closes[i] = cl
		pUp[i] = math.NaN()
		if i >= 5 {
			r1 := closes[i]/closes[i-1] - 1
			r5 := closes[i]/closes[i-5] - 1
			z := cfg.Bias + cfg.Ret1*r1/cfg.Vol + cfg.Ret5*r5/(cfg.Vol*math.Sqrt(5))
			pUp[i] = 1 / (1 + math.Exp(-z))
			next = pUp[i]
		}
		prev = cl
		day = day.AddDate(0, 0, 1)
	}
	return bars, pUp
}

// OracleData is an oracle market as a dataset, with the true probability of every row.
type OracleData struct {
	ml.Dataset
	P []float64 // true P(up) of each row, aligned with the dataset's rows
}

// NewOracleData simulates cfg.Symbols stocks and builds their rows with FromSymbols.
func NewOracleData(cfg OracleConfig) (OracleData, error) {
	if cfg.Symbols < 1 || cfg.Bars < 100 || !(cfg.Vol > 0) {
		return OracleData{}, fmt.Errorf("%w: oracle market needs symbols >= 1, bars >= 100, vol > 0", ml.ErrBadInput)
	}
	all := map[string][]market.Bar{}
	type key struct {
		sym string
		t   int64
	}
	truth := map[key]float64{}
	for s := range cfg.Symbols {
		name := fmt.Sprintf("ORC%02d", s)
		bars, p := OracleBars(cfg, s)
		all[name] = bars
		for i, b := range bars {
			truth[key{name, b.Time.Unix()}] = p[i]
		}
	}
	d, err := FromSymbols(all)
	if err != nil {
		return OracleData{}, err
	}
	p := make([]float64, d.Len())
	for i := range p {
		p[i] = truth[key{d.Symbol[i], d.Time[i].Unix()}]
		if math.IsNaN(p[i]) {
			return OracleData{}, fmt.Errorf("oracle: row %d has no true probability", i)
		}
	}
	return OracleData{Dataset: d, P: p}, nil
}

// OracleReport compares the walk-forward ensemble with the oracle on the same test rows.
type OracleReport struct {
	Report *ml.Report
	// Oracle scores the true probabilities on the pooled test rows, exactly as the report
	// scores the models.
	Oracle ml.Metrics
	// Expected is the oracle's expected accuracy, mean(max(p, 1-p)) over the test rows; the
	// realised Oracle.Accuracy differs from it by sampling noise only.
	Expected float64
	// MarginShare is (ensemble accuracy - 0.5) / (oracle accuracy - 0.5): the share of the
	// best possible edge over a coin flip that the ensemble captured.
	MarginShare float64
	// ExpectedShare is the same ratio against the expected oracle accuracy, free of the
	// luck of which directions the test rows happened to draw.
	ExpectedShare float64
}

// EvaluateOracle runs the walk-forward evaluation on od and scores the oracle on the same
// pooled test rows.
func EvaluateOracle(ctx context.Context, od OracleData, cfg ml.WalkForwardConfig) (*OracleReport, error) {
	rep, err := ml.WalkForward(ctx, od.Dataset, cfg)
	if err != nil {
		return nil, err
	}
	splits, err := ml.Splits(od.Dataset, cfg.Split)
	if err != nil {
		return nil, err
	}
	var p []float64
	var y []int
	var expected float64
	for _, sp := range splits { // WalkForward pools the test rows in this order
		for _, i := range sp.Test {
			p = append(p, od.P[i])
			y = append(y, od.Y[i])
			expected += ml.Confidence(od.P[i])
		}
	}
	out := &OracleReport{Report: rep, Oracle: ml.Score(p, y), Expected: expected / float64(len(p))}
	if ens, ok := rep.Result(ml.NameEnsemble); ok && out.Oracle.Accuracy > 0.5 {
		out.MarginShare = (ens.Accuracy - 0.5) / (out.Oracle.Accuracy - 0.5)
		out.ExpectedShare = (ens.Accuracy - 0.5) / (out.Expected - 0.5)
	}
	return out, nil
}
