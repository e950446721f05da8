package trading

import (
	"net/http"
	"regexp"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// TenantHeader is the transitional way a tenant reaches the execution functions while they
// do not yet verify the gateway's internal identity token (auth.Middleware).
const TenantHeader = "X-Tenant"

// DefaultTenant is the tenant of an anonymous request without TenantHeader.
const DefaultTenant = "default"

var tenantRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// TenantFromRequest is the one place the execution functions learn whose account a request
// touches: the authenticated principal's tenant when auth.Middleware put one in the
// context, else (until every function verifies the gateway's token) the X-Tenant header,
// else DefaultTenant. When the functions mount auth.Middleware and auth.Require, drop the
// fallback here and nothing else changes.
func TenantFromRequest(r *http.Request) (string, error) {
	t := DefaultTenant
	if p := auth.PrincipalFromContext(r.Context()); p != nil {
		t = p.Tenant
	} else if h := r.Header.Get(TenantHeader); h != "" {
		t = h
	}
	if !tenantRE.MatchString(t) {
		return "", httpx.Invalid("invalid tenant", httpx.FieldError{Field: TenantHeader, Reason: "1 to 64 letters, digits, '_', '.' or '-'"})
	}
	return t, nil
}
