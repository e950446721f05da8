package manifests

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/day-trade/platform/functions"
)

// fixtureCatalog has every shape the real catalog will grow into: the ensemble, a
// non-idempotent trade route, event workers, the tick subscriber and the dead-letter sink.
func fixtureCatalog() []functions.Function {
	scale0 := functions.Scaling{MinScale: 0, MaxScale: 10, Concurrency: 100, Target: 80, IdleWindow: 60 * time.Second}
	readers := []string{functions.RoleViewer, functions.RoleTrader, functions.RoleAdmin}
	traders := []string{functions.RoleTrader, functions.RoleAdmin}
	return []functions.Function{
		{
			Name: "gateway", Kind: functions.KindGateway, Description: "API gateway",
			Scaling: functions.Scaling{MinScale: 1, MaxScale: 10, Target: 500},
			Timeout: 60 * time.Second, KeyPrefix: "gw",
		},
		{
			Name: "ensemble", Kind: functions.KindService, Description: "always-warm ensemble model",
			Scaling: functions.Scaling{MinScale: 1, MaxScale: 4, Concurrency: 8, Target: 6},
			Timeout: 30 * time.Second, KeyPrefix: "ml", Env: map[string]string{"MODEL_NAME": "ensemble"},
		},
		{
			Name: "ml-predict", Kind: functions.KindFunction, Description: "prediction for one symbol",
			Routes:  []functions.Route{{Method: "GET", Path: "/api/v1/ml/predict/{symbol}", Roles: readers, Idempotent: true}},
			Scaling: scale0, Timeout: 30 * time.Second, KeyPrefix: "ml", Calls: []string{"ensemble"},
		},
		{
			Name: "ml-batch-worker", Kind: functions.KindFunction, Description: "batch predictions",
			Events: []functions.Subscription{
				{Type: "com.daytrade.ml.batch.requested", Source: "/daytrade/ml-batch-predict"},
				{Type: "com.daytrade.ml.accuracy.degraded", Path: "/events/degraded"},
			},
			Scaling: scale0, Timeout: 10 * time.Minute, KeyPrefix: "ml", Calls: []string{"ensemble"},
		},
		{
			Name: "execution-trade", Kind: functions.KindFunction, Description: "paper trade",
			Routes: []functions.Route{
				{Method: "POST", Path: "/api/v1/execution/trade", Roles: traders, Idempotent: false},
				{Method: "GET", Path: "/api/v1/execution/orders/{id:[0-9a-f-]+}", Roles: traders, Idempotent: true},
			},
			Scaling: scale0, Timeout: 30 * time.Second, KeyPrefix: "exec",
		},
		{
			Name: "execution-scheduler", Kind: functions.KindFunction, Description: "scheduled workflows",
			Events:  []functions.Subscription{{Type: "com.daytrade.execution.tick", Path: "/events/tick"}},
			Scaling: scale0, Timeout: 2 * time.Minute, KeyPrefix: "exec",
		},
		{
			Name: "data-stocks", Kind: functions.KindFunction, Description: "OHLCV bars",
			Routes:  []functions.Route{{Method: "GET", Path: "/api/v1/data/stocks/{symbol}", Roles: readers, Idempotent: true}},
			Scaling: scale0, Timeout: 30 * time.Second, KeyPrefix: "data",
			Env: map[string]string{"DATA_PROVIDER": "synthetic"}, Secrets: []string{"JQUANTS_API_KEY"},
		},
		{
			Name: DeadLetter, Kind: functions.KindFunction, Description: "parks undeliverable events",
			Events:  []functions.Subscription{{Type: "com.daytrade.jobs.dead.replayed", Path: "/events/replayed"}},
			Scaling: scale0, Timeout: 30 * time.Second, KeyPrefix: "jobs",
		},
	}
}

// catalogs are the real catalog and the fixture; most tests run on both.
var catalogs = map[string]func() []functions.Function{
	"catalog": functions.Catalog,
	"fixture": fixtureCatalog,
}

func mustGenerate(tb testing.TB, fs []functions.Function) map[string][]byte {
	tb.Helper()
	files, err := Generate(fs, DefaultOptions())
	if err != nil {
		tb.Fatal(err)
	}
	return files
}

// docs splits a generated file into its YAML documents.
func docs(b []byte) [][]byte {
	var out [][]byte
	for _, d := range bytes.Split(b, []byte("\n---\n")) {
		if len(bytes.TrimSpace(d)) > 0 {
			out = append(out, d)
		}
	}
	return out
}

type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// object is one generated document with the file it came from.
type object struct {
	path string
	typeMeta
	raw []byte
}

// objects returns every document under base/ by kind ("Service", "Trigger", ...).
func objects(tb testing.TB, files map[string][]byte, prefix string) map[string][]object {
	tb.Helper()
	out := map[string][]object{}
	for path, b := range files {
		if !strings.HasPrefix(path, prefix) || strings.HasSuffix(path, "kustomization.yaml") {
			continue
		}
		for _, d := range docs(b) {
			var tm typeMeta
			if err := yaml.Unmarshal(d, &tm); err != nil {
				tb.Fatalf("%s: %v", path, err)
			}
			out[tm.Kind] = append(out[tm.Kind], object{path: path, typeMeta: tm, raw: d})
		}
	}
	return out
}

// strict decodes a document into v, failing on any field v does not have.
func strict(tb testing.TB, o object, v any) {
	tb.Helper()
	if err := yaml.UnmarshalStrict(o.raw, v); err != nil {
		tb.Fatalf("%s (%s): strict decode: %v", o.path, o.Kind, err)
	}
}

func byName(fs []functions.Function) map[string]functions.Function {
	m := map[string]functions.Function{}
	for _, f := range fs {
		m[f.Name] = f
	}
	return m
}
