// Package registry is the dynamic registry of upstream instances, kept in Redis so that every
// gateway replica sees the same instances. An instance registers under its upstream (a
// function's catalog name) with a TTL and renews it by heartbeat; when the heartbeat lapses the
// instance is gone. Expiry is judged by Redis's clock (TIME inside the scripts), never by the
// clocks of the registering process or of the gateway replicas, so skew cannot keep a dead
// instance alive or drop a live one.
//
// Each upstream is two keys in one hash slot: a hash of instance id → JSON (URL, weight) and a
// sorted set of instance id → expiry (ms). Gateways read the live set periodically in one
// pipelined round trip for all upstreams, never per request.
//
// The registry stores URLs; it does not decide which are safe to call. HostPolicy does, and
// the gateway applies it both when an instance is registered through its admin API and again
// whenever it reads the registry, because anything with write access to Redis can add entries.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/store"
)

// Instance is one registered address of an upstream.
type Instance struct {
	ID     string `json:"id"`
	URL    string `json:"url"`
	Weight int    `json:"weight"`
	// ExpiresAt is when the registration lapses unless renewed (read from the registry).
	ExpiresAt time.Time `json:"expires_at"`
}

// Limits of a registration.
const (
	MaxWeight = 1000
	MinTTL    = time.Second
	MaxTTL    = 24 * time.Hour
)

var (
	upstreamRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	idRE       = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)
)

// ErrInvalid is a registration the registry refuses (bad upstream name, id, weight or TTL).
var ErrInvalid = errors.New("registry: invalid registration")

// ValidUpstream reports whether name can be an upstream (a DNS label, as function names are).
func ValidUpstream(name string) bool { return upstreamRE.MatchString(name) }

// IDFor is the id of an instance registered without one: the same URL always gets the same
// id, so registering it again is a heartbeat rather than a duplicate.
func IDFor(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
}

// Store reads and writes the registry.
type Store struct {
	rdb  redis.UniversalClient
	keys store.Keys
}

// New is the registry under keys (the gateway's key space).
func New(rdb redis.UniversalClient, keys store.Keys) *Store {
	return &Store{rdb: rdb, keys: keys}
}

// keysOf are the upstream's hash and expiry set; the {upstream} hash tag keeps both in one
// Redis Cluster slot, as the scripts need.
func (s *Store) keysOf(upstream string) []string {
	h := s.keys.Key("registry", "{"+upstream+"}")
	return []string{h, h + ":exp"}
}

type record struct {
	URL    string `json:"url"`
	Weight int    `json:"weight"`
}

// registerScript stores the instance and its expiry (now + ttl, by Redis's clock), and lets
// both keys expire a minute after their longest-lived member, so an abandoned upstream leaves
// nothing behind.
var registerScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = now + tonumber(ARGV[3])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], exp, ARGV[1])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
local keep = tonumber(last[2]) - now + 60000
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return exp
`)

// liveScript drops lapsed instances and returns {now, id, expiry, record, id, expiry, ...}.
const liveScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now)
if #dead > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  redis.call('HDEL', KEYS[1], unpack(dead))
end
local live = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
local out = {now}
for i = 1, #live, 2 do
  local v = redis.call('HGET', KEYS[1], live[i])
  if v then
    out[#out + 1] = live[i]
    out[#out + 1] = live[i + 1]
    out[#out + 1] = v
  end
end
return out
`

// Register adds or renews in under upstream for ttl and returns it as stored (id filled in,
// weight defaulted to 1, expiry set). The URL is stored as given: check it with a HostPolicy
// first.
func (s *Store) Register(ctx context.Context, upstream string, in Instance, ttl time.Duration) (Instance, error) {
	if in.ID == "" {
		in.ID = IDFor(in.URL)
	}
	if in.Weight == 0 {
		in.Weight = 1
	}
	switch {
	case !ValidUpstream(upstream):
		return in, fmt.Errorf("%w: upstream %q is not a function name", ErrInvalid, upstream)
	case !idRE.MatchString(in.ID):
		return in, fmt.Errorf("%w: id must be 1-64 of A-Z a-z 0-9 . _ -", ErrInvalid)
	case in.Weight < 1 || in.Weight > MaxWeight:
		return in, fmt.Errorf("%w: weight must be 1..%d", ErrInvalid, MaxWeight)
	case ttl < MinTTL || ttl > MaxTTL:
		return in, fmt.Errorf("%w: ttl must be %s..%s", ErrInvalid, MinTTL, MaxTTL)
	case in.URL == "" || len(in.URL) > 2048:
		return in, fmt.Errorf("%w: url is required (at most 2048 bytes)", ErrInvalid)
	}
	b, _ := json.Marshal(record{URL: in.URL, Weight: in.Weight})
	exp, err := registerScript.Run(ctx, s.rdb, s.keysOf(upstream), in.ID, b, ttl.Milliseconds()).Int64()
	if err != nil {
		return in, fmt.Errorf("registry: register %s/%s: %w", upstream, in.ID, err)
	}
	in.ExpiresAt = time.UnixMilli(exp)
	return in, nil
}

