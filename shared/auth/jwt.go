package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
)

// ErrInvalidToken is any JWT that must be refused; the wrapped cause is for logs only.
var ErrInvalidToken = errors.New("auth: invalid token")

// JWTConfig configures a JWTVerifier.
type JWTConfig struct {
	// Issuer is the required iss; with Discovery it is also where the OIDC document lives.
	Issuer string
	// Audience: the token's aud must hold one of these.
	Audience []string
	// Algorithms allowed (default RS256, ES256, EdDSA). HS256 is refused unless listed here
	// and HMACSecret is set.
	Algorithms []string
	HMACSecret []byte
	// JWKSURL is where keys come from; empty with Discovery set means "from the issuer".
	JWKSURL   string
	Discovery bool
	// Leeway is the clock skew allowed on exp, nbf and iat (default 30s).
	Leeway time.Duration
	// RefreshEvery is the JWKS cache TTL; older keys are refreshed in the background while
	// still served (default 15m).
	RefreshEvery time.Duration
	// Cooldown is the least time between two fetches caused by an unknown kid (default 30s):
	// a flood of tokens with random kids costs at most one fetch per cooldown.
	Cooldown time.Duration
	// TenantClaim and RolesClaim name the claims read into the Principal (default "tenant",
	// "roles"; a space-separated "scope" is read as roles too).
	TenantClaim string
	RolesClaim  string
	HTTPClient  *http.Client
}

// JWTVerifier checks JWTs against an allow-list of algorithms and keys from a JWKS.
type JWTVerifier struct {
	cfg    JWTConfig
	algs   []string
	parser *jwt.Parser
	pre    *jwt.Validator
	now    func() time.Time

	sf          singleflight.Group
	mu          sync.RWMutex
	keys        map[string]jwk
	fetched     time.Time // last successful fetch
	attempted   time.Time // last fetch attempt caused by an unknown kid
	refreshing  bool
	jwksURL     string
	fetchErrors int
}

type jwk struct {
	key crypto.PublicKey
	alg string // the JWK's own alg, "" if it did not say
}

// NewJWTVerifier builds a verifier; it fetches nothing until the first token needs a key.
func NewJWTVerifier(cfg JWTConfig) (*JWTVerifier, error) {
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{"RS256", "ES256", "EdDSA"}
	}
	for _, a := range cfg.Algorithms {
		switch a {
		case "RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA":
		case "HS256":
			if len(cfg.HMACSecret) < 32 {
				return nil, errors.New("auth: HS256 needs an HMAC secret of at least 32 bytes")
			}
		default:
			return nil, fmt.Errorf("auth: algorithm %q not allowed", a)
		}
	}
	if cfg.JWKSURL == "" && !cfg.Discovery && !slices.Contains(cfg.Algorithms, "HS256") {
		return nil, errors.New("auth: JWT needs a JWKS URL, OIDC discovery or HS256")
	}
	// Both are required: a verifier that skips iss accepts any issuer whose keys share the JWKS,
	// and one that skips aud accepts a token the IdP issued for another application (token
	// confusion).
	if cfg.Issuer == "" {
		return nil, errors.New("auth: JWT needs an issuer (JWT_ISSUER): tokens from any other issuer must be refused")
	}
	if len(cfg.Audience) == 0 {
		return nil, errors.New("auth: JWT needs an audience (JWT_AUDIENCE): without it a token issued for another application would be accepted")
	}
	if cfg.Leeway <= 0 {
		cfg.Leeway = 30 * time.Second
	}
	if cfg.RefreshEvery <= 0 {
		cfg.RefreshEvery = 15 * time.Minute
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = 30 * time.Second
	}
	if cfg.TenantClaim == "" {
		cfg.TenantClaim = "tenant"
	}
	if cfg.RolesClaim == "" {
		cfg.RolesClaim = "roles"
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	v := &JWTVerifier{cfg: cfg, algs: cfg.Algorithms, now: time.Now, keys: map[string]jwk{}, jwksURL: cfg.JWKSURL}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(cfg.Algorithms), jwt.WithExpirationRequired(), jwt.WithLeeway(cfg.Leeway),
		jwt.WithTimeFunc(func() time.Time { return v.now() }), jwt.WithIssuedAt(),
	}
	opts = append(opts, jwt.WithIssuer(cfg.Issuer), jwt.WithAudience(cfg.Audience...))
	v.parser = jwt.NewParser(opts...)
	v.pre = jwt.NewValidator(opts...)
	return v, nil
}

