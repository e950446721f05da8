package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/store"
)

// An API key reads dt_<env>_<id>_<secret>: a visible prefix that secret scanners and humans
// recognise, the environment it belongs to, a public id (the Redis record's name, safe to log),
// and 256 random bits. Only SHA-256(key) is stored; the secret is shown once, at creation.
const (
	KeyPrefix = "dt_"
	idLen     = 16 // hex characters: 64 bits
	secretLen = 64 // hex characters: 256 bits
)

var (
	// ErrInvalidKey is any key that does not authenticate: malformed, unknown, wrong secret,
	// expired or revoked. Callers answer 401 and never say which.
	ErrInvalidKey = errors.New("auth: invalid API key")
	// ErrNotFound is an unknown key id in the admin API.
	ErrNotFound = errors.New("auth: no such key")
	// ErrUnavailable means the key store could not be asked; callers answer 503, not 401.
	ErrUnavailable = errors.New("auth: key store unavailable")
)

// LooksLikeAPIKey tells an API key from a JWT in an Authorization: Bearer header.
func LooksLikeAPIKey(s string) bool { return strings.HasPrefix(s, KeyPrefix) }

// ParseAPIKey splits a key into its environment, id and secret, checking their shapes.
func ParseAPIKey(key string) (env, id, secret string, err error) {
	rest, ok := strings.CutPrefix(key, KeyPrefix)
	if !ok || len(key) > 128 {
		return "", "", "", ErrInvalidKey
	}
	parts := strings.Split(rest, "_")
	if len(parts) != 3 {
		return "", "", "", ErrInvalidKey
	}
	env, id, secret = parts[0], parts[1], parts[2]
	if !isLowerAlnum(env, 1, 16) || len(id) != idLen || !isHex(id) || len(secret) != secretLen || !isHex(secret) {
		return "", "", "", ErrInvalidKey
	}
	return env, id, secret, nil
}

