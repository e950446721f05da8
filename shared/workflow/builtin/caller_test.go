package builtin

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// TestCallerSignsAsTheGatewayDoes: with a Signer, a callee behind the runtime's token check
// (auth.Middleware with its own name as audience) sees the schedule's tenant as a verified
// principal; without one it answers 401, and a token for another callee is refused.
func TestCallerSignsAsTheGatewayDoes(t *testing.T) {
	t.Parallel()
	priv, _ := auth.GenerateInternalKey()
	key, err := auth.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(key)
	var seen *auth.Principal
	callee := func(name string) http.Handler {
		return auth.Middleware(auth.NewVerifier(signer.PublicKey(), name))(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := auth.PrincipalFromContext(r.Context())
			if p == nil {
				httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeUnauthenticated, "authentication required"))
				return
			}
			seen = p
			_ = httpx.Encode(w, http.StatusOK, map[string]string{"ok": "yes"})
		}))
	}
	// One server plays two functions, routed by Host as the activator does; each verifies
	// tokens for its own name only.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, _, _ := strings.Cut(r.Host, ".")
		if name == "impostor" {
			// Checks tokens addressed to execution-trade: one minted for impostor fails.
			callee("execution-trade").ServeHTTP(w, r)
			return
		}
		callee(name).ServeHTTP(w, r)
	}))
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, srv.Listener.Addr().String())
	}}}

	signed := &Caller{Client: client, Namespace: "day-trade", Signer: signer}
	var out map[string]string
	if err := signed.Call(context.Background(), "execution-trade", "POST", "/x", "acme", nil, map[string]int{"a": 1}, &out); err != nil {
		t.Fatal(err)
	}
	if seen == nil || seen.Tenant != "acme" || seen.Subject != WorkflowSubject || !seen.HasAnyRole([]string{"trader"}) {
		t.Fatalf("callee saw %+v", seen)
	}
	if err := signed.Call(context.Background(), "impostor", "GET", "/x", "acme", nil, nil, nil); httpx.ErrorCode(err) != httpx.CodeUpstream || !strings.Contains(err.Error(), "401") {
		t.Fatalf("token for another audience: %v", err)
	}
	unsigned := &Caller{Client: client, Namespace: "day-trade"}
	if err := unsigned.Call(context.Background(), "notifications-send", "POST", "/x", "acme", nil, nil, nil); !strings.Contains(err.Error(), "401") {
		t.Fatalf("unsigned call to a verifying callee: %v", err)
	}
}
