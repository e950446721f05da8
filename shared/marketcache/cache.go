// Package marketcache keeps market-data answers in Redis, under the data service's key space,
// with a TTL that follows the bar interval (a 1-minute bar goes stale in a minute, a monthly
// bar in hours). It counts hits and misses in Redis so that every replica of every function
// reports the same hit rate, and it can list and clear its own entries.
//
// Keys look like data:bars:<provider>:<symbol>:<period>:<interval>; the symbol sits in its own
// segment so that a symbol pattern selects entries without touching other data.
package marketcache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/store"
)

// Entry is one cached answer: the bars and when they were fetched from the provider.
type Entry struct {
	Bars      []market.Bar `json:"bars"`
	FetchedAt time.Time    `json:"fetched_at"`
}

// Cache is a read-through cache in front of a market.Provider.
type Cache struct {
	rdb      redis.UniversalClient
	keys     store.Keys
	provider market.Provider
	name     string // provider name, part of the key so switching providers never serves stale data
	now      func() time.Time
}

// New returns a cache for provider (named providerName) in the key space keys.
func New(rdb redis.UniversalClient, keys store.Keys, provider market.Provider, providerName string) *Cache {
	return &Cache{rdb: rdb, keys: keys, provider: provider, name: providerName, now: time.Now}
}

// TTL is how long an answer for interval i stays fresh.
func TTL(i market.Interval) time.Duration {
	switch {
	case i.Duration() <= 5*time.Minute:
		return time.Minute
	case i.Intraday():
		return 5 * time.Minute
	case i == "1d":
		return 15 * time.Minute
	default:
		return 6 * time.Hour
	}
}

func (c *Cache) barsKey(q market.Query) string {
	return c.keys.Key("bars", c.name, q.Symbol, string(q.Period), string(q.Interval))
}

func (c *Cache) statKey(name string) string { return c.keys.Key("stats", name) }

// Bars answers q from Redis when it can, else from the provider, storing the answer.
// hit reports whether Redis answered. A Redis failure is an Unavailable error: serving
// around a dead cache would hide the fault and stampede the provider.
func (c *Cache) Bars(ctx context.Context, q market.Query) (e Entry, hit bool, err error) {
	key := c.barsKey(q)
	raw, err := c.rdb.Get(ctx, key).Bytes()
	switch {
	case err == nil:
		if jerr := json.Unmarshal(raw, &e); jerr == nil {
			c.rdb.Incr(ctx, c.statKey("hits"))
			return e, true, nil
		}
		// A corrupt entry is a miss; the fresh answer below overwrites it.
	case !errors.Is(err, redis.Nil):
		return Entry{}, false, redisDown(err)
	}
	if err := c.rdb.Incr(ctx, c.statKey("misses")).Err(); err != nil {
		return Entry{}, false, redisDown(err)
	}
	bars, err := c.provider.Bars(ctx, q)
	if err != nil {
		return Entry{}, false, err
	}
	e = Entry{Bars: bars, FetchedAt: c.now().UTC()}
	b, err := json.Marshal(e)
	if err != nil {
		return Entry{}, false, fmt.Errorf("marketcache: encode: %w", err)
	}
	if err := c.rdb.Set(ctx, key, b, TTL(q.Interval)).Err(); err != nil {
		return Entry{}, false, redisDown(err)
	}
	return e, false, nil
}

func redisDown(err error) error {
	return &httpx.Error{Code: httpx.CodeUnavailable, Message: "market-data cache unavailable", RetryAfter: time.Second, Err: err}
}

// Stats describes the cache as it is now.
type Stats struct {
	Entries           int64   `json:"entries"`
	SizeBytes         int64   `json:"size_bytes"`
	Hits              int64   `json:"hits"`
	Misses            int64   `json:"misses"`
	HitRate           float64 `json:"hit_rate"`
	TTLAverageSeconds float64 `json:"ttl_average_seconds"`
}

// Stats counts entries, their payload bytes and remaining TTLs by scanning the key space,
// and reads the shared hit and miss counters.
func (c *Cache) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	var ttlSum time.Duration
	err := c.scan(ctx, c.keys.Key("bars", "*"), func(keys []string) error {
		pipe := c.rdb.Pipeline()
		lens := make([]*redis.IntCmd, len(keys))
		ttls := make([]*redis.DurationCmd, len(keys))
		for i, k := range keys {
			lens[i] = pipe.StrLen(ctx, k)
			ttls[i] = pipe.TTL(ctx, k)
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return err
		}
		for i := range keys {
			n := lens[i].Val()
			if n == 0 { // expired between SCAN and STRLEN
				continue
			}
			s.Entries++
			s.SizeBytes += n
			if d := ttls[i].Val(); d > 0 {
				ttlSum += d
			}
		}
		return nil
	})
	if err != nil {
		return Stats{}, redisDown(err)
	}
	vals, err := c.rdb.MGet(ctx, c.statKey("hits"), c.statKey("misses")).Result()
	if err != nil {
		return Stats{}, redisDown(err)
	}
	s.Hits, s.Misses = toInt(vals[0]), toInt(vals[1])
	if total := s.Hits + s.Misses; total > 0 {
		s.HitRate = float64(s.Hits) / float64(total)
	}
	if s.Entries > 0 {
		s.TTLAverageSeconds = ttlSum.Seconds() / float64(s.Entries)
	}
	return s, nil
}

func toInt(v any) int64 {
	s, ok := v.(string)
	if !ok {
		return 0
	}
	var n int64
	_, _ = fmt.Sscan(s, &n)
	return n
}

// patternRE limits a symbol pattern to ticker characters and the glob characters * and ?,
// so a caller can never reach outside data:bars: or inject Redis glob classes.
var patternRE = regexp.MustCompile(`^[A-Za-z0-9.^=*?\-]{1,32}$`)

// ValidatePattern checks a symbol pattern for Clear.
func ValidatePattern(p string) error {
	if !patternRE.MatchString(p) {
		return httpx.Invalid("invalid pattern", httpx.FieldError{Field: "pattern",
			Reason: "1-32 characters of letters, digits, . ^ = - and the wildcards * ?"})
	}
	return nil
}

// Clear deletes the entries whose symbol matches pattern (a glob over symbols, e.g. "7203*"
// or "*" for all) and returns how many it deleted. Hit and miss counters are kept.
func (c *Cache) Clear(ctx context.Context, pattern string) (int64, error) {
	if err := ValidatePattern(pattern); err != nil {
		return 0, err
	}
	var n int64
	err := c.scan(ctx, c.keys.Key("bars", "*", strings.ToUpper(pattern), "*", "*"), func(keys []string) error {
		d, err := c.rdb.Unlink(ctx, keys...).Result()
		n += d
		return err
	})
	if err != nil {
		return n, redisDown(err)
	}
	return n, nil
}

// scan walks the keys matching match in batches.
func (c *Cache) scan(ctx context.Context, match string, fn func(keys []string) error) error {
	var cursor uint64
	for {
		keys, next, err := c.rdb.Scan(ctx, cursor, match, 500).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := fn(keys); err != nil {
				return err
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}
