// Package inference is the ensemble service's model holder, HTTP surface and client. The
// service keeps the promoted model in memory behind an atomic pointer, swaps it when the
// registry announces a promotion (requests in flight finish on the model they started
// with), and answers batches of feature rows. Functions call it through Client.
//
// It lives in its own package, not in the ensemble's main, so that its callers' tests can
// run the real service in-process.
package inference

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Value is one feature value on the wire. JSON has no NaN or infinity, so clients that
// serialise them write null or a string; Value decodes those into NaN/±Inf so validation
// can name the field, instead of failing the whole body as malformed JSON.
type Value float64

// UnmarshalJSON accepts a number, null (missing: NaN) or one of the strings "NaN", "Inf",
// "+Inf", "-Inf", "Infinity", "-Infinity".
func (v *Value) UnmarshalJSON(b []byte) error {
	s := string(b)
	switch {
	case s == "null":
		*v = Value(math.NaN())
		return nil
	case strings.HasPrefix(s, `"`):
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		switch strings.ToLower(strings.TrimSpace(str)) {
		case "nan":
			*v = Value(math.NaN())
		case "inf", "+inf", "infinity", "+infinity":
			*v = Value(math.Inf(1))
		case "-inf", "-infinity":
			*v = Value(math.Inf(-1))
		default:
			return fmt.Errorf("feature value %q is not a number", str)
		}
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("feature value %s is not a number", s)
	}
	*v = Value(f)
	return nil
}

// Describe says what is wrong with v, or "" when it is a usable finite number.
func (v Value) Describe() string {
	f := float64(v)
	switch {
	case math.IsNaN(f):
		return "must be a finite number, got NaN or null"
	case math.IsInf(f, 0):
		return "must be a finite number, got " + strconv.FormatFloat(f, 'g', -1, 64)
	}
	return ""
}

// PredictRequest is the body of POST /v1/predict.
type PredictRequest struct {
	// ModelVersion asks for a registered version; empty means the promoted one.
	ModelVersion string `json:"model_version,omitempty"`
	// FeatureNames, when set, names the columns of Rows; they are reordered to the model's
	// order and must cover every feature the model takes. When empty, rows are in the
	// model's order (GET /v1/models lists it).
	FeatureNames []string  `json:"feature_names,omitempty"`
	Rows         [][]Value `json:"rows"`
}

// Prediction is the answer for one row.
type Prediction struct {
	Probability float64 `json:"probability"` // calibrated P(next close > this close)
	Class       string  `json:"class"`       // "up" or "down"
	Confidence  float64 `json:"confidence"`  // max(probability, 1-probability)
}

// PredictResponse is the answer of POST /v1/predict.
type PredictResponse struct {
	ModelVersion string       `json:"model_version"`
	Predictions  []Prediction `json:"predictions"`
}

// ModelInfo describes a loaded model.
type ModelInfo struct {
	Version      string    `json:"version"`
	Features     []string  `json:"features"`
	ArtifactHash string    `json:"artifact_hash"`
	TrainedAt    time.Time `json:"trained_at"`
	LoadedAt     time.Time `json:"loaded_at"`
}

// Classes of Prediction.Class.
const (
	ClassUp   = "up"
	ClassDown = "down"
)
