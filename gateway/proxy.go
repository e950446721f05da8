package gateway

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"syscall"
	"time"

	"github.com/day-trade/platform/shared/httpx"
)

// NewTransport is the upstream transport: keep-alive pools sized for a busy gateway, and,
// when dialAddr is set, every connection goes there (the local activator) while the Host
// header still names the function.
func NewTransport(dialAddr string) *http.Transport {
	d := &net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}
	dial := d.DialContext
	if dialAddr != "" {
		dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
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

func newProxy(log *slog.Logger, host string, timeout time.Duration, tr http.RoundTripper) http.Handler {
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = host
			pr.Out.Host = host
			pr.SetXForwarded()
		},
		Transport:     tr,
		FlushInterval: -1, // stream Server-Sent Events and chunked answers as they come
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			httpx.WriteError(w, r, log, upstreamError(host, err))
		},
	}
	if timeout <= 0 {
		return p
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		p.ServeHTTP(w, r.WithContext(ctx))
	})
}

// upstreamError classifies a failed upstream call: a deadline is a 504, a function that
// cannot be reached is a 503 worth retrying soon, anything else a 502.
func upstreamError(host string, err error) error {
	switch {
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
