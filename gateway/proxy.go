package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/day-trade/platform/gateway/registry"
	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/resilience"
)

// NewTransport is the upstream transport: keep-alive pools sized for a busy gateway, and,
// when dialAddr is set, every connection goes there (the local activator) while the Host
// header still names the function.
func NewTransport(dialAddr string) *http.Transport {
	// DialControl refuses link-local and metadata addresses whatever name led there (SSRF).
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second, Control: registry.DialControl}
	dial := d.DialContext
	if dialAddr != "" {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if !strings.HasSuffix(addr[:max(strings.LastIndexByte(addr, ':'), 0)], ".svc.cluster.local") {
				return d.DialContext(ctx, network, addr) // a registered instance's own address
			}
			return d.DialContext(ctx, network, dialAddr)
		}
	}
	return &http.Transport{
		DialContext:           dial,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0, // bounded per request by the context instead
		ExpectContinueTimeout: time.Second,
	}
}

// upstream is one function as the gateway sees it: its proxy, breaker, bulkhead and budget.
type upstream struct {
	name     string
	host     string
	log      *slog.Logger
	breaker  *resilience.Breaker
	bulkhead *resilience.Bulkhead
	budget   *resilience.Budget
	backoff  resilience.Backoff
	attempts int
	base     http.RoundTripper
	proxy    *httputil.ReverseProxy
	timeout  time.Duration
	metrics  *metrics
	attrs    upstreamAttrs
	balancing
}

func newUpstream(g *Gateway, name string) *upstream {
	cfg := g.cfg
	u := &upstream{
		name: name, host: name + "." + cfg.Namespace + ".svc.cluster.local", log: g.log,
		bulkhead: resilience.NewBulkhead(cfg.MaxConcurrent),
		budget:   resilience.NewBudget(cfg.RetryBudget, 5),
		backoff:  resilience.Backoff{Base: cfg.RetryBase, Max: cfg.RetryMax},
		attempts: cfg.RetryAttempts, base: g.deps.Transport, timeout: cfg.UpstreamTimeout,
		metrics: g.metrics, attrs: g.metrics.upstreamAttrs(name),
	}
	u.balancing = g.balancingFor(name, u.host)
	bs := cfg.Breaker
	userHook := bs.OnStateChange
	bs.OnStateChange = func(n string, from, to resilience.State) {
		lv := slog.LevelWarn
		if to == resilience.StateClosed {
			lv = slog.LevelInfo
		}
		g.log.Log(context.Background(), lv, "circuit breaker", "upstream", n, "from", from.String(), "to", to.String())
		g.metrics.breakerChanged(n, to)
		if userHook != nil {
			userHook(n, from, to)
		}
	}
	u.breaker = resilience.NewBreaker(name, bs)
	u.proxy = &httputil.ReverseProxy{
		Rewrite:        u.rewrite,
		Transport:      u,
		FlushInterval:  0, // ReverseProxy still flushes at once for text/event-stream and unknown-length (chunked) answers
		ErrorLog:       slog.NewLogLogger(g.log.Handler(), slog.LevelWarn),
		ErrorHandler:   u.errorHandler,
		ModifyResponse: modifyResponse,
		BufferPool:     copyBuffers,
	}
	return u
}

// TraceSampled is the upstream transport for a gateway that samples traces: a request whose
// span is sampled goes through traced (otelhttp's transport: a client span, its attributes
// and metrics), any other goes straight to base with only the trace context injected, so that
// the unsampled majority skips the client span's work and still carries traceparent (flag 00)
// for the function to continue the trace consistently. Upstream latency for every call is
// the gateway's own gateway.upstream.duration histogram; give traced a no-op meter provider.
func TraceSampled(traced, base http.RoundTripper, prop propagation.TextMapPropagator) http.RoundTripper {
	return &sampledTransport{traced: traced, base: base, prop: prop}
}

type sampledTransport struct {
	traced, base http.RoundTripper
	prop         propagation.TextMapPropagator
}

func (t *sampledTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	sc := trace.SpanContextFromContext(req.Context())
	if sc.IsSampled() {
		return t.traced.RoundTrip(req)
	}
	if sc.IsValid() {
		// req is the proxy's own outgoing copy (ReverseProxy clones the headers), so the
		// header may be set here without touching the caller's request.
		t.prop.Inject(req.Context(), propagation.HeaderCarrier(req.Header))
	}
	return t.base.RoundTrip(req)
}

// copyBuffers lends ReverseProxy its body-copy buffers: without a pool it allocates 32 KiB
// per request, which was most of the gateway's allocated bytes and so of its GC work.
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }

// reqState carries what the proxy's hooks need from the route handler.
type reqState struct {
	route *route
	token string
	body  clientBody // the streamed request body, when there is one (body.go)
	// upstream is the time spent waiting for upstream answers (to their headers), over every
	// attempt: the access log's upstream_ms, so that a slow answer says whose time it was.
	upstream time.Duration
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	s, _ := ctx.Value(stateKey{}).(*reqState)
	return s
}

func (u *upstream) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = u.host
	pr.Out.Host = u.host
	pr.SetXForwarded()
	h := pr.Out.Header
	// The caller's credentials stay at the gateway; the function gets the signed identity.
	delete(h, "Authorization")
	delete(h, "X-Api-Key")
	delete(h, "Cookie")
	if st := stateFrom(pr.In.Context()); st != nil {
		h[auth.InternalTokenHeader] = []string{st.token}
	}
}

// upstreamHeadersDropped are answer headers the gateway owns or that leak internals.
var upstreamHeadersDropped = []string{"Server", "X-Powered-By", "X-Content-Type-Options", "X-Frame-Options",
	"Referrer-Policy", "Content-Security-Policy", "Strict-Transport-Security", "Access-Control-Allow-Origin",
	"Access-Control-Allow-Credentials", "Access-Control-Expose-Headers", auth.InternalTokenHeader}

