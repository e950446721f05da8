package events

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/protocol"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/store"
)

// HandlerFunc does the work for one event. It returns nil once the work is committed; an
// error's httpx code decides what the sender is told: a Retryable code is transient (the
// event is redelivered), any other code marks the event as poison (never redelivered).
type HandlerFunc func(ctx context.Context, e cloudevents.Event) error

// ReceiverOptions configures a Receiver. Zero values take the defaults.
type ReceiverOptions struct {
	Logger *slog.Logger // default: discard
	// DedupTTL is how long a processed event's (source, id) is remembered. It must exceed the
	// Broker's whole redelivery window (retries × backoff). Default 24h.
	DedupTTL time.Duration
	// Lease bounds one attempt: the "processing" mark expires after it, so a redelivery after
	// a crashed worker proceeds, and the handler's context is cancelled at it, so a live worker
	// does not overlap that redelivery for long. Default 2m.
	Lease time.Duration
	// MaxBodyBytes caps a request body; larger requests get 413. Default 1 MiB.
	MaxBodyBytes int64
	// TracerProvider, when set, makes the Receiver start a consumer span per event as a child
	// of the event's traceparent. Without it the handler's ctx still carries that span context.
	TracerProvider trace.TracerProvider
	// Consumer (the function's catalog name) is part of every dedup key. Two functions that
	// consume the same event (one Trigger each) in the same key space must set it, or the
	// first to process the event marks it done for the other, which then skips it.
	Consumer string
}

// Receiver dispatches delivered CloudEvents to handlers by type, at most one successful run
// per (source, id) while the dedup mark lives.
type Receiver struct {
	rdb    redis.UniversalClient
	keys   store.Keys
	opts   ReceiverOptions
	log    *slog.Logger
	tracer trace.Tracer

	mu       sync.RWMutex
	handlers map[string]HandlerFunc
	fallback HandlerFunc // for types without a handler; nil answers 400
}

// Dedup mark values. A mark is "processing <token>" while one worker holds the lease,
// "done" once the work committed, "failed <status> <message>" for a poison event.
const (
	markProcessing = "processing"
	markDone       = "done"
	markFailed     = "failed"
)

// redisTimeout bounds each dedup call; Redis answers in microseconds or is down.
const redisTimeout = 3 * time.Second

// releaseScript deletes the mark only if this worker still holds the lease: after a lease
// expired another worker may hold the mark, and deleting it would let a third one in.
var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// NewReceiver returns a Receiver that keeps dedup marks in rdb under keys (the service's key
// space, e.g. store.NewKeys("ml")).
func NewReceiver(rdb redis.UniversalClient, keys store.Keys, opts ReceiverOptions) (*Receiver, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.DedupTTL <= 0 {
		opts.DedupTTL = 24 * time.Hour
	}
	if opts.Lease <= 0 {
		opts.Lease = 2 * time.Minute
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 1 << 20
	}
	r := &Receiver{rdb: rdb, keys: keys, opts: opts, log: opts.Logger, handlers: map[string]HandlerFunc{}}
	if opts.TracerProvider != nil {
		r.tracer = opts.TracerProvider.Tracer("github.com/day-trade/platform/events")
	}
	return r, nil
}

// Handle registers fn for events of type typ, replacing any earlier handler for it.
func (r *Receiver) Handle(typ string, fn HandlerFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handlers[typ] = fn
}

// HandleDefault registers fn for every type without its own handler. A dead-letter sink
// uses it: it receives whatever type failed elsewhere.
func (r *Receiver) HandleDefault(fn HandlerFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fallback = fn
}

// HTTPHandler returns the handler to mount on the function's router (usually POST /). It
// accepts binary and structured mode.
func (r *Receiver) HTTPHandler() http.Handler { return http.HandlerFunc(r.serveHTTP) }

