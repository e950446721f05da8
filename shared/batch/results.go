package batch

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/store"
)

// Item is one symbol's result in a batch job: a value, or the reason it has none.
type Item struct {
	Symbol string          `json:"symbol"`
	OK     bool            `json:"ok"`
	Value  json.RawMessage `json:"value,omitempty"` // when OK: the worker's result for the symbol
	Error  string          `json:"error,omitempty"` // when not OK: a caller-safe reason
}

// Results keeps each job's items in one Redis hash, <prefix>:batch:<job>:results, field =
// symbol. An item is written at most once; every write that happened is also appended to
// <prefix>:batch:<job>:writes. Every time a run starts the work of a symbol, the symbol is
// appended to <prefix>:batch:<job>:attempts, before the work and whatever becomes of it: a
// symbol listed twice there had its work done again (legitimate at-least-once work after a
// crash), which tests report next to the writes. Neither log proves that no result was
// written twice, since both are kept by this code; tests count the hash's writes from
// Redis's keyspace notifications for that (batchtest.CountHashSets).
type Results struct {
	rdb  redis.UniversalClient
	keys store.Keys
	ttl  time.Duration
}

// NewResults returns the results store in the key space keys (the worker's service prefix).
// Results expire ttl after their last write; it should match the jobs' ResultTTL.
func NewResults(rdb redis.UniversalClient, keys store.Keys, ttl time.Duration) *Results {
	if ttl <= 0 {
		ttl = 7 * 24 * time.Hour
	}
	return &Results{rdb: rdb, keys: keys, ttl: ttl}
}

// Key is the hash holding job's items; it is the job's result_ref.
func (r *Results) Key(job string) string { return r.keys.Key("batch", job, "results") }

func (r *Results) logKey(job string) string { return r.keys.Key("batch", job, "writes") }

func (r *Results) attemptsKey(job string) string { return r.keys.Key("batch", job, "attempts") }

// putScript writes one item unless its symbol has one, logs the write, and keeps both keys
// alive. KEYS results, log; ARGV symbol, item, ttl ms. Returns 1 if written.
var putScript = redis.NewScript(`
local n = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
if n == 1 then redis.call('RPUSH', KEYS[2], ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
return n`)

// Put writes it for job unless the symbol already has an item; written reports which.
func (r *Results) Put(ctx context.Context, job string, it Item) (written bool, err error) {
	b, err := json.Marshal(it)
	if err != nil {
		return false, httpx.Wrap(err, httpx.CodeInternal, "cannot encode result")
	}
	n, err := putScript.Run(ctx, r.rdb, []string{r.Key(job), r.logKey(job)},
		it.Symbol, b, strconv.FormatInt(r.ttl.Milliseconds(), 10)).Int()
	if err != nil {
		return false, unavailable(err)
	}
	return n == 1, nil
}

// Attempt records that the work of symbols for job is starting.
func (r *Results) Attempt(ctx context.Context, job string, symbols []string) error {
	if len(symbols) == 0 {
		return nil
	}
	args := make([]any, len(symbols))
	for i, s := range symbols {
		args[i] = s
	}
	key := r.attemptsKey(job)
	_, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, key, args...)
		p.PExpire(ctx, key, r.ttl)
		return nil
	})
	if err != nil {
		return unavailable(err)
	}
	return nil
}

// Attempts returns job's attempt log: one symbol per start of its work, in order.
func (r *Results) Attempts(ctx context.Context, job string) ([]string, error) {
	l, err := r.rdb.LRange(ctx, r.attemptsKey(job), 0, -1).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	return l, nil
}

// Count returns how many symbols of job have an item.
func (r *Results) Count(ctx context.Context, job string) (int64, error) {
	n, err := r.rdb.HLen(ctx, r.Key(job)).Result()
	if err != nil {
		return 0, unavailable(err)
	}
	return n, nil
}

// Written returns the symbols of job that have an item.
func (r *Results) Written(ctx context.Context, job string) (map[string]bool, error) {
	ks, err := r.rdb.HKeys(ctx, r.Key(job)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	m := make(map[string]bool, len(ks))
	for _, k := range ks {
		m[k] = true
	}
	return m, nil
}

// All returns job's items sorted by symbol.
func (r *Results) All(ctx context.Context, job string) ([]Item, error) {
	m, err := r.rdb.HGetAll(ctx, r.Key(job)).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	items := make([]Item, 0, len(m))
	for sym, v := range m {
		var it Item
		if err := json.Unmarshal([]byte(v), &it); err != nil {
			return nil, httpx.Wrap(fmt.Errorf("batch: item %s of %s: %w", sym, job, err), httpx.CodeInternal, "corrupt result")
		}
		items = append(items, it)
	}
	sort.Slice(items, func(i, j int) bool { return items[i].Symbol < items[j].Symbol })
	return items, nil
}

// Writes returns the audit log of job: one symbol per write that happened, in order.
func (r *Results) Writes(ctx context.Context, job string) ([]string, error) {
	l, err := r.rdb.LRange(ctx, r.logKey(job), 0, -1).Result()
	if err != nil {
		return nil, unavailable(err)
	}
	return l, nil
}

func unavailable(err error) error {
	return httpx.Wrap(err, httpx.CodeUnavailable, "result store unavailable")
}
