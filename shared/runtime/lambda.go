package runtime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/day-trade/platform/shared/httpx"
)

// LambdaOptions configure the Lambda mode.
type LambdaOptions struct {
	// EventPaths maps a CloudEvent type to the path its events are POSTed to, as the
	// catalog's Subscription.Path does for a Knative Trigger. A type not listed goes to "/".
	EventPaths map[string]string
	// Log records events the handler refused; nil discards.
	Log *slog.Logger
}

// ServeLambda serves h as an AWS Lambda function with the default LambdaOptions (every
// EventBridge event to "/"). It has the type of Function.Lambda.
func ServeLambda(ctx context.Context, h http.Handler) error {
	return LambdaServer(LambdaOptions{})(ctx, h)
}

// LambdaServer returns a Function.Lambda that serves h through the Lambda Runtime API at
// $AWS_LAMBDA_RUNTIME_API (aws-lambda-go reads it): API Gateway v2 HTTP events go through
// aws-lambda-go-api-proxy to h, EventBridge events reach h as binary-mode CloudEvents. It
// returns when ctx ends (SIGTERM, which Lambda sends before it stops an instance because
// the adapter registers for it), so the runtime can flush telemetry.
func LambdaServer(opts LambdaOptions) func(ctx context.Context, h http.Handler) error {
	return func(ctx context.Context, h http.Handler) error {
		// lambda.StartWithOptions never returns: it exits the process when the Runtime API
		// fails, which is what Lambda expects of a runtime (it starts a fresh instance).
		// Invocations keep ctx's values but not its cancellation: Lambda sends SIGTERM only
		// between invocations, and a late signal must not cut one short.
		go lambda.StartWithOptions(NewLambdaHandler(h, opts), lambda.WithContext(context.WithoutCancel(ctx)), lambda.WithEnableSIGTERM())
		<-ctx.Done()
		return nil
	}
}

// LambdaHandler turns one Lambda invocation into one call of an http.Handler. It
// implements aws-lambda-go's lambda.Handler.
type LambdaHandler struct {
	h     http.Handler
	v2    *httpadapter.HandlerAdapterV2
	paths map[string]string
	log   *slog.Logger
}

var _ lambda.Handler = (*LambdaHandler)(nil)

// NewLambdaHandler returns the handler LambdaServer runs.
func NewLambdaHandler(h http.Handler, opts LambdaOptions) *LambdaHandler {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &LambdaHandler{h: h, v2: httpadapter.NewV2(implicitOK(h)), paths: opts.EventPaths, log: log}
}

// shape is just enough of an event to tell API Gateway v2 from EventBridge. The two never
// share these keys: an HTTP API event has requestContext.http, an EventBridge event has
// detail-type at the top level.
type shape struct {
	RequestContext *struct {
		HTTP json.RawMessage `json:"http"`
	} `json:"requestContext"`
	DetailType *string `json:"detail-type"`
}

// Invoke dispatches one event by its shape. An error is reported to Lambda as the
// invocation's failure: for an EventBridge (asynchronous) invocation Lambda retries it and
// then sends it to the function's dead-letter queue.
func (l *LambdaHandler) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	var s shape
	if err := json.Unmarshal(payload, &s); err != nil {
		return nil, fmt.Errorf("lambda: cannot decode event: %w", err)
	}
	isHTTP := s.RequestContext != nil && len(s.RequestContext.HTTP) > 0 && string(s.RequestContext.HTTP) != "null"
	isEvent := s.DetailType != nil
	switch {
	case isHTTP && isEvent:
		return nil, errors.New("lambda: event has both requestContext.http and detail-type; cannot tell its source")
	case isHTTP:
		return l.http(ctx, payload)
	case isEvent:
		return l.event(ctx, payload)
	}
	return nil, errors.New("lambda: unsupported event: want an API Gateway v2 HTTP event (requestContext.http) or an EventBridge event (detail-type)")
}

