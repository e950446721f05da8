package inference

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/day-trade/platform/shared/features"
	"github.com/day-trade/platform/shared/ml/registry"
)

// FuzzPredictBody feeds arbitrary bodies to the predict handler: every answer is 200 or a
// 4xx problem, never a 5xx or a panic.
func FuzzPredictBody(f *testing.F) {
	for _, s := range []string{`{"rows":[[1,2]]}`, `{"rows":[[null,"NaN","-Inf",1e308]]}`, `{"feature_names":["ret_1","ret_1"],"rows":[[1,2]]}`,
		`{"model_version":"v1","rows":[]}`, `{"rows":[["seven"]]}`, `[]`, `null`, `{"rows":[[1e999]]}`} {
		f.Add([]byte(s))
	}
	a := logRegArtifact(f, 1)
	m, _ := a.LoadModel()
	l := &Loaded{Version: registry.Version{Version: "v1", Features: features.Names()}, Model: m, index: map[string]int{}}
	for i, n := range l.Version.Features {
		l.index[n] = i
	}
	s := NewService(nil, quietLog())
	s.cur.Store(l)
	h := NewServer(quietLog(), s)
	f.Fuzz(func(t *testing.T, body []byte) {
		var req PredictRequest
		if json.Unmarshal(body, &req) == nil && req.ModelVersion != "" && req.ModelVersion != "v1" {
			return // would need the registry
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/predict", bytes.NewReader(body)))
		if rec.Code >= 500 {
			t.Fatalf("%d for %q: %s", rec.Code, body, rec.Body.String())
		}
	})
}
