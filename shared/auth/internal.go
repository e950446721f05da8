package auth

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/day-trade/platform/shared/httpx"
)

// InternalTokenHeader carries the gateway's signed identity to a function. The gateway strips
// it (and IdentityHeaders) from every incoming request before it sets its own.
const InternalTokenHeader = "X-Dt-Identity"

// IdentityHeaders are headers a client might use to claim an identity; the gateway removes
// them all so that only its signed token speaks for the caller.
var IdentityHeaders = []string{
	InternalTokenHeader, "X-Tenant", "X-Tenant-Id", "X-User-Id", "X-User", "X-Roles", "X-Forwarded-User",
	"X-Forwarded-Email", "X-Auth-Request-User", "X-Authenticated-User", "X-Internal-Service", "X-Principal",
}

const internalIssuer = "day-trade-gateway"

// internalClaims is the internal token: who, for which tenant, with which roles, for which
// function (aud), for at most a minute.
type internalClaims struct {
	Tenant string   `json:"tenant"`
	Roles  []string `json:"roles"`
	Method string   `json:"amr,omitempty"`
	KeyID  string   `json:"kid,omitempty"`
	jwt.RegisteredClaims
}

// GenerateInternalKey makes an Ed25519 key pair for internal tokens, base64 (std) encoded:
// the private seed for the gateway (INTERNAL_TOKEN_KEY), the public key for every function
// (INTERNAL_TOKEN_PUBLIC_KEY).
func GenerateInternalKey() (private, public string) {
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	return base64.StdEncoding.EncodeToString(priv.Seed()), base64.StdEncoding.EncodeToString(pub)
}

// ParsePrivateKey decodes a base64 Ed25519 seed.
func ParsePrivateKey(s string) (ed25519.PrivateKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.SeedSize {
		return nil, errors.New("auth: internal token key must be a base64 Ed25519 seed (32 bytes)")
	}
	return ed25519.NewKeyFromSeed(b), nil
}

// ParsePublicKey decodes a base64 Ed25519 public key.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, errors.New("auth: internal token public key must be base64 Ed25519 (32 bytes)")
	}
	return ed25519.PublicKey(b), nil
}

// Signer mints internal tokens. Tokens live TTL (default 60s) and are reused for half of it
// per (principal, audience), so that a busy gateway signs a few tokens per second, not one
// per request.
type Signer struct {
	key ed25519.PrivateKey
	TTL time.Duration
	now func() time.Time

	mu    sync.Mutex
	cache map[string]mintedToken
}

type mintedToken struct {
	token   string
	renewAt time.Time
}

// NewSigner returns a signer with key.
func NewSigner(key ed25519.PrivateKey) *Signer {
	return &Signer{key: key, TTL: time.Minute, now: time.Now, cache: map[string]mintedToken{}}
}

// PublicKey is the key functions verify with.
func (s *Signer) PublicKey() ed25519.PublicKey { return s.key.Public().(ed25519.PublicKey) }

// Mint returns a token for p addressed to audience (a function name).
func (s *Signer) Mint(p *Principal, audience string) (string, error) {
	ck := audience + "\x00" + p.Method + "\x00" + p.KeyID + "\x00" + p.Subject + "\x00" + p.Tenant + "\x00" + strings.Join(p.Roles, ",")
	now := s.now()
	s.mu.Lock()
	if m, ok := s.cache[ck]; ok && now.Before(m.renewAt) {
		s.mu.Unlock()
		return m.token, nil
	}
	s.mu.Unlock()
	c := internalClaims{Tenant: p.Tenant, Roles: p.Roles, Method: p.Method, KeyID: p.KeyID, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: internalIssuer, Subject: p.Subject, Audience: jwt.ClaimStrings{audience},
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(s.TTL)),
	}}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c).SignedString(s.key)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	if len(s.cache) >= maxCached {
		clear(s.cache)
	}
	s.cache[ck] = mintedToken{token: tok, renewAt: now.Add(s.TTL / 2)}
	s.mu.Unlock()
	return tok, nil
}

// Verifier checks internal tokens in a function.
type Verifier struct {
	key    ed25519.PublicKey
	parser *jwt.Parser
}

// NewVerifier returns a verifier for tokens addressed to audience (the function's own name,
// K_SERVICE) and signed by the gateway's key.
func NewVerifier(key ed25519.PublicKey, audience string) *Verifier {
	return &Verifier{key: key, parser: jwt.NewParser(
		jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience(audience), jwt.WithIssuer(internalIssuer),
		jwt.WithExpirationRequired(), jwt.WithLeeway(5*time.Second))}
}

// Verify checks an internal token and returns its principal.
func (v *Verifier) Verify(token string) (*Principal, error) {
	var c internalClaims
	if _, err := v.parser.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return v.key, nil }); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if c.Subject == "" {
		return nil, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	return &Principal{Subject: c.Subject, Tenant: c.Tenant, Roles: c.Roles, Method: c.Method, KeyID: c.KeyID}, nil
}

// Middleware verifies the internal token when one is present and puts its principal in the
// context (PrincipalFromContext). A request with a bad token is refused with 401; a request
// without one passes anonymously (health probes, CloudEvents from the Broker), and a handler
// that needs a caller wraps itself in Require.
func Middleware(v *Verifier) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok := r.Header.Get(InternalTokenHeader)
			if tok == "" {
				next.ServeHTTP(w, r)
				return
			}
			p, err := v.Verify(tok)
			if err != nil {
				writeUnauthenticated(w, r, "invalid internal identity token")
				return
			}
			next.ServeHTTP(w, r.WithContext(NewContextWithPrincipal(r.Context(), p)))
		})
	}
}

// Require refuses requests without a principal (401) or without one of roles (403; no roles
// means any authenticated caller).
func Require(roles ...string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p := PrincipalFromContext(r.Context())
			switch {
			case p == nil:
				writeUnauthenticated(w, r, "authentication required")
			case len(roles) > 0 && !p.HasAnyRole(roles):
				httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeForbidden, "role %s required", strings.Join(roles, " or ")))
			default:
				next.ServeHTTP(w, r)
			}
		})
	}
}

func writeUnauthenticated(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="day-trade"`)
	httpx.WriteError(w, r, nil, httpx.Errorf(httpx.CodeUnauthenticated, "%s", msg))
}