// Verify checks token and returns its principal. Everything that can be checked without a
// key (shape, algorithm, kid syntax, exp/nbf/iss/aud) is checked before a key is looked up,
// so a token that would be refused anyway never causes a JWKS fetch.
func (v *JWTVerifier) Verify(ctx context.Context, token string) (Principal, error) {
	if len(token) > 8192 {
		return Principal{}, fmt.Errorf("%w: too long", ErrInvalidToken)
	}
	claims := jwt.MapClaims{}
	unverified, _, err := jwt.NewParser(jwt.WithValidMethods(v.algs)).ParseUnverified(token, claims)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	if !slices.Contains(v.algs, unverified.Method.Alg()) {
		return Principal{}, fmt.Errorf("%w: algorithm %q not allowed", ErrInvalidToken, unverified.Method.Alg())
	}
	if kid, ok := unverified.Header["kid"]; ok {
		if s, isStr := kid.(string); !isStr || !validKID(s) {
			return Principal{}, fmt.Errorf("%w: malformed kid", ErrInvalidToken)
		}
	}
	if err := v.pre.Validate(claims); err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	claims = jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) { return v.keyFor(ctx, t) }); err != nil {
		return Principal{}, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	return v.principal(claims)
}

// validKID admits the kids IdPs use (base64url thumbprints, UUIDs, short names) and nothing
// that could be read as a path or carry control characters.
func validKID(s string) bool {
	if s == "" || len(s) > 128 || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '=' || c == '+') {
			return false
		}
	}
	return true
}

func (v *JWTVerifier) principal(c jwt.MapClaims) (Principal, error) {
	sub, _ := c["sub"].(string)
	if sub == "" {
		return Principal{}, fmt.Errorf("%w: no subject", ErrInvalidToken)
	}
	tenant, _ := c[v.cfg.TenantClaim].(string)
	p := Principal{Subject: sub, Tenant: tenant, Method: MethodJWT}
	switch rs := c[v.cfg.RolesClaim].(type) {
	case []any:
		for _, r := range rs {
			if s, ok := r.(string); ok && validName(s) {
				p.Roles = append(p.Roles, s)
			}
		}
	case string:
		p.Roles = strings.Fields(rs)
	}
	if scope, ok := c["scope"].(string); ok {
		p.Roles = append(p.Roles, strings.Fields(scope)...)
	}
	return p, nil
}

// keyFor returns the key for t, matched on kid and on the key type the algorithm needs, so
// that an RSA public key can never be used as an HMAC secret.
func (v *JWTVerifier) keyFor(ctx context.Context, t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == "HS256" {
		return v.cfg.HMACSecret, nil
	}
	kid, _ := t.Header["kid"].(string)
	if k, ok := v.lookup(ctx, kid, alg); ok {
		return k, nil
	}
	return nil, errors.New("no key for kid")
}

func (v *JWTVerifier) lookup(ctx context.Context, kid, alg string) (crypto.PublicKey, bool) {
	now := v.now()
	v.mu.RLock()
	k, ok := v.find(kid, alg)
	stale := now.Sub(v.fetched) > v.cfg.RefreshEvery
	canRefetch := now.Sub(v.attempted) >= v.cfg.Cooldown
	v.mu.RUnlock()
	if ok {
		if stale {
			v.refreshInBackground()
		}
		return k, true
	}
	if !canRefetch {
		return nil, false
	}
	// Unknown kid: perhaps the IdP rotated. One fetch for all callers, one per cooldown.
	v.mu.Lock()
	if v.now().Sub(v.attempted) < v.cfg.Cooldown {
		v.mu.Unlock()
		ch := v.sf.DoChan("jwks", func() (any, error) { return nil, nil })
		select {
		case <-ch:
		case <-ctx.Done():
		}
	} else {
		v.attempted = v.now()
		v.mu.Unlock()
		ch := v.sf.DoChan("jwks", func() (any, error) { return nil, v.fetch(context.WithoutCancel(ctx)) })
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, false
		}
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.find(kid, alg)
}

func (v *JWTVerifier) find(kid, alg string) (crypto.PublicKey, bool) {
	match := func(k jwk) bool {
		if k.alg != "" && k.alg != alg {
			return false
		}
		switch k.key.(type) {
		case *rsa.PublicKey:
			return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
		case *ecdsa.PublicKey:
			return strings.HasPrefix(alg, "ES")
		case ed25519.PublicKey:
			return alg == "EdDSA"
		}
		return false
	}
	if kid != "" {
		k, ok := v.keys[kid]
		if ok && match(k) {
			return k.key, true
		}
		return nil, false
	}
	// No kid: admitted only when the set holds exactly one usable key.
	var found crypto.PublicKey
	n := 0
	for _, k := range v.keys {
		if match(k) {
			found, n = k.key, n+1
		}
	}
	return found, n == 1
}

