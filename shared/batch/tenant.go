package batch

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// TenantHeader carries the caller's tenant to a function that is not given the gateway's
// public key (INTERNAL_TOKEN_PUBLIC_KEY unset: a function run on its own, in tests). With
// the key set, the runtime verifies the gateway's signed token and the tenant comes from it
// alone; this header is then ignored.
const TenantHeader = "X-Tenant"

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Identity tells a function which tenant a request acts for. It is the one place that knows
// where identity comes from.
type Identity struct {
	tokens bool // the runtime verifies internal tokens: trust nothing else
}

// NewIdentity returns the identity source: verified tokens when tokenMode (the function has
// INTERNAL_TOKEN_PUBLIC_KEY, and shared/runtime puts the verified principal in the request's
// context), TenantHeader otherwise.
func NewIdentity(tokenMode bool) *Identity { return &Identity{tokens: tokenMode} }

// Tenant returns the tenant the request acts for, or a CodeUnauthenticated error.
func (id *Identity) Tenant(r *http.Request) (string, error) {
	if p := auth.PrincipalFromContext(r.Context()); p != nil {
		if !tenantRE.MatchString(p.Tenant) {
			return "", httpx.Errorf(httpx.CodeUnauthenticated, "the caller's identity has no tenant")
		}
		return p.Tenant, nil
	}
	if id.tokens {
		return "", httpx.Errorf(httpx.CodeUnauthenticated, "authentication required")
	}
	t := r.Header.Get(TenantHeader)
	if t == "" {
		return "", httpx.Errorf(httpx.CodeUnauthenticated, "no tenant identity on the request")
	}
	if !tenantRE.MatchString(t) {
		return "", httpx.Errorf(httpx.CodeUnauthenticated, "malformed tenant identity")
	}
	return t, nil
}

// Require refuses, in token mode, a request without a verified caller (401) or whose caller
// holds none of roles (403). In header mode the gateway alone enforces a route's roles.
func (id *Identity) Require(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := auth.PrincipalFromContext(r.Context())
			switch {
			case p == nil && id.tokens:
				httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeUnauthenticated, "authentication required"))
			case p != nil && len(roles) > 0 && !p.HasAnyRole(roles):
				httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeForbidden, "role %s required", strings.Join(roles, " or ")))
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}
