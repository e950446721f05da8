// Package auth is the platform's identity: who is calling (Principal), how the gateway
// learns it (API keys stored hashed in Redis, JWTs checked against an IdP's JWKS), and how
// the identity reaches functions (a short-lived internal token the gateway signs and every
// function verifies). Functions read the caller with PrincipalFromContext.
package auth

import (
	"context"
	"slices"
)

// Principal is an authenticated caller.
type Principal struct {
	Subject string   `json:"sub"`           // key owner or token subject
	Tenant  string   `json:"tenant"`        // scopes every read and write
	Roles   []string `json:"roles"`         // any one of a route's roles admits it
	Method  string   `json:"amr,omitempty"` // "apikey" or "jwt"
	KeyID   string   `json:"kid,omitempty"` // API key id, for rate limits and audit
}

// Authentication methods.
const (
	MethodAPIKey = "apikey"
	MethodJWT    = "jwt"
)

// HasAnyRole reports whether p holds one of roles. No roles admits nobody (deny by default).
func (p Principal) HasAnyRole(roles []string) bool {
	for _, r := range roles {
		if slices.Contains(p.Roles, r) {
			return true
		}
	}
	return false
}

// ID is the stable identity used as a rate-limit and cache key: the key id, else the subject.
func (p Principal) ID() string {
	if p.KeyID != "" {
		return "k:" + p.KeyID
	}
	return "s:" + p.Subject
}

type principalKey struct{}

// NewContextWithPrincipal returns ctx carrying p.
func NewContextWithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFromContext returns the caller, or nil for an anonymous request.
func PrincipalFromContext(ctx context.Context) *Principal {
	p, _ := ctx.Value(principalKey{}).(*Principal)
	return p
}
