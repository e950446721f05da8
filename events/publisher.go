package events

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/extensions"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/day-trade/platform/shared/httpx"
)

// Publisher sends events to one sink: K_SINK from a SinkBinding or the Broker URL, as chosen
// by main. It is safe for concurrent use.
type Publisher struct {
	client  cloudevents.Client
	retries int
	period  time.Duration
	tracer  trace.Tracer // nil: no producer span, the caller's span context is still carried
	now     func() time.Time
}

type publisherConfig struct {
	retries    int
	period     time.Duration
	httpClient *http.Client
	tp         trace.TracerProvider
}

// PublisherOption configures NewPublisher.
type PublisherOption func(*publisherConfig)

// WithRetries sets how many times a failed send is retried (0 disables retries) and the
// backoff period: the SDK waits period·2^n before retry n. Defaults: 5 retries, 50ms, i.e.
// at most ~3s of backoff.
func WithRetries(retries int, period time.Duration) PublisherOption {
	return func(c *publisherConfig) { c.retries, c.period = retries, period }
}

// WithHTTPClient sets the HTTP client; its Timeout bounds each attempt. The default client
// has a 10s timeout.
func WithHTTPClient(hc *http.Client) PublisherOption {
	return func(c *publisherConfig) { c.httpClient = hc }
}

// WithTracerProvider makes Publish start a producer span for each event.
func WithTracerProvider(tp trace.TracerProvider) PublisherOption {
	return func(c *publisherConfig) { c.tp = tp }
}

// NewPublisher returns a Publisher sending to target, an absolute http(s) URL.
func NewPublisher(target string, opts ...PublisherOption) (*Publisher, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("events: sink %q is not an absolute http(s) URL", target)
	}
	cfg := publisherConfig{retries: 5, period: 50 * time.Millisecond}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.httpClient == nil {
		cfg.httpClient = &http.Client{Timeout: 10 * time.Second}
	}
	c, err := cloudevents.NewClientHTTP(
		cehttp.WithTarget(target),
		cehttp.WithClient(*cfg.httpClient),
		cehttp.WithIsRetriableFunc(retriableStatus),
	)
	if err != nil {
		return nil, fmt.Errorf("events: new client: %w", err)
	}
	p := &Publisher{client: c, retries: cfg.retries, period: cfg.period, now: time.Now}
	if cfg.tp != nil {
		p.tracer = cfg.tp.Tracer("github.com/day-trade/platform/events")
	}
	return p, nil
}

// retriableStatus replaces the SDK's default list, which retries 404 and 413 (never going to
// change for the same event) but not 500, which our Receiver answers for a handler bug or
// panic that a redeploy may fix.
func retriableStatus(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooEarly, code == http.StatusTooManyRequests:
		return true
	case code >= 500 && code != http.StatusNotImplemented && code != http.StatusHTTPVersionNotSupported:
		return true
	}
	return false
}

// Publish sends one event with a fresh id, the current time and data encoded as JSON
// (datacontenttype application/json; nil data sends no data). subject may be empty. It returns
// the event id, also on failure so that the caller can log it. Errors are *httpx.Error:
// CodeInvalid for an event that cannot be built or that the sink refused with a 4xx,
// CodeRateLimited for a final 429, CodeUnavailable when the sink was unreachable or kept
// answering 5xx after the retries.
func (p *Publisher) Publish(ctx context.Context, typ, source, subject string, data any) (string, error) {
	return p.PublishID(ctx, uuid.NewString(), typ, source, subject, data)
}

// PublishID is Publish with the event id chosen by the caller. A producer that may publish
// the same fact twice (a worker that finished a job, crashed before it published, and runs
// again) derives the id from the fact, e.g. "<job id>.completed", so that consumers dedup
// the second copy on (source, id).
func (p *Publisher) PublishID(ctx context.Context, id, typ, source, subject string, data any) (string, error) {
	e := cloudevents.NewEvent()
	e.SetID(id)
	e.SetType(typ)
	e.SetSource(source)
	e.SetTime(p.now().UTC())
	if subject != "" {
		e.SetSubject(subject)
	}
	if data != nil {
		if err := e.SetData(cloudevents.ApplicationJSON, data); err != nil {
			return e.ID(), httpx.Wrap(err, httpx.CodeInvalid, "event data cannot be encoded as JSON")
		}
	}
	if err := e.Validate(); err != nil {
		return e.ID(), httpx.Wrap(err, httpx.CodeInvalid, "invalid event: "+err.Error())
	}

	if p.tracer != nil {
		var span trace.Span
		ctx, span = p.tracer.Start(ctx, "publish "+typ, trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(eventAttributes(e)...))
		defer span.End()
	}
	injectTrace(ctx, &e)
	return e.ID(), p.send(ctx, e)
}

