package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/store"
)

// A cursor is opaque to clients: base64url(JSON position) "." base64url(HMAC-SHA256). The MAC
// makes a forged or edited cursor a 400 rather than a silently different page; the position
// carries a fingerprint of the query it belongs to, so a cursor replayed against another
// filter or sort is refused too. The MAC key is created once in Redis (SETNX) and shared by
// every replica, so a cursor minted by one replica is honoured by the next.
type position struct {
	V      int    `json:"v"`
	Offset int    `json:"o"`
	Query  string `json:"q"` // fingerprint of the normalised filters, sort and lookback
}

const (
	cursorVersion = 1
	maxCursorLen  = 256
)

type cursors struct {
	rdb redis.UniversalClient
	key string

	mu     sync.Mutex
	secret []byte
}

func newCursors(rdb redis.UniversalClient, keys store.Keys) *cursors {
	return &cursors{rdb: rdb, key: keys.Key("screen", "cursor-key")}
}

// newCursorsWithSecret is for tests and fuzzing: no Redis.
func newCursorsWithSecret(secret []byte) *cursors { return &cursors{secret: secret} }

func (c *cursors) mac(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.secret != nil {
		return c.secret, nil
	}
	fresh := make([]byte, 32)
	rand.Read(fresh)
	if err := c.rdb.SetNX(ctx, c.key, hex.EncodeToString(fresh), 0).Err(); err != nil {
		return nil, httpx.Wrap(err, httpx.CodeUnavailable, "cursor key store unavailable")
	}
	s, err := c.rdb.Get(ctx, c.key).Result()
	if err != nil {
		return nil, httpx.Wrap(err, httpx.CodeUnavailable, "cursor key store unavailable")
	}
	b, err := hex.DecodeString(s)
	if err != nil || len(b) < 16 {
		return nil, httpx.Errorf(httpx.CodeInternal, "cursor key in Redis is malformed")
	}
	c.secret = b
	return b, nil
}

func sign(secret, payload []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write(payload)
	return m.Sum(nil)
}

func (c *cursors) encode(ctx context.Context, p position) (string, error) {
	secret, err := c.mac(ctx)
	if err != nil {
		return "", err
	}
	p.V = cursorVersion
	payload, _ := json.Marshal(p)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(sign(secret, payload)), nil
}

var errBadCursor = errors.New("malformed or tampered cursor")

// decode checks a cursor's MAC and that it belongs to query; every failure is a 400 on the
// cursor field.
func (c *cursors) decode(ctx context.Context, s, query string) (position, error) {
	var p position
	bad := func(reason string) (position, error) {
		return p, httpx.Invalid("invalid cursor", httpx.FieldError{Field: "cursor", Reason: reason})
	}
	if len(s) > maxCursorLen {
		return bad("too long")
	}
	body, tag, ok := strings.Cut(s, ".")
	if !ok {
		return bad(errBadCursor.Error())
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(body)
	mac, err2 := base64.RawURLEncoding.DecodeString(tag)
	if err1 != nil || err2 != nil {
		return bad(errBadCursor.Error())
	}
	secret, err := c.mac(ctx)
	if err != nil {
		return p, err
	}
	if !hmac.Equal(mac, sign(secret, payload)) {
		return bad(errBadCursor.Error())
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || p.V != cursorVersion || p.Offset < 0 {
		return bad(errBadCursor.Error())
	}
	if p.Query != query {
		return bad("the cursor belongs to another query (filters, sort_by and lookback must not change between pages)")
	}
	return p, nil
}

// fingerprint identifies a query for its cursors.
func fingerprint(v any) string {
	b, _ := json.Marshal(v)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}
