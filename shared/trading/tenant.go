package trading

import (
	"net/http"
	"regexp"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// TenantHeader carries the caller's tenant to an execution function that is not given the
// gateway's public key (INTERNAL_TOKEN_PUBLIC_KEY unset: a function run on its own, in
// tests). With the key set the tenant comes from the verified token alone and this header is
// ignored (NewTenants).
const TenantHeader = "X-Tenant"

// DefaultTenant is the tenant of a header-mode request with neither a principal nor
// TenantHeader.
const DefaultTenant = "default"

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Tenants is the one place the execution functions learn whose account a request touches.
// Its zero value trusts only verified tokens, so a function that forgets to say otherwise
// fails closed.
type Tenants struct {
	headers bool // no token verification in this process: fall back to TenantHeader
}

// NewTenants returns the tenant source of a function: verified tokens alone when tokens (the
// function has INTERNAL_TOKEN_PUBLIC_KEY, and shared/runtime puts the verified principal in
// the request's context), else TenantHeader when a request has no principal. In token mode
// the header is ignored: anyone inside the mesh can set it.
func NewTenants(tokens bool) Tenants { return Tenants{headers: !tokens} }

// FromRequest returns the tenant r acts for: the verified principal's; without one, in
// header mode only, TenantHeader, else DefaultTenant. A request without a usable identity is
// a CodeUnauthenticated error; a malformed TenantHeader is CodeInvalid.
func (t Tenants) FromRequest(r *http.Request) (string, error) {
	if p := auth.PrincipalFromContext(r.Context()); p != nil {
		if !tenantRE.MatchString(p.Tenant) {
			return "", httpx.Errorf(httpx.CodeUnauthenticated, "the caller's identity has no valid tenant")
		}
		return p.Tenant, nil
	}
	if !t.headers {
		return "", httpx.Errorf(httpx.CodeUnauthenticated, "authentication required")
	}
	h := r.Header.Get(TenantHeader)
	if h == "" {
		return DefaultTenant, nil
	}
	if !tenantRE.MatchString(h) {
		return "", httpx.Invalid("invalid tenant", httpx.FieldError{Field: TenantHeader, Reason: "1 to 64 letters, digits, '_', '.' or '-'"})
	}
	return h, nil
}
