package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/ledger"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/runtime"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/trading"
)

// TestPositionsWithVerifiedTokens runs the function as it is deployed: main's build through
// shared/runtime with INTERNAL_TOKEN_PUBLIC_KEY, so the runtime verifies the gateway's tokens
// and the handler trusts nothing else. X-Tenant alone is a 401, and a token for one tenant
// reads that tenant's account whatever X-Tenant says.
func TestPositionsWithVerifiedTokens(t *testing.T) {
	rs := redistest.Start(t)
	rdb, err := store.Open(rs.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	l := ledger.New(rdb, store.NewKeys("exec"))
	at := time.Date(2026, 11, 20, 1, 0, 0, 0, time.UTC)
	cash := map[string]int64{"acme": 1_000_000, "globex": 7_777_777}
	for tenant, c := range cash {
		amount := decimal.NewFromInt(c)
		if _, err := l.Append(context.Background(), tenant, "dep", ledger.Start, ledger.Event{Type: ledger.CashDeposited, At: at, Amount: &amount}); err != nil {
			t.Fatal(err)
		}
	}

	priv, pub := auth.GenerateInternalKey()
	key, err := auth.ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	gateway := auth.NewSigner(key)
	otherPriv, _ := auth.GenerateInternalKey()
	otherKey, _ := auth.ParsePrivateKey(otherPriv)
	forger := auth.NewSigner(otherKey)

	port := redistest.FreePort(t)
	t.Setenv("PORT", strconv.Itoa(port))
	t.Setenv("BIND_ADDR", "127.0.0.1")
	t.Setenv("K_SERVICE", "execution-positions")
	t.Setenv("REDIS_URL", rs.URL())
	t.Setenv("INTERNAL_TOKEN_PUBLIC_KEY", pub)
	t.Setenv("SHUTDOWN_TIMEOUT", "5s")
	t.Setenv("LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runtime.Run[cfg](ctx, "execution-positions", build) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		resp, err := http.Get(base + "/health/readiness")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		select {
		case err := <-done:
			t.Fatalf("function stopped: %v", err)
		default:
		}
		if i > 1000 {
			t.Fatalf("function not ready: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}

	acme := &auth.Principal{Subject: "k1", Tenant: "acme", Roles: []string{"trader"}}
	mint := func(s *auth.Signer, p *auth.Principal, audience string) string {
		tok, err := s.Mint(p, audience)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for name, tc := range map[string]struct {
		token      string
		tenant     string // X-Tenant
		wantStatus int
		wantTenant string // 200 only
	}{
		"X-Tenant without a token":         {tenant: "globex", wantStatus: http.StatusUnauthorized},
		"nothing":                          {wantStatus: http.StatusUnauthorized},
		"token":                            {token: mint(gateway, acme, "execution-positions"), wantStatus: http.StatusOK, wantTenant: "acme"},
		"token and another X-Tenant":       {token: mint(gateway, acme, "execution-positions"), tenant: "globex", wantStatus: http.StatusOK, wantTenant: "acme"},
		"token for another function":       {token: mint(gateway, acme, "execution-orders"), tenant: "globex", wantStatus: http.StatusUnauthorized},
		"token signed by another key":      {token: mint(forger, &auth.Principal{Subject: "x", Tenant: "globex"}, "execution-positions"), wantStatus: http.StatusUnauthorized},
		"token without a tenant, X-Tenant": {token: mint(gateway, &auth.Principal{Subject: "svc"}, "execution-positions"), tenant: "globex", wantStatus: http.StatusUnauthorized},
	} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", base+"/api/v1/execution/positions", nil)
			if tc.token != "" {
				req.Header.Set(auth.InternalTokenHeader, tc.token)
			}
			if tc.tenant != "" {
				req.Header.Set(trading.TenantHeader, tc.tenant)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("%d, want %d: %s", resp.StatusCode, tc.wantStatus, b)
			}
			if tc.wantStatus != http.StatusOK {
				if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
					t.Errorf("answered as %q: %s", ct, b)
				}
				if strings.Contains(string(b), "7777777") {
					t.Errorf("globex's account leaked: %s", b)
				}
				return
			}
			var got struct {
				Tenant string          `json:"tenant"`
				Cash   decimal.Decimal `json:"cash"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%v: %s", err, b)
			}
			if got.Tenant != tc.wantTenant || !got.Cash.Equal(decimal.NewFromInt(cash[tc.wantTenant])) {
				t.Fatalf("read %s's account (cash %s), want %s's", got.Tenant, got.Cash, tc.wantTenant)
			}
		})
	}
}