// Send sends a ready-made event as it is (its id, source, time and data kept), with
// Publish's retries and trace context. The dead-letter sink replays parked events with it.
func (p *Publisher) Send(ctx context.Context, e cloudevents.Event) error {
	if err := e.Validate(); err != nil {
		return httpx.Wrap(err, httpx.CodeInvalid, "invalid event: "+err.Error())
	}
	if p.tracer != nil {
		var span trace.Span
		ctx, span = p.tracer.Start(ctx, "publish "+e.Type(), trace.WithSpanKind(trace.SpanKindProducer),
			trace.WithAttributes(eventAttributes(e)...))
		defer span.End()
	}
	if _, ok := extensions.GetDistributedTracingExtension(e); !ok {
		injectTrace(ctx, &e)
	}
	return p.send(ctx, e)
}

func (p *Publisher) send(ctx context.Context, e cloudevents.Event) error {
	ctx = cloudevents.WithEncodingBinary(ctx)
	if p.retries > 0 {
		ctx = cloudevents.ContextWithRetriesExponentialBackoff(ctx, p.period, p.retries)
	}
	res := p.client.Send(ctx, e)
	if cloudevents.IsACK(res) {
		return nil
	}
	return classifySendResult(res)
}

func classifySendResult(res error) *httpx.Error {
	// The retry loop wraps the last attempt's result in a RetriesResult, which does not
	// unwrap, so look through it by hand.
	var rr *cehttp.RetriesResult
	if errors.As(res, &rr) && rr.Result != nil {
		res = rr.Result
	}
	var hr *cehttp.Result
	if !cloudevents.ResultAs(res, &hr) {
		return httpx.Wrap(res, httpx.CodeUnavailable, "event sink unreachable")
	}
	switch {
	case hr.StatusCode == http.StatusTooManyRequests:
		return httpx.Wrap(res, httpx.CodeRateLimited, "event sink is rate limiting")
	case hr.StatusCode >= 500:
		return httpx.Wrap(res, httpx.CodeUnavailable, fmt.Sprintf("event sink answered %d", hr.StatusCode))
	default:
		return httpx.Wrap(res, httpx.CodeInvalid, fmt.Sprintf("event sink refused the event with %d", hr.StatusCode))
	}
}

// traceContext is the W3C propagator. It is used directly, not through the process-wide
// otel.GetTextMapPropagator, so that the event always carries traceparent whatever main set.
var traceContext = propagation.TraceContext{}

// injectTrace puts ctx's span context on e as the distributed-tracing extension.
func injectTrace(ctx context.Context, e *cloudevents.Event) {
	carrier := propagation.MapCarrier{}
	traceContext.Inject(ctx, carrier)
	extensions.DistributedTracingExtension{
		TraceParent: carrier.Get(extensions.TraceParentExtension),
		TraceState:  carrier.Get(extensions.TraceStateExtension),
	}.AddTracingAttributes(e)
}

// extractTrace returns ctx with the remote span context carried by e, if any.
func extractTrace(ctx context.Context, e cloudevents.Event) context.Context {
	dt, ok := extensions.GetDistributedTracingExtension(e)
	if !ok {
		return ctx
	}
	return traceContext.Extract(ctx, propagation.MapCarrier{
		extensions.TraceParentExtension: dt.TraceParent,
		extensions.TraceStateExtension:  dt.TraceState,
	})
}

// eventAttributes are the OpenTelemetry semantic-convention attributes for a CloudEvent.
func eventAttributes(e cloudevents.Event) []attribute.KeyValue {
	return []attribute.KeyValue{
		attribute.String("cloudevents.event_id", e.ID()),
		attribute.String("cloudevents.event_type", e.Type()),
		attribute.String("cloudevents.event_source", e.Source()),
		attribute.String("cloudevents.event_subject", e.Subject()),
	}
}
