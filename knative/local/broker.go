package local

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/functions"
)

// BrokerOptions configure the local Broker. Zero values take the defaults. Each Trigger's
// delivery (retries, backoff, dead-letter sink) is its catalog subscription's
// (functions.Subscription.Policy), the same the Knative manifests write into its Trigger;
// Retry and BackoffDelay only override it, for tests that cannot wait for real backoff.
type BrokerOptions struct {
	// Port is the ingress port on 127.0.0.1; 0 picks a free one.
	Port int
	// Retry, when not 0, replaces every Trigger's retry count (negative: no retries).
	Retry int
	// BackoffDelay, when positive, replaces every Trigger's first retry delay; retry n
	// waits BackoffDelay·2^n.
	BackoffDelay time.Duration
	// Stream is the Redis Stream holding accepted events; "" means "broker:default:events".
	Stream string
	// MaxLen caps the stream (approximately); 0 means 100000 entries.
	MaxLen int64
	// InFlight bounds concurrent deliveries per Trigger; 0 means 64.
	InFlight int
	// RedeliverAfter is how often pending deliveries that no goroutine holds (a dead-letter
	// sink that was down too) are tried again; 0 means 30s.
	RedeliverAfter time.Duration
}

func (o BrokerOptions) withDefaults() BrokerOptions {
	if o.Stream == "" {
		o.Stream = "broker:default:events"
	}
	if o.MaxLen <= 0 {
		o.MaxLen = 100000
	}
	if o.InFlight <= 0 {
		o.InFlight = 64
	}
	if o.RedeliverAfter <= 0 {
		o.RedeliverAfter = 30 * time.Second
	}
	return o
}

// Extension attributes Knative's dispatcher adds to an event it sends to a dead-letter sink.
const (
	ExtErrorDest = "knativeerrordest" // the subscriber that failed
	ExtErrorCode = "knativeerrorcode" // its last HTTP status; 0 when it never answered
	ExtErrorData = "knativeerrordata" // base64 of its last response body, truncated
)

// maxEventBytes bounds an event at the ingress, as events.Receiver bounds it at a function.
const maxEventBytes = 1 << 20

// trigger is one catalog subscription: exact filters and where matching events go.
type trigger struct {
	name   string
	group  string // the Redis consumer group: every trigger reads the whole stream
	fn     functions.Function
	typ    string
	source string // "" matches any source
	path   string
	host   string
	// delivery is the subscription's catalog policy with the broker's overrides applied.
	delivery functions.Delivery
}

func (t *trigger) matches(e cloudevents.Event) bool {
	return e.Type() == t.typ && (t.source == "" || e.Source() == t.source)
}

// dest is the subscriber's URL as Knative reports it in knativeerrordest.
func (t *trigger) dest() string { return "http://" + t.host + t.path }

// broker plays Knative's Broker and its Triggers on one machine. The ingress stores every
// accepted event in a Redis Stream before answering 202; each Trigger is a consumer group on
// that stream, so each gets every event, filters it exactly, delivers it through the
// activator (cold-starting the subscriber), retries with exponential backoff, sends it to the
// dead-letter sink when the retries are spent, and acknowledges the entry only then. An entry
// that was read but never acknowledged (the platform stopped mid-delivery) is delivered again
// when the broker next starts.
type broker struct {
	opts      BrokerOptions
	log       *slog.Logger
	rdb       *redis.Client
	triggers  []*trigger
	sinks     map[string]*trigger // dead-letter sinks by catalog name
	activator string              // base URL deliveries are sent to, routed by Host
	client    *http.Client
	srv       *http.Server
	ln        net.Listener
	url       string
}

// brokerConfig is what newBroker needs from the platform.
type brokerConfig struct {
	Opts         BrokerOptions
	Functions    []functions.Function
	Namespace    string
	RedisURL     string
	ActivatorURL string
	Log          *slog.Logger
}

