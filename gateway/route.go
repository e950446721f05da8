package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// route is one Route with its policy resolved and its collaborators attached.
type route struct {
	Route
	g        *Gateway
	name     string // "GET /api/v1/data/stocks/{symbol}"
	id       string // short, Redis-safe form of name
	limit    Limit
	tenant   Limit // per tenant as well (zero: none)
	failOpen bool
	quota    int // daily
	monthly  int // monthly quota
	cacheTTL time.Duration
	up       *upstream
	sla      *slaRoute
	attrs    routeAttrs
	// precomputed rate-limit header values
	policyHeader      []string
	limitHeader       []string
	tenantLimitHeader []string
	// serve handles the request once the caller is admitted (proxy, or the gateway's own API).
	serve func(w http.ResponseWriter, r *http.Request, p *auth.Principal)
}

// pickLimit is the route's own limit, else the configured one, with the period defaulting
// to period and the burst to the rate; zero stays zero (no limit).
func pickLimit(own, configured Limit, period time.Duration) Limit {
	l := own
	if l.zero() {
		l = configured
	}
	if l.zero() {
		return Limit{}
	}
	if l.Period <= 0 {
		l.Period = period
	}
	if l.Burst <= 0 {
		l.Burst = l.Rate
	}
	return l
}

// policyItem is one item of the RateLimit-Policy header (IETF draft): name, quota, window.
func policyItem(name string, l Limit) string {
	return `"` + name + `";q=` + strconv.Itoa(l.Rate) + `;w=` + strconv.Itoa(int(math.Ceil(l.Period.Seconds())))
}

func (g *Gateway) newRoute(rt Route) (*route, error) {
	x := &route{Route: rt, g: g, name: rt.Method + " " + rt.Path}
	x.id = routeID(x.name)
	x.limit = pickLimit(rt.RateLimit, g.cfg.RateLimit, time.Second)
	x.tenant = pickLimit(rt.TenantRateLimit, g.cfg.TenantRateLimit, x.limit.Period)
	switch rt.OnLimiterDown {
	case FailOpen:
		x.failOpen = true
	case FailClosed:
	default:
		x.failOpen = rt.Idempotent
	}
	x.quota = rt.DailyQuota
	if x.quota == 0 {
		x.quota = g.cfg.DailyQuota
	}
	x.monthly = rt.MonthlyQuota
	if x.monthly == 0 {
		x.monthly = g.cfg.MonthlyQuota
	}
	if rt.Method == http.MethodGet {
		x.cacheTTL = rt.CacheTTL
	}
	x.sla = g.sla.route(x.name)
	x.attrs = g.metrics.routeAttrs(x.name)
	policy := policyItem("default", x.limit)
	x.limitHeader = []string{strconv.Itoa(x.limit.Rate)}
	if !x.tenant.zero() {
		policy += ", " + policyItem("tenant", x.tenant)
		x.tenantLimitHeader = []string{strconv.Itoa(x.tenant.Rate)}
	}
	x.policyHeader = []string{policy}
	if rt.Function != "" {
		x.up = g.upstreamFor(rt.Function)
		x.serve = x.proxy
	} else if x.serve = g.ownHandler(rt); x.serve == nil {
		return nil, fmt.Errorf("gateway: route %s names no function", x.name)
	}
	return x, nil
}

// routeID turns a route's name into a Redis key part without spaces or braces.
func routeID(name string) string {
	return strings.NewReplacer(" ", "", "/", ".", "{", "", "}", "", ":", "").Replace(name)
}

