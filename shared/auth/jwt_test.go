package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// idp is a real HTTP JWKS endpoint (and OIDC discovery document) that counts its fetches.
type idp struct {
	srv     *httptest.Server
	fetches atomic.Int64
	down    atomic.Bool
	mu      sync.Mutex
	keys    []map[string]string
}

func newIdP(t *testing.T) *idp {
	t.Helper()
	p := &idp{}
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		if p.down.Load() {
			w.WriteHeader(503)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": p.keys})
	})
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/jwks"})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func (p *idp) addRSA(kid string, k *rsa.PublicKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys = append(p.keys, map[string]string{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
}

func (p *idp) addEC(kid string, k *ecdsa.PublicKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pt, err := k.Bytes() // 0x04 || X || Y, 32 bytes each on P-256
	if err != nil {
		panic(err)
	}
	p.keys = append(p.keys, map[string]string{"kty": "EC", "kid": kid, "crv": "P-256",
		"x": b64(pt[1:33]), "y": b64(pt[33:65])})
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

func testRSA(t *testing.T) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	})
	return rsaKey
}

func claims(iss string, mut func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{"iss": iss, "aud": "day-trade", "sub": "user-1", "tenant": "t1", "roles": []string{"trader"},
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	if mut != nil {
		mut(c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, kid string, c jwt.MapClaims, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t *testing.T, p *idp, mut func(*JWTConfig)) *JWTVerifier {
	t.Helper()
	cfg := JWTConfig{Issuer: p.srv.URL, Audience: []string{"day-trade"}, JWKSURL: p.srv.URL + "/jwks", Cooldown: time.Hour}
	if mut != nil {
		mut(&cfg)
	}
	v, err := NewJWTVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestJWTAcceptsGoodTokens(t *testing.T) {
	p := newIdP(t)
	rk := testRSA(t)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.addRSA("rsa-1", &rk.PublicKey)
	p.addEC("ec-1", &ek.PublicKey)
	v := newVerifier(t, p, func(c *JWTConfig) { c.JWKSURL = ""; c.Discovery = true })
	for name, tok := range map[string]string{
		"RS256": sign(t, jwt.SigningMethodRS256, "rsa-1", claims(p.srv.URL, nil), rk),
		"ES256": sign(t, jwt.SigningMethodES256, "ec-1", claims(p.srv.URL, nil), ek),
	} {
		pr, err := v.Verify(context.Background(), tok)
		if err != nil || pr.Subject != "user-1" || pr.Tenant != "t1" || !pr.HasAnyRole([]string{"trader"}) || pr.Method != MethodJWT {
			t.Errorf("%s: %+v %v", name, pr, err)
		}
	}
	if n := p.fetches.Load(); n != 1 {
		t.Errorf("%d JWKS fetches for two known keys, want 1", n)
	}
}

// TestJWTRejectsBadTokensWithoutFetching: every one of these is refused, and none makes the
// gateway fetch the JWKS (the cache is warm; the cooldown allows no further fetch anyway, but
// the checks must run before any key lookup: the fetch count proves the order).
func TestJWTRejectsBadTokensWithoutFetching(t *testing.T) {
	p := newIdP(t)
	rk := testRSA(t)
	p.addRSA("rsa-1", &rk.PublicKey)
	v := newVerifier(t, p, func(c *JWTConfig) { c.Cooldown = time.Nanosecond })
	iss := p.srv.URL
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&rk.PublicKey))})
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(iss, nil)).SignedString(jwt.UnsafeAllowNoneSignatureType)
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)

	bad := map[string]string{
		"alg none":                  none,
		"HS256 with RSA public key": sign(t, jwt.SigningMethodHS256, "rsa-1", claims(iss, nil), pubPEM),
		"expired":                   sign(t, jwt.SigningMethodRS256, "unknown-kid", claims(iss, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), rk),
		"no exp":                    sign(t, jwt.SigningMethodRS256, "unknown-kid", claims(iss, func(c jwt.MapClaims) { delete(c, "exp") }), rk),
		"wrong audience":            sign(t, jwt.SigningMethodRS256, "unknown-kid", claims(iss, func(c jwt.MapClaims) { c["aud"] = "other" }), rk),
		"wrong issuer":              sign(t, jwt.SigningMethodRS256, "unknown-kid", claims("https://evil", nil), rk),
		"not yet valid":             sign(t, jwt.SigningMethodRS256, "unknown-kid", claims(iss, func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), rk),
		"kid with ../":              sign(t, jwt.SigningMethodRS256, "../../etc/passwd", claims(iss, nil), rk),
		"kid as URL":                sign(t, jwt.SigningMethodRS256, "http://169.254.169.254/", claims(iss, nil), rk),
		"garbage":                   "not.a.jwt",
		"empty":                     "",
	}
	for name, tok := range bad {
		if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s: err %v, want ErrInvalidToken", name, err)
		}
	}
	if n := p.fetches.Load(); n != 0 {
		t.Fatalf("bad tokens caused %d JWKS fetches", n)
	}
	// A well-formed token signed by a key the IdP never published: refused after one fetch.
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, "rsa-1", claims(iss, nil), otherKey)); err == nil {
		t.Fatal("token signed by a foreign key accepted")
	}
}

