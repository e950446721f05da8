package ml

import (
	"encoding/json"
	"fmt"
	"math"
)

// Model documents are JSON objects tagged {"kind": ..., "version": ...}. A reader accepts
// only the versions it knows, so a format change must bump the version rather than be
// misread. Go writes float64 in the shortest form that parses back to the same bits, so a
// decoded model predicts exactly what the encoded one did.
const (
	KindLogReg   = "logreg"
	KindGBDT     = "gbdt"
	KindForest   = "forest"
	KindEnsemble = "ensemble"
	KindPlatt    = "platt"
	KindIsotonic = "isotonic"

	modelVersion = 1
)

type header struct {
	Kind    string `json:"kind"`
	Version int    `json:"version"`
}

func (h header) check(kind string) error {
	if h.Kind != kind {
		return fmt.Errorf("%w: kind %q, want %q", ErrBadInput, h.Kind, kind)
	}
	if h.Version != modelVersion {
		return fmt.Errorf("%w: %s version %d, this build reads version %d", ErrBadInput, kind, h.Version, modelVersion)
	}
	return nil
}

// MarshalModel encodes any model of this package.
func MarshalModel(m Model) ([]byte, error) {
	switch m.(type) {
	case *LogReg, *GBDT, *Forest, *Ensemble:
		return json.Marshal(m)
	}
	return nil, fmt.Errorf("%w: cannot encode model %T", ErrBadInput, m)
}

// UnmarshalModel decodes a model document of any kind and validates its structure, so a
// decoded model cannot index outside its inputs or loop.
func UnmarshalModel(data []byte) (Model, error) {
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	var m interface {
		Model
		json.Unmarshaler
	}
	switch h.Kind {
	case KindLogReg:
		m = &LogReg{}
	case KindGBDT:
		m = &GBDT{}
	case KindForest:
		m = &Forest{}
	case KindEnsemble:
		m = &Ensemble{}
	default:
		return nil, fmt.Errorf("%w: unknown model kind %q", ErrBadInput, h.Kind)
	}
	if err := m.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	return m, nil
}

type logRegJSON struct {
	header
	Features int       `json:"features"`
	Mean     []float64 `json:"mean"`
	Std      []float64 `json:"std"`
	Weights  []float64 `json:"weights"`
	Bias     float64   `json:"bias"`
}

// MarshalJSON writes {"kind":"logreg","version":1,...}.
func (m *LogReg) MarshalJSON() ([]byte, error) {
	return json.Marshal(logRegJSON{header{KindLogReg, modelVersion}, len(m.Weights), m.Mean, m.Std, m.Weights, m.Bias})
}

// UnmarshalJSON reads a logreg document.
func (m *LogReg) UnmarshalJSON(data []byte) error {
	var w logRegJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	if err := w.check(KindLogReg); err != nil {
		return err
	}
	d := w.Features
	if d <= 0 || len(w.Mean) != d || len(w.Std) != d || len(w.Weights) != d {
		return fmt.Errorf("%w: logreg vectors do not match %d features", ErrBadInput, d)
	}
	for _, s := range w.Std {
		if !(s > 0) {
			return fmt.Errorf("%w: logreg std must be positive", ErrBadInput)
		}
	}
	*m = LogReg{Mean: w.Mean, Std: w.Std, Weights: w.Weights, Bias: w.Bias}
	return nil
}

type treesJSON struct {
	header
	Features int     `json:"features"`
	Base     float64 `json:"base,omitempty"`
	Trees    []tree  `json:"trees"`
}

func (w treesJSON) validate() error {
	if w.Features <= 0 {
		return fmt.Errorf("%w: %s needs features > 0", ErrBadInput, w.Kind)
	}
	for i := range w.Trees {
		if err := w.Trees[i].validate(w.Features); err != nil {
			return fmt.Errorf("tree %d: %w", i, err)
		}
	}
	return nil
}

// MarshalJSON writes {"kind":"gbdt","version":1,...}.
func (m *GBDT) MarshalJSON() ([]byte, error) {
	return json.Marshal(treesJSON{header{KindGBDT, modelVersion}, m.Features, m.Base, m.Trees})
}

// UnmarshalJSON reads a gbdt document.
func (m *GBDT) UnmarshalJSON(data []byte) error {
	var w treesJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	if err := w.check(KindGBDT); err != nil {
		return err
	}
	if err := w.validate(); err != nil {
		return err
	}
	*m = GBDT{Features: w.Features, Base: w.Base, Trees: w.Trees}
	return nil
}

// MarshalJSON writes {"kind":"forest","version":1,...}.
func (m *Forest) MarshalJSON() ([]byte, error) {
	return json.Marshal(treesJSON{header{KindForest, modelVersion}, m.Features, 0, m.Trees})
}

