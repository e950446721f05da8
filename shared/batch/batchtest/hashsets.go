package batchtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// HashSets counts, per key, the commands that set fields of a Redis hash (HSET, HMSET, and
// HSETNX when it set the field: Redis's "hset" keyspace event), as Redis itself reports them. It
// does not depend on the code under test keeping an honest log: a result written twice,
// by whatever path, is counted twice. One command setting several fields counts once.
type HashSets struct {
	rdb  redis.UniversalClient
	ps   *redis.PubSub
	mu   sync.Mutex
	n    map[string]int
	sync map[string]chan struct{}
	seq  atomic.Int64
}

const syncPrefix = "batchtest:hashsets:sync:"

// CountHashSets turns on Redis's keyevent notifications for hash commands (keeping the
// flags already set) and counts the sets of every hash whose key has the given prefix,
// from now until the test ends.
func CountHashSets(tb testing.TB, rdb redis.UniversalClient, prefix string) *HashSets {
	tb.Helper()
	ctx := context.Background()
	cur, err := rdb.ConfigGet(ctx, "notify-keyspace-events").Result()
	if err != nil {
		tb.Fatal(err)
	}
	flags := cur["notify-keyspace-events"]
	if !strings.Contains(flags, "E") {
		flags += "E"
	}
	if !strings.ContainsAny(flags, "hA") {
		flags += "h"
	}
	if err := rdb.ConfigSet(ctx, "notify-keyspace-events", flags).Err(); err != nil {
		tb.Fatal(err)
	}
	h := &HashSets{rdb: rdb, n: map[string]int{}, sync: map[string]chan struct{}{}}
	// Every database's hset events: the channel is __keyevent@<db>__:hset.
	h.ps = rdb.PSubscribe(ctx, "__keyevent@*__:hset")
	if _, err := h.ps.Receive(ctx); err != nil { // the subscription is in place
		tb.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m := range h.ps.Channel(redis.WithChannelSize(10000)) {
			h.mu.Lock()
			if ch, ok := h.sync[m.Payload]; ok {
				close(ch)
				delete(h.sync, m.Payload)
			} else if strings.HasPrefix(m.Payload, prefix) {
				h.n[m.Payload]++
			}
			h.mu.Unlock()
		}
	}()
	tb.Cleanup(func() { _ = h.ps.Close(); <-done })
	return h
}

// Sync waits until every hash set Redis executed before the call has been counted: it sets
// a field of a marker hash and waits for that event, which Redis sends after the earlier ones.
func (h *HashSets) Sync(tb testing.TB) {
	tb.Helper()
	key := fmt.Sprintf("%s%d", syncPrefix, h.seq.Add(1))
	ch := make(chan struct{})
	h.mu.Lock()
	h.sync[key] = ch
	h.mu.Unlock()
	ctx := context.Background()
	if err := h.rdb.HSet(ctx, key, "f", 1).Err(); err != nil {
		tb.Fatal(err)
	}
	defer h.rdb.Del(ctx, key)
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		tb.Fatal("batchtest: hash set events stopped arriving")
	}
}

// Count returns how many sets of key were counted (call Sync first).
func (h *HashSets) Count(key string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[key]
}
