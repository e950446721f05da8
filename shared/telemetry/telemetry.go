// Package telemetry sets up OpenTelemetry tracing and metrics for one process: W3C trace
// context propagation, a Prometheus /metrics endpoint fed by the OTel Prometheus exporter,
// OTLP trace export when an endpoint is configured, and slog JSON logs carrying trace ids.
// Only main installs the returned providers process-wide.
package telemetry

import (
	"context"
	"errors"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// Options describe the process for its telemetry resource.
type Options struct {
	Service       string // K_SERVICE or the binary's name
	Revision      string // K_REVISION
	Configuration string // K_CONFIGURATION
	Namespace     string
	// OTLPEndpoint, when set, exports spans over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT).
	OTLPEndpoint string
}

// Telemetry holds one process's providers and its metrics endpoint.
type Telemetry struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	Propagator     propagation.TextMapPropagator
	Registry       *prometheus.Registry
	shutdown       []func(context.Context) error
}

// Setup builds tracer and meter providers for the process described by opts.
func Setup(ctx context.Context, opts Options) (*Telemetry, error) {
	attrs := []attribute.KeyValue{semconv.ServiceName(opts.Service)}
	if opts.Revision != "" {
		attrs = append(attrs, semconv.ServiceVersion(opts.Revision), attribute.String("knative.revision", opts.Revision))
	}
	if opts.Configuration != "" {
		attrs = append(attrs, attribute.String("knative.configuration", opts.Configuration))
	}
	if opts.Namespace != "" {
		attrs = append(attrs, semconv.ServiceNamespace(opts.Namespace))
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, attrs...)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithResource(res), sdkmetric.WithReader(exp))

	tpOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if opts.OTLPEndpoint != "" {
		// The exporter reads OTEL_EXPORTER_OTLP_* itself; the endpoint only switches it on.
		te, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(opts.OTLPEndpoint))
		if err != nil {
			return nil, err
		}
		tpOpts = append(tpOpts, sdktrace.WithBatcher(te))
	}
	tp := sdktrace.NewTracerProvider(tpOpts...)
	return &Telemetry{
		TracerProvider: tp,
		MeterProvider:  mp,
		Propagator:     propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Registry:       reg,
		shutdown:       []func(context.Context) error{tp.Shutdown, mp.Shutdown},
	}, nil
}

// Install makes the providers process-wide. Call it from main only.
func (t *Telemetry) Install() {
	otel.SetTracerProvider(t.TracerProvider)
	otel.SetMeterProvider(t.MeterProvider)
	otel.SetTextMapPropagator(t.Propagator)
}

// MetricsHandler serves the Prometheus exposition of this process's metrics.
func (t *Telemetry) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(t.Registry, promhttp.HandlerOpts{})
}

// Shutdown flushes and stops the providers.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