// UnmarshalJSON reads a forest document.
func (m *Forest) UnmarshalJSON(data []byte) error {
	var w treesJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	if err := w.check(KindForest); err != nil {
		return err
	}
	if err := w.validate(); err != nil {
		return err
	}
	if len(w.Trees) == 0 {
		return fmt.Errorf("%w: forest has no trees", ErrBadInput)
	}
	*m = Forest{Features: w.Features, Trees: w.Trees}
	return nil
}

type memberJSON struct {
	Name   string          `json:"name"`
	Weight float64         `json:"weight"`
	Model  json.RawMessage `json:"model"`
}

type ensembleJSON struct {
	header
	Features   int             `json:"features"`
	Members    []memberJSON    `json:"members"`
	Calibrator json.RawMessage `json:"calibrator"`
}

// MarshalJSON writes {"kind":"ensemble","version":1,...} with every member and the
// calibrator as nested documents.
func (e *Ensemble) MarshalJSON() ([]byte, error) {
	w := ensembleJSON{header: header{KindEnsemble, modelVersion}, Features: e.NumFeatures()}
	for i, m := range e.Members {
		b, err := MarshalModel(m.Model)
		if err != nil {
			return nil, err
		}
		w.Members = append(w.Members, memberJSON{m.Name, e.Weights[i], b})
	}
	var err error
	if w.Calibrator, err = json.Marshal(e.Calibrator); err != nil {
		return nil, err
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads an ensemble document.
func (e *Ensemble) UnmarshalJSON(data []byte) error {
	var w ensembleJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return fmt.Errorf("%w: %v", ErrBadInput, err)
	}
	if err := w.check(KindEnsemble); err != nil {
		return err
	}
	if len(w.Members) == 0 {
		return fmt.Errorf("%w: ensemble has no members", ErrBadInput)
	}
	out := Ensemble{}
	var sum float64
	for _, mj := range w.Members {
		m, err := UnmarshalModel(mj.Model)
		if err != nil {
			return fmt.Errorf("member %q: %w", mj.Name, err)
		}
		if _, nested := m.(*Ensemble); nested {
			return fmt.Errorf("%w: member %q is an ensemble", ErrBadInput, mj.Name)
		}
		if numFeatures(m) != w.Features {
			return fmt.Errorf("%w: member %q has %d features, ensemble %d", ErrBadInput, mj.Name, numFeatures(m), w.Features)
		}
		if mj.Weight < 0 {
			return fmt.Errorf("%w: member %q has a negative weight", ErrBadInput, mj.Name)
		}
		sum += mj.Weight
		out.Members = append(out.Members, Member{mj.Name, m})
		out.Weights = append(out.Weights, mj.Weight)
	}
	if math.Abs(sum-1) > 1e-9 {
		return fmt.Errorf("%w: ensemble weights sum to %v, not 1", ErrBadInput, sum)
	}
	c, err := unmarshalCalibrator(w.Calibrator)
	if err != nil {
		return err
	}
	out.Calibrator = c
	*e = out
	return nil
}

type plattJSON struct {
	header
	A float64 `json:"a"`
	B float64 `json:"b"`
}

// MarshalJSON writes {"kind":"platt","version":1,"a":...,"b":...}.
func (c Platt) MarshalJSON() ([]byte, error) {
	return json.Marshal(plattJSON{header{KindPlatt, modelVersion}, c.A, c.B})
}

type isotonicJSON struct {
	header
	X []float64 `json:"x"`
	Y []float64 `json:"y"`
}

// MarshalJSON writes {"kind":"isotonic","version":1,"x":[...],"y":[...]}.
func (c *Isotonic) MarshalJSON() ([]byte, error) {
	return json.Marshal(isotonicJSON{header{KindIsotonic, modelVersion}, c.X, c.Y})
}

func unmarshalCalibrator(data []byte) (Calibrator, error) {
	var h header
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("%w: calibrator: %v", ErrBadInput, err)
	}
	switch h.Kind {
	case KindPlatt:
		var w plattJSON
		if err := json.Unmarshal(data, &w); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
		}
		if err := w.check(KindPlatt); err != nil {
			return nil, err
		}
		return Platt{A: w.A, B: w.B}, nil
	case KindIsotonic:
		var w isotonicJSON
		if err := json.Unmarshal(data, &w); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrBadInput, err)
		}
		if err := w.check(KindIsotonic); err != nil {
			return nil, err
		}
		c := &Isotonic{X: w.X, Y: w.Y}
		if err := c.validate(); err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w: unknown calibrator kind %q", ErrBadInput, h.Kind)
}
