package telemetry

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func TestServerSpansContinueTheCallersTrace(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(t.Context())
	var inner trace.SpanContext
	h := ServerSpans(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inner = trace.SpanContextFromContext(r.Context())
		w.WriteHeader(http.StatusBadGateway)
	}), tp, propagation.TraceContext{})

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	req := httptest.NewRequest(http.MethodGet, "/api/v1/stocks/7203.T", nil)
	req.Header.Set("traceparent", parent)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)

	if w.Code != http.StatusBadGateway {
		t.Fatalf("status %d, want the handler's 502", w.Code)
	}
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans, want 1", len(spans))
	}
	s := spans[0]
	if got := s.SpanContext().TraceID().String(); got != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("trace id %s, want the caller's", got)
	}
	if got := s.Parent().SpanID().String(); got != "00f067aa0ba902b7" {
		t.Errorf("parent span %s, want the caller's", got)
	}
	if inner.SpanID() != s.SpanContext().SpanID() {
		t.Errorf("the handler's context carries span %s, want the server span %s", inner.SpanID(), s.SpanContext().SpanID())
	}
	if s.SpanKind() != trace.SpanKindServer || s.Name() != "GET /api/v1/stocks/7203.T" {
		t.Errorf("kind %v name %q", s.SpanKind(), s.Name())
	}
	attrs := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		attrs[kv.Key] = kv.Value
	}
	if attrs["http.response.status_code"].AsInt64() != 502 || attrs["http.request.method"].AsString() != "GET" {
		t.Errorf("attributes %v", attrs)
	}
	if s.Status().Code != codes.Error {
		t.Errorf("span status %v, want Error for a 5xx", s.Status())
	}
}

func TestServerSpansSkipAttributesWhenNotSampled(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.NeverSample()), sdktrace.WithSpanProcessor(rec))
	defer tp.Shutdown(t.Context())
	var wrapped bool
	h := ServerSpans(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, wrapped = w.(*statusRecorder)
		w.WriteHeader(http.StatusNoContent)
	}), tp, propagation.TraceContext{})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/x", nil))
	if w.Code != http.StatusNoContent {
		t.Fatalf("status %d", w.Code)
	}
	if wrapped {
		t.Error("writer wrapped for a span that does not record")
	}
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans recorded under NeverSample", n)
	}
}