// TestJWKSRefetchIsBoundedAndSingleFlight: a flood of tokens with random unknown kids makes
// at most one fetch per cooldown, however concurrent.
func TestJWKSRefetchIsBoundedAndSingleFlight(t *testing.T) {
	p := newIdP(t)
	rk := testRSA(t)
	p.addRSA("rsa-1", &rk.PublicKey)
	v := newVerifier(t, p, func(c *JWTConfig) { c.Cooldown = time.Hour })
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			kid := "kid-" + big.NewInt(int64(i)).String()
			_, _ = v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, kid, claims(p.srv.URL, nil), rk))
		}()
	}
	wg.Wait()
	if n := p.fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches for 200 unknown kids within one cooldown, want 1", n)
	}
	// After rotation the new kid is found once the cooldown allows a fetch.
	rk2, _ := rsa.GenerateKey(rand.Reader, 2048)
	p.addRSA("rsa-2", &rk2.PublicKey)
	v.mu.Lock()
	v.attempted = time.Time{} // the cooldown has passed
	v.mu.Unlock()
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodRS256, "rsa-2", claims(p.srv.URL, nil), rk2)); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
}

// TestJWKSStaleWhileIdPDown: keys already fetched keep verifying while the IdP fails.
func TestJWKSStaleWhileIdPDown(t *testing.T) {
	p := newIdP(t)
	rk := testRSA(t)
	p.addRSA("rsa-1", &rk.PublicKey)
	v := newVerifier(t, p, func(c *JWTConfig) { c.RefreshEvery = time.Nanosecond; c.Cooldown = time.Nanosecond })
	tok := sign(t, jwt.SigningMethodRS256, "rsa-1", claims(p.srv.URL, nil), rk)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	p.down.Store(true)
	if err := v.Refresh(context.Background()); err == nil {
		t.Fatal("refresh from a down IdP reported success")
	}
	for i := 0; i < 5; i++ {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatalf("stale key not served while the IdP is down: %v", err)
		}
	}
}

func TestHS256OnlyWhenConfigured(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	if _, err := NewJWTVerifier(JWTConfig{Algorithms: []string{"HS256"}, HMACSecret: []byte("short")}); err == nil {
		t.Fatal("HS256 with a short secret accepted")
	}
	v, err := NewJWTVerifier(JWTConfig{Algorithms: []string{"HS256"}, HMACSecret: secret, Issuer: "x", Audience: []string{"day-trade"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, "", claims("x", nil), secret)); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodHS256, "", claims("x", nil), []byte("another-secret-another-secret-xx"))); err == nil {
		t.Fatal("HS256 with the wrong secret accepted")
	}
}

// A verifier without an issuer or an audience to check is refused at start, not run lax.
func TestJWTNeedsIssuerAndAudience(t *testing.T) {
	base := JWTConfig{JWKSURL: "http://127.0.0.1:1/jwks", Issuer: "https://idp.test", Audience: []string{"day-trade"}}
	if _, err := NewJWTVerifier(base); err != nil {
		t.Fatalf("complete config refused: %v", err)
	}
	noIss, noAud := base, base
	noIss.Issuer, noAud.Audience = "", nil
	for name, cfg := range map[string]JWTConfig{"issuer": noIss, "audience": noAud} {
		if _, err := NewJWTVerifier(cfg); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("config without %s: err %v, want one naming it", name, err)
		}
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func FuzzJWTVerify(f *testing.F) {
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJSUzI1NiIsImtpZCI6Ii4uLy4uIn0.eyJleHAiOjF9.c2ln")
	v, err := NewJWTVerifier(JWTConfig{JWKSURL: "http://127.0.0.1:1/jwks", Issuer: "https://idp.test", Audience: []string{"day-trade"}, Cooldown: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	v.attempted = time.Now() // no fetch from fuzz inputs
	f.Fuzz(func(t *testing.T, tok string) {
		if _, err := v.Verify(context.Background(), tok); err == nil {
			t.Fatalf("accepted %q", tok)
		}
	})
}

func FuzzParseJWK(f *testing.F) {
	f.Add([]byte(`{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}`))
	f.Add([]byte(`{"kty":"EC","crv":"P-256","x":"","y":""}`))
	f.Add([]byte(`{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}`))
	f.Fuzz(func(t *testing.T, b []byte) { _, _, _ = parseJWK(b) })
}
