package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/day-trade/platform/gateway"
)

// backendBody is the function's answer: a small fixed JSON document, as a cached quote is.
var backendBody = []byte(`{"symbol":"7203.T","interval":"1d","close":2500.5,"volume":1204300}` + "\n")

// serveRole runs one of the harness's own servers in this process (the harness starts
// itself again with -role, so that every server is a process of its own whose CPU time can
// be read and that competes with nothing else in its address space).
func serveRole(role, addr, upstream string) error {
	var h http.Handler
	switch role {
	case "backend":
		h = backendHandler()
	case "bare":
		u, err := url.Parse("http://" + upstream)
		if err != nil {
			return err
		}
		p := httputil.NewSingleHostReverseProxy(u)
		// The gateway's own upstream transport (same keep-alive pool sizes): the comparison
		// is about the chain, not about connection reuse.
		p.Transport = gateway.NewTransport("")
		h = p
	default:
		return errUnknownRole(role)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 90 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

type errUnknownRole string

func (e errUnknownRole) Error() string { return "unknown role " + strconv.Quote(string(e)) }

// backendStats counts what the backend saw: the sampled flag of each proxied request's
// traceparent (how the gateway's 1% sampling shows from outside) and OTLP trace exports.
type backendStats struct {
	Sampled     int64 `json:"sampled"`
	Unsampled   int64 `json:"unsampled"`
	NoTrace     int64 `json:"no_traceparent"`
	OTLPExports int64 `json:"otlp_exports"`
	OTLPBytes   int64 `json:"otlp_bytes"`
}

// backendHandler answers every path with backendBody, and accepts OTLP/HTTP trace exports
// (an empty protobuf answer is a valid ExportTraceServiceResponse) so that the gateway's
// sampled spans are really exported somewhere. GET /_stats reports backendStats.
func backendHandler() http.Handler {
	clen := strconv.Itoa(len(backendBody))
	var sampled, unsampled, none, exports, exportBytes atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-protobuf"):
			// An OTLP/HTTP export, whatever the path (an endpoint given as a full URL without
			// /v1/traces posts to "/").
			n, _ := io.Copy(io.Discard, r.Body)
			exports.Add(1)
			exportBytes.Add(n)
			w.Header().Set("Content-Type", "application/x-protobuf")
			w.WriteHeader(http.StatusOK)
			return
		case r.URL.Path == "/_stats":
			_ = json.NewEncoder(w).Encode(backendStats{Sampled: sampled.Load(), Unsampled: unsampled.Load(), NoTrace: none.Load(),
				OTLPExports: exports.Load(), OTLPBytes: exportBytes.Load()})
			return
		}
		// traceparent: 00-<trace id>-<parent id>-<flags>; flag bit 0 is "sampled".
		switch tp := r.Header.Get("Traceparent"); {
		case len(tp) != 55:
			none.Add(1)
		case tp[54] == '1' || tp[54] == '3' || tp[54] == '5' || tp[54] == '7' || tp[54] == '9' || tp[54] == 'b' || tp[54] == 'd' || tp[54] == 'f':
			sampled.Add(1)
		default:
			unsampled.Add(1)
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{clen}
		_, _ = w.Write(backendBody)
	})
}

func readBackendStats(addr string) backendStats {
	var s backendStats
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/_stats")
	if err != nil {
		return s
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&s)
	return s
}

func (s backendStats) minus(o backendStats) backendStats {
	return backendStats{Sampled: s.Sampled - o.Sampled, Unsampled: s.Unsampled - o.Unsampled, NoTrace: s.NoTrace - o.NoTrace,
		OTLPExports: s.OTLPExports - o.OTLPExports, OTLPBytes: s.OTLPBytes - o.OTLPBytes}
}

// idp is an OIDC provider's JWKS endpoint that counts its fetches.
type idp struct {
	srv     *http.Server
	url     string
	mu      sync.Mutex
	fetches []time.Time
	jwks    []byte
}

func startIdP() (*idp, error) {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "OKP", "crv": "Ed25519", "kid": "known-1", "alg": "EdDSA", "use": "sig",
		"x": base64.RawURLEncoding.EncodeToString(pub),
	}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &idp{url: "http://" + ln.Addr().String(), jwks: jwks}
	p.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.fetches = append(p.fetches, time.Now())
		p.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(p.jwks)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

func (p *idp) fetchTimes() []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]time.Time(nil), p.fetches...)
}

func (p *idp) close() { _ = p.srv.Close() }

// unknownKidToken is a well-formed EdDSA token, valid in every claim, whose kid the IdP has
// never published: only a JWKS lookup can refuse it.
func unknownKidToken(key ed25519.PrivateKey, issuer string) (string, error) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{
		"iss": issuer, "aud": "day-trade", "sub": "flood", "tenant": "bench", "roles": []string{"viewer"},
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	})
	t.Header["kid"] = base64.RawURLEncoding.EncodeToString(b[:])
	return t.SignedString(key)
}
