// Command train trains the direction ensemble on a market-data provider's daily bars, writes
// the artifact and its walk-forward report, registers it in the Redis model registry and,
// when asked, promotes it. With -eval it only evaluates and prints the walk-forward table.
//
//	go run ./shared/ml/cmd/train -eval -provider csv -csv-dir ../shared/data/tse-daily
//	go run ./shared/ml/cmd/train -eval -provider oracle
//	REDIS_URL=redis://127.0.0.1:6379/0 go run ./shared/ml/cmd/train \
//	    -provider csv -csv-dir ../shared/data/tse-daily -out bin/model.json -promote
//
// Providers: synthetic (the simulated TSE), csv (a directory of <SYMBOL>.csv files; every
// file is a symbol unless -symbols says otherwise), yahoo, jquants, and oracle (a synthetic
// market whose true probability of an up move is known; -eval only, it prints how much of
// the oracle's edge the ensemble captured).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/ml"
	"github.com/day-trade/platform/shared/ml/dataset"
	"github.com/day-trade/platform/shared/ml/registry"
	"github.com/day-trade/platform/shared/store"
)

// env is the part of the configuration that comes from the environment.
type env struct {
	RedisURL      string `envconfig:"REDIS_URL"`
	JQuantsAPIKey string `envconfig:"JQUANTS_API_KEY"`
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "train:", err)
		os.Exit(1)
	}
}

type options struct {
	provider, csvDir, symbols, period string
	eval, promote, fast               bool
	out, report, note                 string
	folds                             int
	embargo                           int
	seed                              uint64
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("train", flag.ContinueOnError)
	fs.StringVar(&o.provider, "provider", "synthetic", "market data: synthetic, csv, yahoo, jquants or oracle")
	fs.StringVar(&o.csvDir, "csv-dir", "", "directory of <SYMBOL>.csv files (provider csv)")
	fs.StringVar(&o.symbols, "symbols", "", "comma-separated symbols (default: every csv file, or the ten default TSE names)")
	fs.StringVar(&o.period, "period", "", "history per symbol (default max for csv, 5y otherwise)")
	fs.BoolVar(&o.eval, "eval", false, "evaluate walk-forward and print the report table; train nothing")
	fs.BoolVar(&o.promote, "promote", false, "promote the registered version")
	fs.BoolVar(&o.fast, "fast", false, "fewer trees: a quick model for smoke tests")
	fs.StringVar(&o.out, "out", "", "write the artifact JSON here")
	fs.StringVar(&o.report, "report", "", "write the walk-forward report JSON here (the table goes to stdout)")
	fs.StringVar(&o.note, "note", "", "note stored with the registered version")
	fs.IntVar(&o.folds, "folds", 5, "walk-forward test folds")
	fs.IntVar(&o.embargo, "embargo", 0, "bars of embargo after the one-bar purge")
	fs.Uint64Var(&o.seed, "seed", dataset.DefaultOracleConfig().Seed, "random seed of the oracle market")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var e env
	if err := envconfig.Process("", &e); err != nil {
		return err
	}

	wf := ml.DefaultWalkForwardConfig()
	wf.Split.Folds, wf.Split.Embargo = o.folds, o.embargo
	if o.fast {
		wf.Ensemble.GBDT.Rounds, wf.Ensemble.Forest.Trees = 60, 30
	}
	started := time.Now()
	if o.provider == "oracle" {
		if !o.eval {
			return errors.New("the oracle market is for -eval only: a model of it is useless for real symbols")
		}
		return evalOracle(ctx, o.seed, wf, stdout, started)
	}

	provider, symbols, period, err := source(o, e)
	if err != nil {
		return err
	}
	tr, err := registry.Train(ctx, registry.TrainConfig{
		Provider: provider, Symbols: symbols, Period: period, Evaluate: true, WalkForward: wf,
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, tr.Report.Table())
	fmt.Fprintf(stdout, "rows %d; fetch %s, walk-forward %s, final training %s; total %s\n",
		tr.Rows, round(tr.Fetch), round(tr.Evaluation), round(tr.Training), round(time.Since(started)))
	if o.report != "" {
		if err := writeJSON(o.report, tr.Report); err != nil {
			return err
		}
	}
	if o.eval {
		return nil
	}
	if o.out != "" {
		if err := writeJSON(o.out, tr.Artifact); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "artifact written to %s\n", o.out)
	}
	if e.RedisURL == "" {
		fmt.Fprintln(stdout, "REDIS_URL is not set: the model was not registered")
		if o.promote {
			return errors.New("-promote needs REDIS_URL")
		}
		return nil
	}
	rdb, err := store.Open(e.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	reg := registry.New(rdb, store.NewKeys("ml"))
	v, err := reg.Register(ctx, tr.Artifact, registry.Meta{Source: o.provider, Note: o.note})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "registered %s (artifact %s, %d bytes)\n", v.Version, v.ArtifactHash[:12], v.ArtifactSize)
	if o.promote {
		if _, err := reg.Promote(ctx, v.Version); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "promoted %s\n", v.Version)
	}
	return nil
}

// source builds the provider and the symbol list the options ask for.
func source(o options, e env) (market.Provider, []string, market.Period, error) {
	var symbols []string
	if o.symbols != "" {
		for s := range strings.SplitSeq(o.symbols, ",") {
			sym, err := market.ParseSymbol(s)
			if err != nil {
				return nil, nil, "", err
			}
			symbols = append(symbols, sym)
		}
	}
	period := market.Period(o.period)
	if period != "" {
		if _, err := market.ParsePeriod(o.period); err != nil {
			return nil, nil, "", err
		}
	}
	opts := market.Options{CSVDir: o.csvDir, JQuantsAPIKey: e.JQuantsAPIKey}
	if o.provider == market.ProviderCSV {
		if period == "" {
			period = "max"
		}
		if symbols == nil {
			files, err := filepath.Glob(filepath.Join(o.csvDir, "*.csv"))
			if err != nil || len(files) == 0 {
				return nil, nil, "", fmt.Errorf("no *.csv files in %q", o.csvDir)
			}
			for _, f := range files {
				symbols = append(symbols, strings.TrimSuffix(filepath.Base(f), ".csv"))
			}
			slices.Sort(symbols)
		}
	}
	p, err := market.New(o.provider, opts)
	if err != nil {
		return nil, nil, "", err
	}
	return p, symbols, period, nil
}

func evalOracle(ctx context.Context, seed uint64, wf ml.WalkForwardConfig, stdout io.Writer, started time.Time) error {
	oc := dataset.DefaultOracleConfig()
	oc.Seed = seed
	od, err := dataset.NewOracleData(oc)
	if err != nil {
		return err
	}
	r, err := dataset.EvaluateOracle(ctx, od, wf)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, r.Report.Table())
	ens, _ := r.Report.Result(ml.NameEnsemble)
	fmt.Fprintf(stdout, "oracle (true P(up)) on the same test rows: accuracy %.4f (expected %.4f), bal.acc %.4f, AUC %.4f, Brier %.4f\n",
		r.Oracle.Accuracy, r.Expected, r.Oracle.BalancedAccuracy, r.Oracle.AUC, r.Oracle.Brier)
	fmt.Fprintf(stdout, "ensemble accuracy %.4f: %.1f%% of the oracle's realised margin over 0.5 (%.4f), %.1f%% of its expected margin (%.4f); total %s\n",
		ens.Accuracy, 100*r.MarginShare, r.Oracle.Accuracy-0.5, 100*r.ExpectedShare, r.Expected-0.5, round(time.Since(started)))
	return nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
