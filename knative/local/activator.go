package local

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"time"

	"github.com/day-trade/platform/shared/httpx"
)

// activator plays Knative's activator and cluster-local routing in one: it maps a request's
// Host to a function, starts the function if no process runs (holding the request until it
// is live), counts the request in flight, and proxies it.
type activator struct {
	p         *Platform
	hosts     map[string]*proc
	transport *http.Transport
	proxy     *httputil.ReverseProxy
}

type targetKey struct{}

func newActivator(p *Platform) *activator {
	a := &activator{p: p, hosts: map[string]*proc{}}
	ns := p.opts.Namespace
	for _, name := range p.names {
		pr := p.procs[name]
		// The names a pod's resolver accepts for a Knative Service, from the search path.
		for _, h := range []string{name, name + "." + ns, name + "." + ns + ".svc", pr.fn.Host(ns)} {
			a.hosts[h] = pr
		}
	}
	dialer := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	a.transport = &http.Transport{
		Proxy:                 nil, // loopback only; never an HTTP_PROXY from the environment
		DialContext:           dialer.DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass bodies through as the function encoded them
		ReadBufferSize:        32 << 10,
		WriteBufferSize:       32 << 10,
	}
	a.proxy = &httputil.ReverseProxy{
		Rewrite:       rewrite,
		Transport:     a.transport,
		FlushInterval: -1, // streaming and SSE reach the client as the function writes
		ErrorLog:      slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
		ErrorHandler:  a.proxyError,
	}
	return a
}

// forwarded are the headers Rewrite strips; the gateway in front of us set them and the
// function should see them as the gateway sent them, as behind Knative's activator.
var forwarded = []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"}

func rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = pr.In.Context().Value(targetKey{}).(string)
	pr.Out.URL.RawQuery = pr.In.URL.RawQuery
	pr.Out.Host = pr.In.Host
	for _, h := range forwarded {
		if v, ok := pr.In.Header[h]; ok {
			pr.Out.Header[h] = v
		}
	}
	if ip, _, err := net.SplitHostPort(pr.In.RemoteAddr); err == nil {
		if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		pr.Out.Header.Set("X-Forwarded-For", ip)
	}
}

func (a *activator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	pr := a.lookup(r.Host)
	if pr == nil {
		httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeNotFound, "no function serves host %q", r.Host))
		return
	}
	inst, err := a.p.ensure(r.Context(), pr, "request", true)
	if err != nil {
		if r.Context().Err() != nil {
			return // the caller gave up while the function was starting
		}
		httpx.WriteError(w, r, a.p.log, &httpx.Error{
			Code:       httpx.CodeUnavailable,
			Message:    fmt.Sprintf("function %s is not available", pr.fn.Name),
			RetryAfter: time.Second,
			Err:        err,
		})
		return
	}
	defer a.p.release(pr)
	a.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), targetKey{}, inst.addr)))
}

// lookup maps a Host header to its function: <name>[.<ns>[.svc[.cluster.local]]], any case,
// with or without a port or a trailing dot.
func (a *activator) lookup(host string) *proc {
	h := strings.ToLower(host)
	if hh, _, err := net.SplitHostPort(h); err == nil {
		h = hh
	}
	return a.hosts[strings.TrimSuffix(h, ".")]
}

func (a *activator) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if r.Context().Err() != nil || errors.Is(err, context.Canceled) {
		return // the client went away; nothing to answer
	}
	a.p.log.Warn("proxy error", "host", r.Host, "path", r.URL.Path, "err", err)
	httpx.WriteError(w, r, nil, httpx.Wrap(err, httpx.CodeUpstream, "the function did not answer"))
}