func (l *LambdaHandler) http(ctx context.Context, payload []byte) ([]byte, error) {
	var req events.APIGatewayV2HTTPRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		return nil, fmt.Errorf("lambda: API Gateway v2 event: %w", err)
	}
	resp, err := l.v2.ProxyWithContext(ctx, req)
	if err != nil {
		// Only a malformed event gets here (a body that is not base64, a bad path): the
		// caller sent something API Gateway would not, so it is the caller's error.
		resp = problemResponse(ctx, req.RawPath, httpx.Errorf(httpx.CodeInvalid, "request could not be decoded"))
	}
	return json.Marshal(resp)
}

// event posts an EventBridge event to the handler as a binary-mode CloudEvent: detail-type
// is its type, source its source, id its id, time its time and detail its JSON data.
func (l *LambdaHandler) event(ctx context.Context, payload []byte) ([]byte, error) {
	var e events.EventBridgeEvent
	if err := json.Unmarshal(payload, &e); err != nil {
		return nil, fmt.Errorf("lambda: EventBridge event: %w", err)
	}
	var missing []string
	for name, v := range map[string]string{"id": e.ID, "source": e.Source, "detail-type": e.DetailType} {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("lambda: EventBridge event %q lacks %s", e.ID, strings.Join(missing, ", "))
	}
	path := l.paths[e.DetailType]
	if path == "" {
		path = "/"
	}
	var body io.Reader = http.NoBody
	hasData := len(e.Detail) > 0 && string(e.Detail) != "null"
	if hasData {
		body = bytes.NewReader(e.Detail)
	}
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://lambda.invalid"+path, body)
	if err != nil {
		return nil, fmt.Errorf("lambda: event path %q: %w", path, err)
	}
	r.RequestURI = r.URL.RequestURI()
	r.RemoteAddr = "127.0.0.1:0"
	r.Header.Set("Ce-Specversion", "1.0")
	r.Header.Set("Ce-Id", e.ID)
	r.Header.Set("Ce-Source", e.Source)
	r.Header.Set("Ce-Type", e.DetailType)
	if !e.Time.IsZero() {
		r.Header.Set("Ce-Time", e.Time.UTC().Format(time.RFC3339Nano))
	}
	if hasData {
		r.Header.Set("Content-Type", "application/json")
		r.ContentLength = int64(len(e.Detail))
	}
	w := &recorder{header: http.Header{}}
	l.h.ServeHTTP(w, r)
	status := w.statusCode()
	if status < 200 || status > 299 {
		l.log.WarnContext(ctx, "event refused", "type", e.DetailType, "source", e.Source, "id", e.ID, "path", path, "status", status)
		// Lambda retries a failed asynchronous invocation, then parks it in the dead-letter
		// queue: the same fate a Knative Trigger gives a 5xx. A 4xx (poison) is retried
		// too; the Receiver's dedup keeps the retries harmless.
		return nil, fmt.Errorf("lambda: event %s (%s from %s) to %s: handler answered %d: %s",
			e.ID, e.DetailType, e.Source, path, status, bytes.TrimSpace(w.body.Bytes()))
	}
	return []byte(`{"status":` + strconv.Itoa(status) + `}`), nil
}

func problemResponse(ctx context.Context, path string, err error) events.APIGatewayV2HTTPResponse {
	r := (&http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, Header: http.Header{}}).WithContext(ctx)
	w := &recorder{header: http.Header{}}
	httpx.WriteError(w, r, nil, err)
	headers := map[string]string{}
	for k, v := range w.header {
		headers[k] = strings.Join(v, ",")
	}
	return events.APIGatewayV2HTTPResponse{StatusCode: w.statusCode(), Headers: headers, Body: w.body.String()}
}

// implicitOK makes a handler that writes nothing answer 200, as net/http does; the proxy's
// response writer would otherwise report "status code not set" and API Gateway a 502.
func implicitOK(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tw := &wroteTracker{ResponseWriter: w}
		h.ServeHTTP(tw, r)
		if !tw.wrote {
			tw.WriteHeader(http.StatusOK)
		}
	})
}

type wroteTracker struct {
	http.ResponseWriter
	wrote bool
}

func (t *wroteTracker) WriteHeader(status int) {
	t.wrote = true
	t.ResponseWriter.WriteHeader(status)
}

func (t *wroteTracker) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// recorder is the response writer of an event delivery: only the status and body matter.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}

func (r *recorder) statusCode() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}
