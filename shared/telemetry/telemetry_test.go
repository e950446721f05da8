package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestLoggerCarriesTraceIDs(t *testing.T) {
	tel, err := Setup(context.Background(), Options{Service: "test-svc", Revision: "test-svc-00001"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	var buf bytes.Buffer
	log := NewLogger(&buf, "info")
	ctx, span := tel.TracerProvider.Tracer("t").Start(context.Background(), "op")
	log.InfoContext(ctx, "hello")
	span.End()
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("log is not JSON: %v: %s", err, buf.String())
	}
	if rec["trace_id"] != span.SpanContext().TraceID().String() || rec["span_id"] != span.SpanContext().SpanID().String() {
		t.Errorf("trace ids missing or wrong: %v", rec)
	}
}

func TestMetricsEndpointExportsOTelInstruments(t *testing.T) {
	tel, err := Setup(context.Background(), Options{Service: "test-svc"})
	if err != nil {
		t.Fatal(err)
	}
	defer tel.Shutdown(context.Background())
	c, err := tel.MeterProvider.Meter("t").Int64Counter("widgets_made")
	if err != nil {
		t.Fatal(err)
	}
	c.Add(context.Background(), 3)
	rec := httptest.NewRecorder()
	tel.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	if !strings.Contains(string(body), "widgets_made_total") || !strings.Contains(string(body), `service_name="test-svc"`) {
		t.Errorf("metrics missing counter or resource labels:\n%s", body)
	}
}