// newBroker opens Redis and the ingress listener and reads the Triggers from the catalog.
func newBroker(cfg brokerConfig) (*broker, error) {
	opts := cfg.Opts.withDefaults()
	ropts, err := redis.ParseURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("local: broker: %w", err)
	}
	ropts.DialTimeout, ropts.WriteTimeout = time.Second, 2*time.Second
	ropts.ReadTimeout = 2 * time.Second
	b := &broker{
		opts: opts, log: cfg.Log.With("component", "broker"), rdb: redis.NewClient(ropts),
		activator: strings.TrimSuffix(cfg.ActivatorURL, "/"),
		// No client timeout: each attempt gets the subscriber's own catalog timeout.
		client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second}},
	}
	used := map[string]bool{}
	byName := map[string]functions.Function{}
	for _, f := range cfg.Functions {
		byName[f.Name] = f
	}
	b.sinks = map[string]*trigger{}
	for _, f := range cfg.Functions {
		for _, s := range f.Events {
			base := f.Name + "-" + strings.ReplaceAll(strings.TrimPrefix(s.Type, "com.daytrade."), ".", "-")
			name := base
			for i := 2; used[name]; i++ {
				name = base + "-" + strconv.Itoa(i)
			}
			used[name] = true
			path := s.Path
			if path == "" {
				path = "/"
			}
			d := s.Policy(f.Name)
			if opts.Retry != 0 {
				d.Retry = max(opts.Retry, 0)
			}
			if opts.BackoffDelay > 0 {
				d.BackoffDelay = opts.BackoffDelay
			}
			if sink, ok := byName[d.DeadLetterSink]; ok && b.sinks[sink.Name] == nil {
				// A sink gets the dead letter with the delivery of the subscription that failed.
				b.sinks[sink.Name] = &trigger{name: sink.Name, fn: sink, path: "/", host: sink.Host(cfg.Namespace)}
			}
			b.triggers = append(b.triggers, &trigger{
				name: name, group: "trigger:" + name, fn: f, typ: s.Type, source: s.Source,
				path: path, host: f.Host(cfg.Namespace), delivery: d,
			})
		}
	}
	b.ln, err = net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(opts.Port)))
	if err != nil {
		b.rdb.Close()
		return nil, fmt.Errorf("local: broker ingress: %w", err)
	}
	// The path mirrors the cluster's multi-tenant ingress, /<namespace>/<broker>; the ingress
	// accepts any path, as a K_SINK may be the bare host.
	b.url = "http://" + b.ln.Addr().String() + "/" + cfg.Namespace + "/default"
	b.srv = &http.Server{
		Handler:           http.HandlerFunc(b.ingress),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(b.log.Handler(), slog.LevelWarn),
	}
	return b, nil
}

// run creates the consumer groups, then serves the ingress and delivers until ctx ends;
// spawn runs each long-lived goroutine (the platform's, so that Close waits for them).
func (b *broker) run(ctx context.Context, spawn func(func()) bool) error {
	for _, t := range b.triggers {
		// "$": a new Trigger sees events from now on, as in Knative; an existing group keeps
		// its position and its pending entries across restarts.
		err := b.rdb.XGroupCreateMkStream(ctx, b.opts.Stream, t.group, "$").Err()
		if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
			return fmt.Errorf("local: broker: consumer group %s: %w", t.group, err)
		}
	}
	spawn(func() {
		if err := b.srv.Serve(b.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.log.Error("broker ingress stopped", "err", err)
		}
	})
	spawn(func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = b.srv.Shutdown(sctx)
	})
	var wg sync.WaitGroup
	for _, t := range b.triggers {
		wg.Add(1)
		if !spawn(func() { defer wg.Done(); b.consume(ctx, t) }) {
			wg.Done()
		}
	}
	spawn(func() {
		wg.Wait()
		b.client.CloseIdleConnections()
		_ = b.rdb.Close()
	})
	return nil
}

