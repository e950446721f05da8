package trading_test

import (
	"net/http/httptest"
	"testing"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/trading"
)

func TestTenantsFromRequest(t *testing.T) {
	t.Parallel()
	acme := &auth.Principal{Subject: "k1", Tenant: "acme", Roles: []string{"trader"}}
	tests := map[string]struct {
		tokens    bool
		principal *auth.Principal
		header    string
		want      string
		code      httpx.Code // "" = no error
	}{
		"token mode, principal":                  {tokens: true, principal: acme, want: "acme"},
		"token mode, principal ignores a header": {tokens: true, principal: acme, header: "globex", want: "acme"},
		"token mode, header without principal":   {tokens: true, header: "globex", code: httpx.CodeUnauthenticated},
		"token mode, nothing":                    {tokens: true, code: httpx.CodeUnauthenticated},
		"token mode, principal without tenant":   {tokens: true, principal: &auth.Principal{Subject: "k2"}, header: "globex", code: httpx.CodeUnauthenticated},
		"header mode, principal wins":            {principal: acme, header: "globex", want: "acme"},
		"header mode, header":                    {header: "globex", want: "globex"},
		"header mode, nothing":                   {want: trading.DefaultTenant},
		"header mode, malformed header":          {header: "bad tenant!", code: httpx.CodeInvalid},
		"header mode, principal without tenant":  {principal: &auth.Principal{Subject: "k2"}, header: "globex", code: httpx.CodeUnauthenticated},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest("GET", "/api/v1/execution/positions", nil)
			if tc.principal != nil {
				r = r.WithContext(auth.NewContextWithPrincipal(r.Context(), tc.principal))
			}
			if tc.header != "" {
				r.Header.Set(trading.TenantHeader, tc.header)
			}
			got, err := trading.NewTenants(tc.tokens).FromRequest(r)
			if tc.code != "" {
				if httpx.ErrorCode(err) != tc.code || got != "" {
					t.Fatalf("got %q, %v; want error %s", got, err, tc.code)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	t.Run("zero value fails closed", func(t *testing.T) {
		t.Parallel()
		r := httptest.NewRequest("GET", "/api/v1/execution/positions", nil)
		r.Header.Set(trading.TenantHeader, "globex")
		if got, err := (trading.Tenants{}).FromRequest(r); httpx.ErrorCode(err) != httpx.CodeUnauthenticated {
			t.Fatalf("got %q, %v; want error %s", got, err, httpx.CodeUnauthenticated)
		}
	})
}