func (x *route) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := writerState(w)
	if sw != nil {
		sw.route = x
	}
	p, err := x.g.authenticate(r)
	if err != nil {
		x.g.metrics.authFailure(r.Context(), err)
		writeAuthError(w, r, err)
		return
	}
	if sw != nil {
		sw.principal = p
	}
	// Deny by default: a route that declares no roles admits nobody.
	if !p.HasAnyRole(x.Roles) {
		httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeForbidden, "this route needs one of the roles %s", strings.Join(x.Roles, ", ")))
		return
	}
	if !x.g.limiter.admit(w, r, x, p) {
		return
	}
	if r.ContentLength < 0 && hasBody(r) && !bufferBody(w, r, x.g.cfg.MaxBodyBytes) {
		return // unknown length: read whole before anything acts on it (body.go)
	}
	r = r.WithContext(auth.NewContextWithPrincipal(r.Context(), p))
	x.serve(w, r, p)
}

// errRedisDown is an authentication that could not be decided because the key store is down.
var errRedisDown = errors.New("key store unavailable")

// authenticate reads the caller's credential: an API key in X-API-Key or Authorization:
// Bearer (told apart from a JWT by its dt_ prefix), or a bearer JWT when JWT is configured.
func (g *Gateway) authenticate(r *http.Request) (*auth.Principal, error) {
	cred, isKey, err := credential(r.Header)
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	if isKey {
		p, err := g.deps.Keys.Authenticate(ctx, cred)
		if errors.Is(err, auth.ErrUnavailable) {
			return nil, errRedisDown
		}
		if err != nil {
			return nil, errBadCredential
		}
		return &p, nil
	}
	if g.deps.JWT == nil {
		return nil, errBadCredential
	}
	vctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	p, err := g.deps.JWT.Verify(vctx, cred)
	if err != nil {
		return nil, errBadCredential
	}
	return &p, nil
}

var (
	errNoCredential  = errors.New("no credential")
	errBadCredential = errors.New("invalid credential")
)

// credential returns the presented credential and whether it is an API key: X-API-Key, else
// Authorization: Bearer <token68> (RFC 6750 §2.1; an API key or a JWT, both within token68).
// No credential (empty headers count as absent; another scheme, such as Basic, is not one of
// ours) is errNoCredential; a credential header sent twice, a Bearer without a token, or a
// value outside token68 is errBadCredential, and nothing of it is returned.
func credential(h http.Header) (string, bool, error) {
	if ks := h["X-Api-Key"]; len(ks) > 1 || len(ks) == 1 && ks[0] != "" {
		if len(ks) != 1 || !isToken68(ks[0]) {
			return "", false, errBadCredential
		}
		return ks[0], true, nil
	}
	as := h["Authorization"]
	if len(as) == 0 {
		return "", false, errNoCredential
	}
	if len(as) > 1 {
		return "", false, errBadCredential
	}
	scheme, tok, _ := strings.Cut(strings.TrimLeft(as[0], " \t"), " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", false, errNoCredential
	}
	tok = strings.Trim(tok, " \t")
	if !isToken68(tok) {
		return "", false, errBadCredential
	}
	return tok, auth.LooksLikeAPIKey(tok), nil
}

// isToken68 reports whether s is a token68 (RFC 9110 §11.2): 1*( ALPHA / DIGIT / "-" / "." /
// "_" / "~" / "+" / "/" ) *"=".
func isToken68(s string) bool {
	i := 0
	for ; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			break
		}
	}
	if i == 0 {
		return false
	}
	for ; i < len(s); i++ {
		if s[i] != '=' {
			return false
		}
	}
	return true
}

func writeAuthError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, errRedisDown):
		httpx.WriteError(w, r, nil, &httpx.Error{Code: httpx.CodeUnavailable, Message: "authentication is temporarily unavailable", RetryAfter: time.Second, Err: err})
	case errors.Is(err, errNoCredential):
		w.Header().Set("WWW-Authenticate", `Bearer realm="day-trade"`)
		httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeUnauthenticated, "an API key (X-API-Key or Authorization: Bearer) or a bearer token is required"))
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="day-trade", error="invalid_token"`)
		httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeUnauthenticated, "the credential is invalid, expired or revoked"))
	}
}