// Deregister removes the instance id of upstream and reports whether it was registered.
func (s *Store) Deregister(ctx context.Context, upstream, id string) (bool, error) {
	if !ValidUpstream(upstream) || !idRE.MatchString(id) {
		return false, nil
	}
	k := s.keysOf(upstream)
	pipe := s.rdb.TxPipeline()
	n := pipe.HDel(ctx, k[0], id)
	pipe.ZRem(ctx, k[1], id)
	if _, err := pipe.Exec(ctx); err != nil {
		return false, fmt.Errorf("registry: deregister %s/%s: %w", upstream, id, err)
	}
	return n.Val() > 0, nil
}

// Live returns the live instances of each of upstreams (lapsed ones are removed on the way),
// in one round trip. An entry that does not decode is skipped and reported in bad.
func (s *Store) Live(ctx context.Context, upstreams ...string) (live map[string][]Instance, bad []error, err error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(upstreams))
	for i, up := range upstreams {
		// EVAL rather than EVALSHA: a pipeline cannot fall back on NOSCRIPT, and the script is
		// sent once per poll, not per request.
		cmds[i] = pipe.Eval(ctx, liveScript, s.keysOf(up))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, nil, fmt.Errorf("registry: read: %w", err)
	}
	live = make(map[string][]Instance, len(upstreams))
	for i, up := range upstreams {
		vals, err := cmds[i].Slice()
		if err != nil {
			return nil, nil, fmt.Errorf("registry: read %s: %w", up, err)
		}
		for j := 1; j+2 < len(vals); j += 3 {
			id, _ := vals[j].(string)
			expS, _ := vals[j+1].(string)
			raw, _ := vals[j+2].(string)
			exp, perr := strconv.ParseFloat(expS, 64)
			var rec record
			if jerr := json.Unmarshal([]byte(raw), &rec); jerr != nil || perr != nil || id == "" {
				bad = append(bad, fmt.Errorf("registry: %s/%s: undecodable entry", up, id))
				continue
			}
			live[up] = append(live[up], Instance{ID: id, URL: rec.URL, Weight: rec.Weight, ExpiresAt: time.UnixMilli(int64(exp))})
		}
	}
	return live, bad, nil
}

// Heartbeat registers in under upstream at once and renews it every ttl/3 until ctx ends,
// then deregisters it, so a stopping instance leaves at once and a crashed one within ttl.
// Failures are logged and retried at the next beat; it returns when ctx ends. A function
// runs it beside its server:
//
//	go reg.Heartbeat(ctx, "data-stocks", registry.Instance{URL: "http://10.1.2.3:8080"}, 15*time.Second, log)
func (s *Store) Heartbeat(ctx context.Context, upstream string, in Instance, ttl time.Duration, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if in.ID == "" {
		in.ID = IDFor(in.URL)
	}
	every := max(ttl/3, 100*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		rctx, cancel := context.WithTimeout(ctx, every)
		_, err := s.Register(rctx, upstream, in, ttl)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			if !failing {
				log.Warn("registry heartbeat failed; retrying", "upstream", upstream, "instance", in.URL, "err", err)
			}
			failing = true
			if errors.Is(err, ErrInvalid) {
				return // a bad registration does not get better by repeating it
			}
		case err == nil:
			if failing {
				log.Info("registry heartbeat restored", "upstream", upstream, "instance", in.URL)
			}
			failing = false
		}
		select {
		case <-ctx.Done():
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if _, err := s.Deregister(dctx, upstream, in.ID); err != nil {
				log.Warn("registry deregister failed; the entry lapses with its ttl", "upstream", upstream, "instance", in.URL, "err", err)
			}
			return
		case <-t.C:
		}
	}
}