func modifyResponse(resp *http.Response) error {
	for _, k := range upstreamHeadersDropped {
		delete(resp.Header, k)
	}
	return nil
}

// forward proxies r to the upstream, once the caller has been admitted.
func (x *route) forward(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	u := x.up
	if !u.bulkhead.TryAcquire() {
		httpx.WriteError(w, r, nil, &httpx.Error{Code: httpx.CodeUnavailable, RetryAfter: time.Second,
			Message: "upstream " + u.name + " is at its concurrency limit"})
		return
	}
	defer u.bulkhead.Release()
	tok, err := x.g.deps.Signer.Mint(p, u.name)
	if err != nil {
		httpx.WriteError(w, r, x.g.log, err)
		return
	}
	st := &reqState{route: x, token: tok}
	if hasBody(r) && r.GetBody == nil {
		if x.retryable(r) {
			// A retried call must send the same body again.
			if !bufferBody(w, r, x.g.cfg.MaxBodyBytes) {
				return
			}
		} else {
			st.body.ReadCloser = r.Body
			r.Body = &st.body
		}
	}
	ctx, cancel := context.WithTimeout(context.WithValue(r.Context(), stateKey{}, st), u.timeout)
	defer cancel()
	u.proxy.ServeHTTP(w, r.WithContext(ctx))
	if sw := writerState(w); sw != nil {
		sw.upstream += st.upstream
	}
}

// retryable: only idempotent routes, or calls the client made safe with an Idempotency-Key.
func (x *route) retryable(r *http.Request) bool {
	return x.Idempotent || r.Header.Get("Idempotency-Key") != ""
}

// errCircuitOpen is returned by RoundTrip instead of calling an upstream whose breaker is open.
var errCircuitOpen = errors.New("circuit open")

// RoundTrip is one call through the breaker, retried with backoff under the budget when the
// route allows it and the failure is one a retry can fix (refused connection, 502/503/504).
func (u *upstream) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	st := stateFrom(ctx)
	canRetry := st != nil && st.route.retryable(req) && (req.Body == nil || req.Body == http.NoBody || req.GetBody != nil)
	policy := u.policy
	if st != nil && st.route.Balance != BalanceDefault {
		policy = st.route.Balance
	}
	u.budget.Deposit()
	var tried uint64 // instances this request has tried, so that a retry goes elsewhere
	for attempt := 0; ; attempt++ {
		done, err := u.breaker.Allow()
		if err != nil {
			return nil, errCircuitOpen
		}
		in, at := u.pool.pick(policy, tried)
		if at < maxTracked {
			tried |= 1 << uint(at)
		}
		start := time.Now()
		resp, err := u.pool.send(u.base, in, req)
		took := time.Since(start)
		u.metrics.upstreamCall(ctx, &u.attrs, resp, took)
		if st != nil {
			st.upstream += took
		}
		switch {
		case err != nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled):
			done(true) // the client left; not the upstream's fault
		case err != nil && st != nil && st.body.failure() != nil:
			done(true) // the client's body broke off; not the upstream's fault either
		default:
			ok := err == nil && resp.StatusCode < 500
			done(ok)
			u.observe(in, ok)
		}
		if !canRetry || attempt+1 >= u.attempts || !worthRetry(resp, err) || ctx.Err() != nil || !u.budget.Withdraw() {
			return resp, err
		}
		if resp != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		// A call that never reached the instance goes to another one at once; anything else
		// backs off first.
		if !(u.pool.multi.Load() && err != nil && (isDialError(err) || errors.Is(err, syscall.ECONNREFUSED))) {
			if err := resilience.Sleep(ctx, u.backoff.Delay(attempt)); err != nil {
				return nil, err
			}
		}
		next := req.Clone(ctx)
		if req.GetBody != nil {
			if next.Body, err = req.GetBody(); err != nil {
				return nil, err
			}
		}
		req = next
	}
}

func worthRetry(resp *http.Response, err error) bool {
	if err != nil {
		return isDialError(err) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
	}
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func (u *upstream) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	if st := stateFrom(r.Context()); st != nil {
		if berr := st.body.failure(); berr != nil {
			httpx.WriteError(w, r, nil, bodyError(berr, st.route.g.cfg.MaxBodyBytes))
			return
		}
	}
	httpx.WriteError(w, r, u.log, u.upstreamError(err))
}

// upstreamError classifies a failed upstream call: a deadline is a 504, an open breaker or a
// function that cannot be reached is a 503 worth retrying soon, anything else a 502.
func (u *upstream) upstreamError(err error) error {
	host := u.host
	switch {
	case errors.Is(err, errCircuitOpen):
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "upstream " + u.name + " is failing; circuit open", RetryAfter: u.breaker.OpenFor(), Err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return httpx.Wrap(err, httpx.CodeTimeout, "upstream "+host+" timed out")
	case errors.Is(err, context.Canceled):
		return httpx.Wrap(err, httpx.CodeUnavailable, "request cancelled")
	case errors.Is(err, syscall.ECONNREFUSED), isDialError(err):
		return &httpx.Error{Code: httpx.CodeUnavailable, Message: "upstream " + host + " unavailable", RetryAfter: time.Second, Err: err}
	}
	return httpx.Wrap(err, httpx.CodeUpstream, "upstream "+host+" failed")
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// proxy serves an admitted request: from the cache when the route has one, else upstream.
func (x *route) proxy(w http.ResponseWriter, r *http.Request, p *auth.Principal) {
	if x.cacheTTL > 0 {
		x.g.cache.serve(w, r, x, p)
		return
	}
	x.forward(w, r, p)
}