// serveHTTP reads the event with the SDK's binding (binary and structured mode) and calls
// receive itself rather than through the SDK's client.NewHTTPReceiveHandler, for two reasons:
//
//   - That handler answers 500 for most malformed messages (bad attribute values, broken
//     JSON), which a Broker would retry forever; a malformed event is poison: 400.
//   - It hands each request to a goroutine that takes the next message from a channel
//     shared by all requests (sdk-go v2.16 client/http_receiver.go). When a caller gives up
//     (its context ends) before its goroutine takes a message, the message is left for the
//     next request's goroutine, and that request then hangs until yet another one arrives:
//     under a Broker that times out slow deliveries, the function stalls.
func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "CloudEvents are POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, r.opts.MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "event too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	e, err := parse(req.Context(), req.Header, body)
	if err != nil {
		r.log.WarnContext(req.Context(), "malformed cloudevent", "err", err,
			"ce_id", req.Header.Get("Ce-Id"), "ce_type", req.Header.Get("Ce-Type"), "ce_source", req.Header.Get("Ce-Source"))
		http.Error(w, "malformed CloudEvent: "+err.Error(), http.StatusBadRequest)
		return
	}
	res := r.receive(req.Context(), *e)
	status, msg := http.StatusOK, ""
	var hr *cehttp.Result
	if cloudevents.ResultAs(res, &hr) {
		status = hr.StatusCode
		msg = fmt.Sprintf(hr.Format, hr.Args...)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}

// parse reads a CloudEvent from header and body and validates it; a message the SDK panics
// on is malformed.
func parse(ctx context.Context, header http.Header, body []byte) (e *cloudevents.Event, err error) {
	defer func() {
		if p := recover(); p != nil {
			e, err = nil, fmt.Errorf("cannot parse: %v", p)
		}
	}()
	m := cehttp.NewMessage(header.Clone(), io.NopCloser(bytes.NewReader(body)))
	if e, err = binding.ToEvent(ctx, m); err != nil {
		return nil, err
	}
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// receive processes one event; its result becomes the HTTP status.
func (r *Receiver) receive(ctx context.Context, e cloudevents.Event) protocol.Result {
	log := r.log.With("ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source())
	r.mu.RLock()
	fn := r.handlers[e.Type()]
	if fn == nil {
		fn = r.fallback
	}
	r.mu.RUnlock()
	if fn == nil {
		log.WarnContext(ctx, "no handler for event type")
		return cehttp.NewResult(http.StatusBadRequest, "no handler for event type %q", e.Type())
	}

	// The work is not tied to the Broker's connection: if the Broker gives up waiting, the
	// work still commits and its redelivery finds "done". The lease bounds it instead.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opts.Lease)
	defer cancel()

	key := r.dedupKey(e)
	token := markProcessing + " " + uuid.NewString()
	// A mark can expire between a refused SET NX and the GET that reads it (another attempt's
	// lease ran out just then): claim again rather than send the Broker a needless retry.
	for attempt := 0; ; attempt++ {
		acquired, err := r.redis(ctx, func(ctx context.Context) (bool, error) {
			return r.rdb.SetNX(ctx, key, token, r.opts.Lease).Result()
		})
		if err != nil {
			log.ErrorContext(ctx, "dedup store unavailable; refusing to process without dedup", "err", err)
			return cehttp.NewResult(http.StatusServiceUnavailable, "dedup store unavailable")
		}
		if acquired {
			break
		}
		if res, vanished := r.duplicate(ctx, log, key); !vanished || attempt == 2 {
			return res
		}
	}

	ctx, end := r.startSpan(ctx, e)
	err := r.run(ctx, fn, e)
	end(err)

	if err == nil {
		if _, merr := r.redis(ctx, func(ctx context.Context) (bool, error) {
			return true, r.rdb.Set(ctx, key, markDone, r.opts.DedupTTL).Err()
		}); merr != nil {
			// The work committed, so the answer is 2xx; without the mark a redelivery after the
			// lease runs the handler again, which at-least-once handlers tolerate.
			log.ErrorContext(ctx, "event processed but done mark not stored", "err", merr)
		}
		log.InfoContext(ctx, "event processed")
		return cehttp.NewResult(http.StatusOK, "processed")
	}

	herr := httpx.AsError(err)
	if herr.Code.Retryable() {
		if _, rerr := r.redis(ctx, func(ctx context.Context) (bool, error) {
			return true, releaseScript.Run(ctx, r.rdb, []string{key}, token).Err()
		}); rerr != nil {
			log.ErrorContext(ctx, "cannot release processing mark; redelivery waits for the lease", "err", rerr)
		}
		log.WarnContext(ctx, "event failed; sender should retry", "code", herr.Code, "err", err)
		return cehttp.NewResult(herr.Code.Status(), "%s", http.StatusText(herr.Code.Status()))
	}

	status := poisonStatus(herr.Code)
	mark := fmt.Sprintf("%s %d %s", markFailed, status, herr.Message)
	if _, merr := r.redis(ctx, func(ctx context.Context) (bool, error) {
		return true, r.rdb.Set(ctx, key, mark, r.opts.DedupTTL).Err()
	}); merr != nil {
		log.ErrorContext(ctx, "cannot store failed mark", "err", merr)
	}
	log.WarnContext(ctx, "poison event rejected", "code", herr.Code, "status", status, "err", err)
	return cehttp.NewResult(status, "%s", herr.Message)
}

// duplicate answers a delivery whose (source, id) already has a mark; vanished says the mark
// expired before it could be read, so the caller may claim the event again.
func (r *Receiver) duplicate(ctx context.Context, log *slog.Logger, key string) (res protocol.Result, vanished bool) {
	var mark string
	_, err := r.redis(ctx, func(ctx context.Context) (bool, error) {
		var err error
		mark, err = r.rdb.Get(ctx, key).Result()
		if errors.Is(err, redis.Nil) {
			mark, err = "", nil
		}
		return true, err
	})
	if err != nil {
		log.ErrorContext(ctx, "dedup store unavailable", "err", err)
		return cehttp.NewResult(http.StatusServiceUnavailable, "dedup store unavailable"), false
	}
	state, rest, _ := strings.Cut(mark, " ")
	switch state {
	case markDone:
		log.InfoContext(ctx, "duplicate of a processed event; acknowledged without redoing")
		return cehttp.NewResult(http.StatusOK, "duplicate"), false
	case markFailed:
		code, msg, _ := strings.Cut(rest, " ")
		status, err := strconv.Atoi(code)
		if err != nil || status < 400 || status > 499 {
			status = http.StatusUnprocessableEntity
		}
		log.InfoContext(ctx, "duplicate of a poison event", "status", status)
		return cehttp.NewResult(status, "%s", msg), false
	case markProcessing:
		log.InfoContext(ctx, "duplicate while another attempt holds the lease")
		return cehttp.NewResult(http.StatusTooManyRequests, "event is being processed; retry later"), false
	default:
		// The mark vanished between SET NX and GET (its lease expired); after a few such
		// races in a row the sender retries later.
		return cehttp.NewResult(http.StatusServiceUnavailable, "retry"), true
	}
}

// run calls fn, turning a panic into a retryable internal error so that the lease is
// released rather than left to expire.
func (r *Receiver) run(ctx context.Context, fn HandlerFunc, e cloudevents.Event) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.log.ErrorContext(ctx, "event handler panicked", "panic", p, "stack", string(debug.Stack()),
				"ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source())
			err = httpx.Errorf(httpx.CodeInternal, "handler panicked")
		}
	}()
	return fn(ctx, e)
}

