package ml

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// trainedModels returns one trained model of every kind, plus an isotonic-calibrated
// ensemble, on the positive-control data.
func trainedModels(t testing.TB) (map[string]Model, Dataset) {
	t.Helper()
	d := signalData(t, 2, 300, 6, 61)
	lr, err := TrainLogReg(d.X, d.Y, DefaultLogRegConfig())
	if err != nil {
		t.Fatal(err)
	}
	gb, err := TrainGBDT(d.X, d.Y, nil, nil, GBDTConfig{Rounds: 30, LearningRate: 0.1, MaxDepth: 3, MinLeaf: 20, Lambda: 1, Subsample: 0.8, Bins: 32, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	rf, err := TrainForest(d.X, d.Y, ForestConfig{Trees: 20, MaxDepth: 5, MinLeaf: 10, Bins: 32, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ens, err := TrainEnsemble(d, fastEnsemble())
	if err != nil {
		t.Fatal(err)
	}
	cfg := fastEnsemble()
	cfg.Calibration = CalibrationIsotonic
	iso, err := TrainEnsemble(d, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Model{"logreg": lr, "gbdt": gb, "forest": rf, "ensemble": ens, "ensemble-isotonic": iso}, d
}

func TestModelJSONRoundTrip(t *testing.T) {
	models, d := trainedModels(t)
	for name, m := range models {
		t.Run(name, func(t *testing.T) {
			b, err := MarshalModel(m)
			if err != nil {
				t.Fatal(err)
			}
			var h header
			if err := json.Unmarshal(b, &h); err != nil || h.Version != 1 || !strings.HasPrefix(name, h.Kind) {
				t.Fatalf("header %+v (%v) for %s", h, err, name)
			}
			back, err := UnmarshalModel(b)
			if err != nil {
				t.Fatal(err)
			}
			for i, x := range d.X {
				if got, want := back.PredictProba(x), m.PredictProba(x); got != want {
					t.Fatalf("row %d: decoded model predicts %v, original %v", i, got, want)
				}
			}
			again, err := MarshalModel(back)
			if err != nil || string(again) != string(b) {
				t.Fatalf("re-encoding differs (%v)", err)
			}
		})
	}
}

func TestUnmarshalModelRejects(t *testing.T) {
	cases := map[string]string{
		"not json":         `{`,
		"unknown kind":     `{"kind":"svm","version":1}`,
		"future version":   `{"kind":"logreg","version":2,"features":1,"mean":[0],"std":[1],"weights":[1],"bias":0}`,
		"short vectors":    `{"kind":"logreg","version":1,"features":2,"mean":[0],"std":[1],"weights":[1],"bias":0}`,
		"zero std":         `{"kind":"logreg","version":1,"features":1,"mean":[0],"std":[0],"weights":[1],"bias":0}`,
		"tree cycle":       `{"kind":"gbdt","version":1,"features":1,"trees":[{"nodes":[{"f":0,"l":0,"r":0}]}]}`,
		"feature range":    `{"kind":"forest","version":1,"features":1,"trees":[{"nodes":[{"f":3,"l":1,"r":2},{"f":-1},{"f":-1}]}]}`,
		"child range":      `{"kind":"forest","version":1,"features":1,"trees":[{"nodes":[{"f":0,"l":1,"r":9},{"f":-1}]}]}`,
		"empty forest":     `{"kind":"forest","version":1,"features":1,"trees":[]}`,
		"weights not 1":    `{"kind":"ensemble","version":1,"features":1,"members":[{"name":"a","weight":0.5,"model":{"kind":"logreg","version":1,"features":1,"mean":[0],"std":[1],"weights":[1],"bias":0}}],"calibrator":{"kind":"platt","version":1,"a":1,"b":0}}`,
		"width mismatch":   `{"kind":"ensemble","version":1,"features":2,"members":[{"name":"a","weight":1,"model":{"kind":"logreg","version":1,"features":1,"mean":[0],"std":[1],"weights":[1],"bias":0}}],"calibrator":{"kind":"platt","version":1,"a":1,"b":0}}`,
		"bad calibrator":   `{"kind":"ensemble","version":1,"features":1,"members":[{"name":"a","weight":1,"model":{"kind":"logreg","version":1,"features":1,"mean":[0],"std":[1],"weights":[1],"bias":0}}],"calibrator":{"kind":"magic","version":1}}`,
		"isotonic falling": `{"kind":"ensemble","version":1,"features":1,"members":[{"name":"a","weight":1,"model":{"kind":"logreg","version":1,"features":1,"mean":[0],"std":[1],"weights":[1],"bias":0}}],"calibrator":{"kind":"isotonic","version":1,"x":[0.2,0.8],"y":[0.9,0.1]}}`,
	}
	for name, doc := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := UnmarshalModel([]byte(doc)); !errors.Is(err, ErrBadInput) {
				t.Fatalf("got %v, want ErrBadInput", err)
			}
		})
	}
}

func FuzzUnmarshalModel(f *testing.F) {
	// Small seeds of every kind keep the fuzzer fast; trained models are large but have the
	// same structure.
	lr := `{"kind":"logreg","version":1,"features":2,"mean":[0,1],"std":[1,2],"weights":[0.5,-1],"bias":0.1}`
	gb := `{"kind":"gbdt","version":1,"features":2,"base":0.1,"trees":[{"nodes":[{"f":1,"t":0.5,"l":1,"r":2},{"f":-1,"v":0.2},{"f":-1,"v":-0.1}]}]}`
	rf := `{"kind":"forest","version":1,"features":2,"trees":[{"nodes":[{"f":0,"t":0,"l":1,"r":2},{"f":-1,"v":0.7},{"f":-1,"v":0.4}]}]}`
	for _, doc := range []string{lr, gb, rf,
		`{"kind":"ensemble","version":1,"features":2,"members":[{"name":"a","weight":0.25,"model":` + lr + `},{"name":"b","weight":0.75,"model":` + gb + `}],"calibrator":{"kind":"platt","version":1,"a":0.8,"b":0.01}}`,
		`{"kind":"ensemble","version":1,"features":2,"members":[{"name":"c","weight":1,"model":` + rf + `}],"calibrator":{"kind":"isotonic","version":1,"x":[0.2,0.8],"y":[0.3,0.6]}}`,
	} {
		if _, err := UnmarshalModel([]byte(doc)); err != nil {
			f.Fatalf("seed does not decode: %v", err)
		}
		f.Add([]byte(doc))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := UnmarshalModel(data)
		if err != nil {
			return
		}
		// A model that decodes must predict on inputs of its width without panicking.
		x := make([]float64, numFeatures(m))
		_ = m.PredictProba(x)
	})
}

func TestArtifact(t *testing.T) {
	models, d := trainedModels(t)
	m := models["ensemble"]
	names := []string{"f0", "f1", "f2", "f3", "f4", "f5"}
	rep := &Report{Rows: 10, Results: []Result{{Name: NameEnsemble, Role: RoleEnsemble, Metrics: Score([]float64{0.6, 0.4}, []int{1, 0})}}}
	jst := time.FixedZone("JST", 9*3600)
	a, err := NewArtifact(m, names, rep, DataRange{From: d.Time[0].In(jst), To: d.Time[d.Len()-1]}, []string{"A", "B"}, time.Date(2025, 1, 2, 3, 4, 5, 0, jst))
	if err != nil {
		t.Fatal(err)
	}
	h1, err := a.Hash()
	if err != nil || len(h1) != 64 {
		t.Fatalf("hash %q, %v", h1, err)
	}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseArtifact(b)
	if err != nil {
		t.Fatal(err)
	}
	if h2, _ := back.Hash(); h2 != h1 {
		t.Fatalf("hash changed over a round trip: %s vs %s", h1, h2)
	}
	lm, err := back.LoadModel()
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range d.X[:50] {
		if lm.PredictProba(x) != m.PredictProba(x) {
			t.Fatal("artifact model predicts differently")
		}
	}
	back.Symbols = []string{"A", "C"}
	if h3, _ := back.Hash(); h3 == h1 {
		t.Fatal("hash ignores the symbols")
	}

	if _, err := NewArtifact(m, names[:2], nil, DataRange{}, nil, time.Now()); !errors.Is(err, ErrBadInput) {
		t.Errorf("feature-name mismatch accepted: %v", err)
	}
	var doc map[string]any
	_ = json.Unmarshal(b, &doc)
	doc["schema_version"] = 99
	b99, _ := json.Marshal(doc)
	if _, err := ParseArtifact(b99); !errors.Is(err, ErrBadInput) {
		t.Errorf("unknown schema version accepted: %v", err)
	}
	for _, k := range []string{"schema_version", "model", "feature_names", "metrics", "data_range", "symbols", "trained_at"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("artifact JSON lacks %q", k)
		}
	}
	if math.IsNaN(rep.Results[0].AUC) {
		t.Error("NaN in report")
	}
}