func (v *JWTVerifier) refreshInBackground() {
	v.mu.Lock()
	if v.refreshing {
		v.mu.Unlock()
		return
	}
	v.refreshing = true
	v.mu.Unlock()
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, _, _ = v.sf.Do("jwks", func() (any, error) { return nil, v.fetch(ctx) })
		v.mu.Lock()
		v.refreshing = false
		v.mu.Unlock()
	}()
}

// Refresh fetches the JWKS now (at start, to warm the cache). On failure the old keys stay.
func (v *JWTVerifier) Refresh(ctx context.Context) error {
	_, err, _ := v.sf.Do("jwks", func() (any, error) { return nil, v.fetch(ctx) })
	return err
}

// fetch replaces the key set; on any failure the previous keys keep serving (stale while
// the IdP is down), and the failure is reported to the caller.
func (v *JWTVerifier) fetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := v.jwksURL
	if url == "" && v.cfg.Discovery {
		u, err := v.discover(ctx)
		if err != nil {
			return v.failed(err)
		}
		url = u
		v.mu.Lock()
		v.jwksURL = u
		v.mu.Unlock()
	}
	if url == "" {
		return nil
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := v.getJSON(ctx, url, &set); err != nil {
		return v.failed(err)
	}
	keys := map[string]jwk{}
	for _, raw := range set.Keys {
		kid, k, err := parseJWK(raw)
		if err != nil || kid == "" || !validKID(kid) {
			continue // one key we cannot use must not hide the others
		}
		keys[kid] = k
	}
	if len(keys) == 0 {
		return v.failed(errors.New("JWKS holds no usable keys"))
	}
	v.mu.Lock()
	v.keys, v.fetched, v.fetchErrors = keys, v.now(), 0
	v.mu.Unlock()
	return nil
}

func (v *JWTVerifier) failed(err error) error {
	v.mu.Lock()
	v.fetchErrors++
	v.mu.Unlock()
	return fmt.Errorf("auth: JWKS: %w", err)
}

func (v *JWTVerifier) discover(ctx context.Context) (string, error) {
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	url := strings.TrimSuffix(v.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	if err := v.getJSON(ctx, url, &doc); err != nil {
		return "", err
	}
	if strings.TrimSuffix(doc.Issuer, "/") != strings.TrimSuffix(v.cfg.Issuer, "/") {
		return "", fmt.Errorf("discovery document names issuer %q, want %q", doc.Issuer, v.cfg.Issuer)
	}
	if !strings.HasPrefix(doc.JWKSURI, "https://") && !strings.HasPrefix(doc.JWKSURI, "http://") {
		return "", errors.New("discovery document has no jwks_uri")
	}
	return doc.JWKSURI, nil
}

func (v *JWTVerifier) getJSON(ctx context.Context, url string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

// parseJWK reads one public JWK (RSA, EC P-256/384/521, OKP Ed25519).
func parseJWK(raw []byte) (kid string, k jwk, err error) {
	var j struct {
		Kty, Kid, Alg, Use, Crv string
		N, E, X, Y              string
	}
	if err := json.Unmarshal(raw, &j); err != nil {
		return "", jwk{}, err
	}
	if j.Use != "" && j.Use != "sig" {
		return "", jwk{}, errors.New("not a signing key")
	}
	b64 := base64.RawURLEncoding.DecodeString
	k.alg = j.Alg
	switch j.Kty {
	case "RSA":
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err1 != nil || err2 != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
			return "", jwk{}, errors.New("bad RSA key (needs >= 2048 bits)")
		}
		k.key = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return "", jwk{}, fmt.Errorf("curve %q", j.Crv)
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		if err1 != nil || err2 != nil {
			return "", jwk{}, errors.New("bad EC key")
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return "", jwk{}, errors.New("bad EC key size")
		}
		// Uncompressed SEC 1 point; ecdh-style parsing rejects points off the curve.
		pt := append(append([]byte{4}, x...), y...)
		pub, err := ecdsaFromPoint(curve, pt)
		if err != nil {
			return "", jwk{}, err
		}
		k.key = pub
	case "OKP":
		x, err := b64(j.X)
		if j.Crv != "Ed25519" || err != nil || len(x) != ed25519.PublicKeySize {
			return "", jwk{}, errors.New("bad OKP key")
		}
		k.key = ed25519.PublicKey(x)
	default:
		return "", jwk{}, fmt.Errorf("key type %q", j.Kty)
	}
	return j.Kid, k, nil
}

func ecdsaFromPoint(curve elliptic.Curve, pt []byte) (*ecdsa.PublicKey, error) {
	// ParseUncompressedPublicKey checks the point is on the curve.
	k, err := ecdsa.ParseUncompressedPublicKey(curve, pt)
	if err != nil {
		return nil, errors.New("EC point not on curve")
	}
	return k, nil
}
