// Package idempotency makes unsafe requests safe to retry, following the IETF HTTPAPI draft
// "The Idempotency-Key HTTP Header Field" and Stripe's semantics:
//
//   - a request without an Idempotency-Key header is refused (400);
//   - the first request with a key takes an in-flight lock and runs; its response (any
//     status below 500) is stored for ResultTTL (24 h by default);
//   - a later request with the same key and the same fingerprint (method, path, body) gets
//     the stored response replayed, marked "Idempotent-Replayed: true";
//   - the same key with another fingerprint is refused (422);
//   - the same key while the first request is still running is refused (409);
//   - a 5xx answer is not stored: the lock is released so that a retry runs again;
//   - the lock expires after LockTTL (the function's timeout plus a margin), so a
//     process that crashed holding it blocks the key only that long;
//   - keys are scoped (by tenant): two tenants may use the same key;
//   - when Redis cannot be reached the request is refused with 503 and Retry-After before
//     the handler runs (fail closed): nothing is done that could not be deduplicated.
//
// A handler whose effect must survive a crash between doing the work and storing the
// response makes the work itself idempotent on the key (see FromContext): the trade
// function derives its order id from the key, so a retry finds the order it placed.
package idempotency

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/store"
)

// Header names.
const (
	Header         = "Idempotency-Key"
	ReplayedHeader = "Idempotent-Replayed"
)

// MaxKeyLength bounds a key; Stripe allows 255 characters.
const MaxKeyLength = 255

// Options configures a Store. Zero values take the defaults.
type Options struct {
	// LockTTL is how long an in-flight lock lives: the function's timeout plus a margin.
	// Default 60s.
	LockTTL time.Duration
	// ResultTTL is how long a stored response is replayed. Default 24h.
	ResultTTL time.Duration
	// RetryAfter is advertised on 503 (Redis down) and 409 (in flight). Default 1s.
	RetryAfter time.Duration
}

func (o Options) withDefaults() Options {
	if o.LockTTL <= 0 {
		o.LockTTL = time.Minute
	}
	if o.ResultTTL <= 0 {
		o.ResultTTL = 24 * time.Hour
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	return o
}

// Store keeps idempotency records in Redis, one hash per scoped key.
type Store struct {
	rdb  redis.UniversalClient
	keys store.Keys
	opts Options
}

// NewStore returns a Store in keys' space (the service's own, e.g. "exec").
func NewStore(rdb redis.UniversalClient, keys store.Keys, opts Options) *Store {
	return &Store{rdb: rdb, keys: keys, opts: opts.withDefaults()}
}

// Response is a stored answer.
type Response struct {
	Status int         `json:"status"`
	Header http.Header `json:"header,omitempty"`
	Body   []byte      `json:"body,omitempty"`
}

// State is what Begin found.
type State int

const (
	// Acquired: no record; the caller holds the in-flight lock and must Complete or Release.
	Acquired State = iota
	// InFlight: another request with the key is running.
	InFlight
	// Mismatch: the key was used with another request fingerprint.
	Mismatch
	// Done: the stored response is in Begun.Response.
	Done
)

// Lease is a held in-flight lock.
type Lease struct {
	key   string
	token string
}

// Begun is the result of Begin.
type Begun struct {
	State    State
	Lease    Lease
	Response *Response
}

// Fingerprint identifies a request for key reuse: its method, path and body.
func Fingerprint(method, path string, body []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n", method, path)
	h.Write(body)
	return hex.EncodeToString(h.Sum(nil))
}

// recordKey hides the client's key behind a hash (it may hold any printable characters)
// and puts the scope in a hash tag.
func (s *Store) recordKey(scope, key string) string {
	h := sha256.Sum256([]byte(key))
	return s.keys.Key("idem", "{"+scope+"}", hex.EncodeToString(h[:16]))
}

var beginScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'state', 'fp', 'resp')
if not r[1] then
  redis.call('HSET', KEYS[1], 'state', 'inflight', 'fp', ARGV[1], 'token', ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return {'acquired'}
end
if r[2] ~= ARGV[1] then return {'mismatch'} end
if r[1] == 'inflight' then return {'inflight'} end
return {'done', r[3]}
`)

var completeScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'state', 'token')
if r[1] ~= 'inflight' or r[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'resp', ARGV[2])
redis.call('HDEL', KEYS[1], 'token')
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`)

var releaseScript = redis.NewScript(`
local r = redis.call('HMGET', KEYS[1], 'state', 'token')
if r[1] == 'inflight' and r[2] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// Begin looks up key in scope and, when it is unused, takes the in-flight lock.
func (s *Store) Begin(ctx context.Context, scope, key, fingerprint string) (Begun, error) {
	var tok [16]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return Begun{}, err
	}
	l := Lease{key: s.recordKey(scope, key), token: hex.EncodeToString(tok[:])}
	res, err := beginScript.Run(ctx, s.rdb, []string{l.key}, fingerprint, l.token, s.opts.LockTTL.Milliseconds()).StringSlice()
	if err != nil {
		return Begun{}, fmt.Errorf("idempotency: begin: %w", err)
	}
	switch res[0] {
	case "acquired":
		return Begun{State: Acquired, Lease: l}, nil
	case "mismatch":
		return Begun{State: Mismatch}, nil
	case "inflight":
		return Begun{State: InFlight}, nil
	}
	var resp Response
	if len(res) < 2 || json.Unmarshal([]byte(res[1]), &resp) != nil {
		return Begun{}, errors.New("idempotency: stored response is unreadable")
	}
	return Begun{State: Done, Response: &resp}, nil
}

// ErrLost: the lease expired (or was released) before Complete; the response was not stored.
var ErrLost = errors.New("idempotency: in-flight lock lost before the response was stored")

// Complete stores resp under the lease's key for ResultTTL and ends the lock.
func (s *Store) Complete(ctx context.Context, l Lease, resp Response) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	n, err := completeScript.Run(ctx, s.rdb, []string{l.key}, l.token, b, s.opts.ResultTTL.Milliseconds()).Int()
	if err != nil {
		return fmt.Errorf("idempotency: complete: %w", err)
	}
	if n == 0 {
		return ErrLost
	}
	return nil
}

// Release drops the lease's lock without storing a response, so that a retry runs again.
func (s *Store) Release(ctx context.Context, l Lease) error {
	if err := releaseScript.Run(ctx, s.rdb, []string{l.key}, l.token).Err(); err != nil {
		return fmt.Errorf("idempotency: release: %w", err)
	}
	return nil
}
