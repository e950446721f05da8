// Package store opens the shared Redis (go-redis v9) and gives each service its own key
// space: "database per service" is a key prefix per service (data:, ml:, sym:, exec:,
// notif:, gw:, jobs:), enforced in production by a Redis ACL user per prefix.
package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Open connects to the Redis at url (redis://, rediss:// or unix://) with short timeouts so
// that a dead Redis fails requests quickly instead of hanging them. It does not ping.
func Open(url string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("store: parse REDIS_URL: %w", err)
	}
	if opts.DialTimeout == 0 || opts.DialTimeout > time.Second {
		opts.DialTimeout = time.Second
	}
	opts.ReadTimeout = 2 * time.Second
	opts.WriteTimeout = 2 * time.Second
	opts.PoolTimeout = 2 * time.Second
	opts.MaxRetries = 1
	return redis.NewClient(opts), nil
}

// Keys builds keys inside one service's key space.
type Keys struct{ prefix string }

// NewKeys returns the key space for prefix (e.g. "data"); keys look like "data:part:part".
func NewKeys(prefix string) Keys { return Keys{prefix: strings.TrimSuffix(prefix, ":") + ":"} }

// Prefix returns the space's prefix including the trailing colon.
func (k Keys) Prefix() string { return k.prefix }

// Key joins parts under the prefix.
func (k Keys) Key(parts ...string) string { return k.prefix + strings.Join(parts, ":") }

// Pattern returns a SCAN MATCH pattern inside the key space; glob characters in p are kept.
func (k Keys) Pattern(p string) string { return k.prefix + p }

// Pinger is the part of a Redis client a health check needs.
type Pinger interface {
	Ping(ctx context.Context) *redis.StatusCmd
}

// Checker reports whether Redis answers a PING; it is a runtime readiness check.
type Checker struct{ Client Pinger }

// CheckHealth pings Redis with ctx's deadline.
func (c Checker) CheckHealth(ctx context.Context) error {
	if err := c.Client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}