func isLowerAlnum(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// KeyRecord is what the store keeps about a key: never the key itself.
type KeyRecord struct {
	ID        string     `json:"id"`
	Env       string     `json:"env"`
	Hash      string     `json:"hash,omitempty"` // hex SHA-256 of the whole key
	Owner     string     `json:"owner"`
	Tenant    string     `json:"tenant"`
	Roles     []string   `json:"roles"`
	CreatedAt time.Time  `json:"created_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	// RotatedTo names the key that replaced this one.
	RotatedTo string `json:"rotated_to,omitempty"`
}

// Active reports whether the record may authenticate at now.
func (r KeyRecord) Active(now time.Time) bool {
	return r.RevokedAt == nil && (r.ExpiresAt == nil || now.Before(*r.ExpiresAt))
}

// Public is the record without its hash, for the admin API.
func (r KeyRecord) Public() KeyRecord { r.Hash = ""; return r }

// KeySpec describes a key to create.
type KeySpec struct {
	Owner  string
	Tenant string
	Roles  []string
	TTL    time.Duration // 0 = no expiry
}

// Validate checks a spec before a key is made from it.
func (s KeySpec) Validate() error {
	var errs []error
	if s.Owner == "" || len(s.Owner) > 128 {
		errs = append(errs, errors.New("owner must be 1..128 characters"))
	}
	if !validName(s.Tenant) {
		errs = append(errs, errors.New("tenant must be 1..64 of [A-Za-z0-9._-]"))
	}
	if len(s.Roles) == 0 || len(s.Roles) > 16 {
		errs = append(errs, errors.New("roles must list 1..16 roles"))
	}
	for _, r := range s.Roles {
		if !validName(r) {
			errs = append(errs, fmt.Errorf("role %q is not a name", r))
		}
	}
	if s.TTL < 0 {
		errs = append(errs, errors.New("ttl must not be negative"))
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// KeyStore keeps API keys in Redis under the gateway's key space (gw:apikey:<id>, and the set
// gw:apikeys of all ids), and authenticates presented keys. Lookups are cached in process for
// CacheTTL, so a revocation takes effect everywhere within CacheTTL; while Redis is down, a
// cached record keeps authenticating for StaleTTL so that a Redis blip does not log users out.
type KeyStore struct {
	rdb  redis.Cmdable
	keys store.Keys
	// Env is written into new keys (dt_<env>_...): "live", "test", "local".
	Env string
	// CacheTTL bounds how long a revoked key may still pass (default 5s).
	CacheTTL time.Duration
	// StaleTTL is how long a cached record serves while Redis cannot be asked (default 5m).
	StaleTTL time.Duration
	now      func() time.Time

	mu    sync.RWMutex
	cache map[string]cachedRecord
}

type cachedRecord struct {
	rec     KeyRecord
	hash    [sha256.Size]byte
	found   bool
	fetched time.Time
}

// maxCached bounds the in-process cache; it is cleared when full (random ids cannot grow it).
const maxCached = 10000

// NewKeyStore returns a store over rdb in the key space keys (the gateway's "gw").
func NewKeyStore(rdb redis.Cmdable, keys store.Keys) *KeyStore {
	return &KeyStore{rdb: rdb, keys: keys, Env: "live", CacheTTL: 5 * time.Second, StaleTTL: 5 * time.Minute,
		now: time.Now, cache: map[string]cachedRecord{}}
}

func (s *KeyStore) recordKey(id string) string { return s.keys.Key("apikey", id) }
func (s *KeyStore) indexKey() string           { return s.keys.Key("apikeys") }

// Create makes a key for spec and returns it (the only time the secret is seen) with its record.
func (s *KeyStore) Create(ctx context.Context, spec KeySpec) (string, KeyRecord, error) {
	if err := spec.Validate(); err != nil {
		return "", KeyRecord{}, err
	}
	var idb [idLen / 2]byte
	var sec [secretLen / 2]byte
	_, _ = rand.Read(idb[:])
	_, _ = rand.Read(sec[:])
	env := s.Env
	if !isLowerAlnum(env, 1, 16) {
		env = "live"
	}
	id := hex.EncodeToString(idb[:])
	key := KeyPrefix + env + "_" + id + "_" + hex.EncodeToString(sec[:])
	sum := sha256.Sum256([]byte(key))
	now := s.now().UTC().Truncate(time.Second)
	rec := KeyRecord{ID: id, Env: env, Hash: hex.EncodeToString(sum[:]), Owner: spec.Owner, Tenant: spec.Tenant,
		Roles: slices.Clone(spec.Roles), CreatedAt: now}
	if spec.TTL > 0 {
		exp := now.Add(spec.TTL)
		rec.ExpiresAt = &exp
	}
	if err := s.put(ctx, rec); err != nil {
		return "", KeyRecord{}, err
	}
	return key, rec, nil
}

func (s *KeyStore) put(ctx context.Context, rec KeyRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, s.recordKey(rec.ID), b, 0)
		p.SAdd(ctx, s.indexKey(), rec.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.forget(rec.ID)
	return nil
}

// Get returns the record of id.
func (s *KeyStore) Get(ctx context.Context, id string) (KeyRecord, error) {
	b, err := s.rdb.Get(ctx, s.recordKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return KeyRecord{}, ErrNotFound
	}
	if err != nil {
		return KeyRecord{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	var rec KeyRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return KeyRecord{}, fmt.Errorf("auth: corrupt key record %s: %w", id, err)
	}
	return rec, nil
}

// List returns every key of tenant ("" = all tenants), without hashes, oldest first.
func (s *KeyStore) List(ctx context.Context, tenant string) ([]KeyRecord, error) {
	ids, err := s.rdb.SMembers(ctx, s.indexKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	out := []KeyRecord{}
	for _, id := range ids {
		rec, err := s.Get(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if tenant == "" || rec.Tenant == tenant {
			out = append(out, rec.Public())
		}
	}
	slices.SortFunc(out, func(a, b KeyRecord) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Revoke stops id from authenticating (within CacheTTL on other gateway replicas).
func (s *KeyStore) Revoke(ctx context.Context, id string) (KeyRecord, error) {
	rec, err := s.Get(ctx, id)
	if err != nil {
		return KeyRecord{}, err
	}
	if rec.RevokedAt == nil {
		now := s.now().UTC().Truncate(time.Second)
		rec.RevokedAt = &now
		if err := s.put(ctx, rec); err != nil {
			return KeyRecord{}, err
		}
	}
	return rec.Public(), nil
}

// Rotate creates a key with id's owner, tenant and roles and retires id: at once when grace
// is 0, else it expires after grace so that clients can switch over.
func (s *KeyStore) Rotate(ctx context.Context, id string, grace time.Duration) (string, KeyRecord, error) {
	old, err := s.Get(ctx, id)
	if err != nil {
		return "", KeyRecord{}, err
	}
	if !old.Active(s.now()) {
		return "", KeyRecord{}, ErrInvalidKey
	}
	spec := KeySpec{Owner: old.Owner, Tenant: old.Tenant, Roles: old.Roles}
	if old.ExpiresAt != nil {
		spec.TTL = old.ExpiresAt.Sub(old.CreatedAt)
	}
	key, rec, err := s.Create(ctx, spec)
	if err != nil {
		return "", KeyRecord{}, err
	}
	now := s.now().UTC().Truncate(time.Second)
	old.RotatedTo = rec.ID
	if grace <= 0 {
		old.RevokedAt = &now
	} else if exp := now.Add(grace); old.ExpiresAt == nil || exp.Before(*old.ExpiresAt) {
		old.ExpiresAt = &exp
	}
	if err := s.put(ctx, old); err != nil {
		return "", KeyRecord{}, err
	}
	return key, rec, nil
}

// Authenticate checks a presented key. It returns ErrInvalidKey for any key that must be
// refused and ErrUnavailable when Redis cannot be asked and nothing usable is cached.
func (s *KeyStore) Authenticate(ctx context.Context, key string) (Principal, error) {
	_, id, _, err := ParseAPIKey(key)
	if err != nil {
		return Principal{}, ErrInvalidKey
	}
	now := s.now()
	c, ok := s.cached(id)
	if !ok || now.Sub(c.fetched) > s.CacheTTL {
		fresh, err := s.fetch(ctx, id, now)
		switch {
		case err == nil:
			c = fresh
		case ok && now.Sub(c.fetched) <= s.StaleTTL:
			// Redis is down: the cached answer is better than logging everyone out.
		default:
			return Principal{}, err
		}
	}
	sum := sha256.Sum256([]byte(key))
	// Compare even for unknown ids, so that timing says nothing about which ids exist.
	match := subtle.ConstantTimeCompare(sum[:], c.hash[:]) == 1
	if !c.found || !match || !c.rec.Active(now) {
		return Principal{}, ErrInvalidKey
	}
	return Principal{Subject: c.rec.Owner, Tenant: c.rec.Tenant, Roles: c.rec.Roles, Method: MethodAPIKey, KeyID: c.rec.ID}, nil
}

func (s *KeyStore) cached(id string) (cachedRecord, bool) {
	s.mu.RLock()
	c, ok := s.cache[id]
	s.mu.RUnlock()
	return c, ok
}

func (s *KeyStore) forget(id string) {
	s.mu.Lock()
	delete(s.cache, id)
	s.mu.Unlock()
}

func (s *KeyStore) fetch(ctx context.Context, id string, now time.Time) (cachedRecord, error) {
	c := cachedRecord{fetched: now}
	rec, err := s.Get(ctx, id)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil && errors.Is(err, ErrUnavailable):
		return c, err
	case err != nil:
		return c, ErrInvalidKey // a corrupt record authenticates nobody
	default:
		h, herr := hex.DecodeString(rec.Hash)
		if herr != nil || len(h) != sha256.Size {
			return c, ErrInvalidKey
		}
		c.rec, c.found = rec, true
		copy(c.hash[:], h)
	}
	s.mu.Lock()
	if len(s.cache) >= maxCached {
		clear(s.cache)
	}
	s.cache[id] = c
	s.mu.Unlock()
	return c, nil
}