func (r *Receiver) startSpan(ctx context.Context, e cloudevents.Event) (context.Context, func(error)) {
	ctx = extractTrace(ctx, e)
	if r.tracer == nil {
		return ctx, func(error) {}
	}
	ctx, span := r.tracer.Start(ctx, "process "+e.Type(), trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(eventAttributes(e)...))
	return ctx, func(err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, string(httpx.ErrorCode(err)))
		}
		span.End()
	}
}

// redis runs one dedup call with its own deadline.
func (r *Receiver) redis(ctx context.Context, call func(ctx context.Context) (bool, error)) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	return call(ctx)
}

// dedupKey hashes (source, id) so that arbitrary attribute text cannot collide across the
// pair or make a huge key.
func (r *Receiver) dedupKey(e cloudevents.Event) string {
	sum := sha256.Sum256([]byte(e.Source() + "\x00" + e.ID()))
	if r.opts.Consumer != "" {
		return r.keys.Key("ce", r.opts.Consumer, hex.EncodeToString(sum[:]))
	}
	return r.keys.Key("ce", hex.EncodeToString(sum[:]))
}

// poisonStatus is the answer for a non-retryable failure. Only 400 and 422 are used because
// Knative and the SDK retry 404, 409 and 413, which would redeliver a poison event.
func poisonStatus(c httpx.Code) int {
	if c == httpx.CodeInvalid {
		return http.StatusBadRequest
	}
	return http.StatusUnprocessableEntity
}
