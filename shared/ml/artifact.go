package ml

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// ArtifactSchemaVersion is the version of the Artifact document itself; the model inside
// carries its own kind and version.
const ArtifactSchemaVersion = 1

// DataRange is the span of bar times a model was trained on.
type DataRange struct {
	From time.Time `json:"from"`
	To   time.Time `json:"to"`
}

// Artifact is what the registry stores: the model document together with what is needed to
// use it (feature names, in input order) and to judge it (its walk-forward report and the
// data it came from).
type Artifact struct {
	SchemaVersion int             `json:"schema_version"`
	Model         json.RawMessage `json:"model"`
	FeatureNames  []string        `json:"feature_names"`
	Metrics       *Report         `json:"metrics,omitempty"`
	DataRange     DataRange       `json:"data_range"`
	Symbols       []string        `json:"symbols"`
	TrainedAt     time.Time       `json:"trained_at"`
}

// NewArtifact encodes m and checks that featureNames matches its input width.
func NewArtifact(m Model, featureNames []string, metrics *Report, data DataRange, symbols []string, trainedAt time.Time) (*Artifact, error) {
	if d := numFeatures(m); d != len(featureNames) {
		return nil, fmt.Errorf("%w: model takes %d features, %d names given", ErrBadInput, d, len(featureNames))
	}
	b, err := MarshalModel(m)
	if err != nil {
		return nil, err
	}
	return &Artifact{
		SchemaVersion: ArtifactSchemaVersion,
		Model:         b,
		FeatureNames:  slices.Clone(featureNames),
		Metrics:       metrics,
		DataRange:     DataRange{From: data.From.UTC(), To: data.To.UTC()},
		Symbols:       slices.Clone(symbols),
		TrainedAt:     trainedAt.UTC(),
	}, nil
}

// ParseArtifact decodes an artifact document and checks its schema version and its model.
func ParseArtifact(data []byte) (*Artifact, error) {
	var a Artifact
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, fmt.Errorf("%w: artifact: %v", ErrBadInput, err)
	}
	if a.SchemaVersion != ArtifactSchemaVersion {
		return nil, fmt.Errorf("%w: artifact schema version %d, this build reads %d", ErrBadInput, a.SchemaVersion, ArtifactSchemaVersion)
	}
	if _, err := a.LoadModel(); err != nil {
		return nil, err
	}
	return &a, nil
}

// LoadModel decodes the artifact's model and checks it against the feature names.
func (a *Artifact) LoadModel() (Model, error) {
	m, err := UnmarshalModel(a.Model)
	if err != nil {
		return nil, err
	}
	if d := numFeatures(m); d != len(a.FeatureNames) {
		return nil, fmt.Errorf("%w: model takes %d features, artifact names %d", ErrBadInput, d, len(a.FeatureNames))
	}
	return m, nil
}

// Hash is the hex SHA-256 of the artifact's JSON encoding. encoding/json writes struct
// fields in declaration order, sorts map keys and compacts the raw model, so equal artifacts
// hash equally, also after a round trip through ParseArtifact.
func (a *Artifact) Hash() (string, error) {
	b, err := json.Marshal(a)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}