// ingress accepts one event in binary or structured mode and stores it before answering.
func (b *broker) ingress(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "CloudEvents are POSTed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxEventBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "event too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	e, err := parseEvent(r.Context(), r.Header, body)
	if err != nil {
		http.Error(w, "malformed CloudEvent: "+err.Error(), http.StatusBadRequest)
		return
	}
	enc, err := json.Marshal(e)
	if err != nil {
		http.Error(w, "cannot encode event", http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	id, err := b.rdb.XAdd(ctx, &redis.XAddArgs{
		Stream: b.opts.Stream, MaxLen: b.opts.MaxLen, Approx: true,
		Values: []string{"event", string(enc)},
	}).Result()
	if err != nil {
		b.log.Error("cannot store event; refusing it", "ce_id", e.ID(), "ce_type", e.Type(), "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "broker storage unavailable", http.StatusServiceUnavailable)
		return
	}
	b.log.Debug("event accepted", "ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source(), "entry", id)
	w.WriteHeader(http.StatusAccepted)
}

// parseEvent reads a binary or structured CloudEvent; a message the SDK panics on is malformed.
func parseEvent(ctx context.Context, header http.Header, body []byte) (e *cloudevents.Event, err error) {
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

// consumer is the one consumer name of every group: one broker reads a stream at a time,
// and a restarted broker finds its predecessor's unacknowledged entries under the same name.
const consumer = "local"

// consume delivers t's entries: first those pending from an earlier run, then new ones, and
// every RedeliverAfter the pending ones again (those no delivery goroutine holds).
func (b *broker) consume(ctx context.Context, t *trigger) {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inflight = map[string]bool{}
		sem      = make(chan struct{}, b.opts.InFlight)
		cursor   = "0" // reading pending entries after this id; "" once caught up
		sweep    = time.NewTicker(b.opts.RedeliverAfter)
	)
	defer sweep.Stop()
	defer wg.Wait()
	for ctx.Err() == nil {
		select {
		case <-sweep.C:
			if cursor == "" {
				cursor = "0"
			}
		default:
		}
		args := &redis.XReadGroupArgs{Group: t.group, Consumer: consumer, Count: int64(b.opts.InFlight), Block: time.Second}
		if cursor != "" {
			args.Streams, args.Block = []string{b.opts.Stream, cursor}, -1
		} else {
			args.Streams = []string{b.opts.Stream, ">"}
		}
		res, err := b.rdb.XReadGroup(ctx, args).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			if ctx.Err() == nil {
				b.log.Warn("broker cannot read the stream; retrying", "trigger", t.name, "err", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		var msgs []redis.XMessage
		if len(res) > 0 {
			msgs = res[0].Messages
		}
		if cursor != "" {
			if len(msgs) == 0 {
				cursor = "" // caught up with the pending entries
				continue
			}
			cursor = msgs[len(msgs)-1].ID
		}
		for _, m := range msgs {
			mu.Lock()
			busy := inflight[m.ID]
			if !busy {
				inflight[m.ID] = true
			}
			mu.Unlock()
			if busy {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			wg.Go(func() {
				defer func() {
					<-sem
					mu.Lock()
					delete(inflight, m.ID)
					mu.Unlock()
				}()
				b.handle(ctx, t, m)
			})
		}
	}
}

// handle delivers one entry to t and acknowledges it once it is delivered, dead-lettered,
// or not t's to deliver. Left unacknowledged (platform stopping, dead-letter sink down) it
// is delivered again later.
func (b *broker) handle(ctx context.Context, t *trigger, m redis.XMessage) {
	raw, _ := m.Values["event"].(string)
	var e cloudevents.Event
	if raw == "" || json.Unmarshal([]byte(raw), &e) != nil {
		// A trimmed entry reads back without fields; nothing can be delivered.
		b.log.Warn("unreadable stream entry dropped", "trigger", t.name, "entry", m.ID)
		b.ack(t, m.ID)
		return
	}
	if !t.matches(e) {
		b.ack(t, m.ID)
		return
	}
	log := b.log.With("trigger", t.name, "ce_id", e.ID(), "ce_type", e.Type(), "ce_source", e.Source())
	res := b.deliverWithRetry(ctx, log, t, t.delivery, e)
	switch {
	case res.ok():
		b.ack(t, m.ID)
		return
	case ctx.Err() != nil:
		return
	}
	sink := b.sinks[t.delivery.DeadLetterSink]
	if sink == nil {
		log.Error("event dropped after its retries: no dead-letter sink", "status", res.status, "err", res.err)
		b.ack(t, m.ID)
		return
	}
	dl := e.Clone()
	dl.SetExtension(ExtErrorDest, t.dest())
	dl.SetExtension(ExtErrorCode, res.status)
	if len(res.body) > 0 {
		dl.SetExtension(ExtErrorData, base64.StdEncoding.EncodeToString(res.body))
	}
	log.Warn("event sent to the dead-letter sink", "status", res.status, "err", res.err)
	if dres := b.deliverWithRetry(ctx, log, sink, t.delivery, dl); dres.ok() {
		b.ack(t, m.ID)
		return
	}
	if ctx.Err() == nil {
		log.Error("dead-letter sink failed too; the event stays pending", "redeliver_after", b.opts.RedeliverAfter)
	}
}

func (b *broker) ack(t *trigger, id string) {
	// Not the delivery's context: an event delivered just as the platform stops is acked.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := b.rdb.XAck(ctx, b.opts.Stream, t.group, id).Err(); err != nil {
		b.log.Error("cannot ack; the event will be delivered again", "trigger", t.name, "entry", id, "err", err)
	}
}

// result is the outcome of the last delivery attempt.
type result struct {
	status int // 0 when the subscriber never answered
	body   []byte
	err    error
}

func (r result) ok() bool { return r.err == nil && r.status >= 200 && r.status < 300 }

// retriable follows Knative's dispatcher: network errors, 404, 408, 409, 429 and 5xx are
// retried; any other answer is final (a poison event goes straight to the dead-letter sink).
func (r result) retriable() bool {
	switch {
	case r.err != nil:
		return true
	case r.status == http.StatusNotFound, r.status == http.StatusRequestTimeout,
		r.status == http.StatusConflict, r.status == http.StatusTooManyRequests, r.status >= 500:
		return true
	}
	return false
}

// deliverWithRetry sends e to t, retrying with d's exponential backoff.
func (b *broker) deliverWithRetry(ctx context.Context, log *slog.Logger, t *trigger, d functions.Delivery, e cloudevents.Event) result {
	var res result
	for attempt := 0; ; attempt++ {
		res = b.deliver(ctx, t, e)
		if res.ok() || !res.retriable() || attempt >= d.Retry || ctx.Err() != nil {
			return res
		}
		delay := d.BackoffDelay << attempt
		log.Debug("delivery failed; retrying", "subscriber", t.fn.Name, "attempt", attempt+1, "status", res.status, "err", res.err, "after", delay)
		if !sleep(ctx, delay) {
			return res
		}
	}
}

// deliver POSTs e in binary mode to the subscriber through the activator.
func (b *broker) deliver(ctx context.Context, t *trigger, e cloudevents.Event) result {
	timeout := t.fn.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.activator+t.path, nil)
	if err != nil {
		return result{err: err}
	}
	req.Host = t.host
	if err := cehttp.WriteRequest(binding.WithForceBinary(ctx), binding.ToMessage(&e), req); err != nil {
		return result{err: err}
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	return result{status: resp.StatusCode, body: body}
}

// sleep waits d or until ctx ends; it reports whether the full d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// BrokerURL is the Broker ingress every process gets as BROKER_URL (and K_SINK).
func (p *Platform) BrokerURL() string {
	if p.broker == nil {
		return ""
	}
	return p.broker.url
}

// startBroker starts the Broker and gives every process its ingress as BROKER_URL and
// K_SINK (as a SinkBinding would). It runs before any process starts.
func (p *Platform) startBroker() error {
	b, err := newBroker(brokerConfig{
		Opts: p.opts.Broker, Functions: p.opts.Functions, Namespace: p.opts.Namespace,
		RedisURL: p.redis.url, ActivatorURL: p.ActivatorURL(), Log: p.log,
	})
	if err != nil {
		return err
	}
	if err := b.run(p.ctx, p.spawn); err != nil {
		_ = b.ln.Close()
		_ = b.rdb.Close()
		return err
	}
	p.broker = b
	p.opts.Env = append(slices.Clone(p.opts.Env), "BROKER_URL="+b.url, "K_SINK="+b.url)
	p.log.Info("broker up", "url", b.url, "triggers", len(b.triggers), "dead_letter_sinks", len(b.sinks))
	return nil
}
