package gateway

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"

	"github.com/day-trade/platform/shared/auth"
)

// Token leases: a busy caller would otherwise cost one Redis round trip per request for its
// rate limit. Instead a gateway takes a small batch of tokens from the caller's GCRA cell in
// Redis at once (redis_rate's AllowAtMost: up to n tokens, atomically, in the same Lua-script
// cell every replica uses) and spends them locally.
//
// Why it stays a correct limit. Tokens are debited in Redis before they are spent, so all
// replicas together never spend more tokens than Redis granted. What a lease changes is when
// a token is spent: one granted at t may be spent a little later. Over any time window the
// replicas can therefore admit at most what exact GCRA grants in the window plus the tokens
// they were holding when it began: at most leaseMax(limit) per replica (held plus requested
// tokens never exceed it), where leaseMax is 1/8 of the burst divided by the replica count,
// capped at maxLeaseBatch. So:
//
//	admitted in any window ≤ exact GCRA allowance + Replicas × leaseMax ≤ allowance + Burst/8
//
// and when Burst < 8 × Replicas the batch is 1 and the limiter is exact (one round trip per
// request, as before). The batch adapts to the caller's demand on this replica, aiming at one
// Redis call per leaseTarget: a caller sending a few requests a second keeps batches of 1;
// only callers hot enough to need a Redis call every few milliseconds get larger ones, and
// theirs are refilled in the background when half is left, so that they wait on Redis only
// when its answer takes longer than half a batch lasts (about leaseTarget/2 = 25 ms): one slow
// Redis answer would otherwise hold up every request of the caller that queued behind it.
// At 2,000 requests/s from one key that is about 20 Redis calls a second. Tokens not spent within leaseTTL are dropped (the caller loses at most one batch, never
// gains). A refusal from Redis is remembered until its Retry-After, so a caller hammering a
// closed limit costs no Redis calls either.
const (
	maxLeaseBatch = 256
	leaseTarget   = 50 * time.Millisecond
	leaseTTL      = time.Second
	maxLeases     = 10000
)

// leaseMax is the largest batch a route's limit allows on each of replicas gateways.
func leaseMax(lim Limit, replicas int) int {
	return min(maxLeaseBatch, max(1, lim.Burst/(8*max(replicas, 1))))
}

// leaseKey names one caller's cell on one route without building the Redis key string.
type leaseKey struct {
	route string
	kind  byte // 'k': API key id, 's': subject
	id    string
}

func newLeaseKey(x *route, p *auth.Principal) leaseKey {
	if p.KeyID != "" {
		return leaseKey{route: x.id, kind: 'k', id: p.KeyID}
	}
	return leaseKey{route: x.id, kind: 's', id: p.Subject}
}

type leaseBook struct {
	mu     sync.RWMutex
	leases map[leaseKey]*lease
}

func newLeaseBook() *leaseBook { return &leaseBook{leases: map[leaseKey]*lease{}} }

func (b *leaseBook) get(k leaseKey) *lease {
	b.mu.RLock()
	l := b.leases[k]
	b.mu.RUnlock()
	if l != nil {
		return l
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if l = b.leases[k]; l == nil {
		if len(b.leases) >= maxLeases {
			clear(b.leases) // drops held tokens: callers lose a batch at most, never gain
		}
		l = &lease{batch: 1}
		b.leases[k] = l
	}
	return l
}

// lease is one caller's tokens on one route in this gateway.
type lease struct {
	mu        sync.Mutex
	limit     Limit
	tokens    int   // granted by Redis, not yet spent
	expires   int64 // unix nanos after which unspent tokens are dropped
	remaining int   // Redis's remaining count after the last grant
	resetAt   int64 // when the cell was to be full again, as of the last answer
	denyUntil int64 // Redis refused: no token before then
	batch     int   // tokens to ask for next
	grantedAt int64 // when the last batch arrived
	waiters   int   // requests waiting on the fetch in flight
	fetch     *leaseFetch
}

type leaseFetch struct {
	n    int // tokens asked for
	done chan struct{}
	err  error
}

// leaseResult is a decision with what the rate-limit headers need.
type leaseResult struct {
	allowed    bool
	remaining  int
	reset      time.Duration
	retryAfter time.Duration
	asked      bool // this request's own call to Redis decided it (so Redis is up)
	refill     bool // this request started a background refill
}

// takeFunc asks Redis for up to n tokens.
type takeFunc func(ctx context.Context, n int) (*redis_rate.Result, error)

// errLimiterDown is take's answer when it would have to ask Redis but may not.
var errLimiterDown = errors.New("rate limiter degraded")

// take spends a held token or, when none is left, fetches the next batch (one fetch at a
// time per lease; concurrent requests wait for it and share its grant). When the tokens run
// low it refills in the background, so that a hot caller rarely waits for Redis at all.
// mayAsk false means Redis is known to be down: a held token still admits, otherwise
// errLimiterDown.
func (l *lease) take(ctx context.Context, lim Limit, most int, now func() time.Time, mayAsk bool, ask takeFunc) (leaseResult, error) {
	for {
		l.mu.Lock()
		t := now().UnixNano()
		if l.limit != lim { // new lease, or the route's limit changed (routes reloaded)
			l.limit, l.tokens, l.denyUntil, l.batch, l.grantedAt = lim, 0, 0, 1, 0
		}
		if t >= l.expires {
			l.tokens = 0 // unspent for leaseTTL: dropped
		}
		if l.tokens > 0 {
			l.tokens--
			res := leaseResult{allowed: true, remaining: l.remaining + l.tokens, reset: time.Duration(max(l.resetAt-t, 0))}
			// Refill ahead only for a caller hot enough to have grown its batch: a slow one
			// would see the prefetched token expire unused.
			var f *leaseFetch
			if mayAsk && l.fetch == nil && l.batch >= 4 && l.tokens <= l.batch/2 && l.tokens < most {
				f, res.refill = l.startFetch(t, most), true
			}
			l.mu.Unlock()
			if f != nil {
				go l.complete(context.Background(), f, now, ask, false)
			}
			return res, nil
		}
		if t < l.denyUntil {
			res := leaseResult{retryAfter: time.Duration(l.denyUntil - t), reset: time.Duration(max(l.resetAt-t, 0))}
			l.mu.Unlock()
			return res, nil
		}
		if !mayAsk {
			l.mu.Unlock()
			return leaseResult{}, errLimiterDown
		}
		if f := l.fetch; f != nil {
			l.waiters++
			l.mu.Unlock()
			select {
			case <-f.done:
			case <-ctx.Done():
				return leaseResult{}, ctx.Err()
			}
			if f.err != nil {
				return leaseResult{}, f.err
			}
			continue
		}
		f := l.startFetch(t, most)
		l.mu.Unlock()
		// The fetch serves the waiters too: it must not end because this caller left.
		return l.complete(context.WithoutCancel(ctx), f, now, ask, true)
	}
}

// startFetch sizes and registers the next fetch. Called with mu held.
func (l *lease) startFetch(t int64, most int) *leaseFetch {
	// Held and requested tokens together stay within most: that is the overshoot bound.
	f := &leaseFetch{done: make(chan struct{}), n: max(1, min(l.nextBatch(t, most), most-l.tokens))}
	l.fetch = f
	return f
}

// complete asks Redis for f's tokens and adds the grant to the lease. For the request that
// ran out (own), one granted token is its own and the result is its decision; a background
// refill only adds tokens (its failure reaches whoever waits on it).
func (l *lease) complete(ctx context.Context, f *leaseFetch, now func() time.Time, ask takeFunc, own bool) (leaseResult, error) {
	fctx, cancel := context.WithTimeout(ctx, redisTimeout)
	rr, err := ask(fctx, f.n)
	cancel()

	l.mu.Lock()
	defer l.mu.Unlock()
	t := now().UnixNano()
	l.fetch = nil
	f.err = err
	defer close(f.done)
	if err != nil {
		return leaseResult{}, err
	}
	l.remaining = rr.Remaining
	l.resetAt = t + int64(rr.ResetAfter)
	if rr.Allowed <= 0 {
		l.denyUntil = t + int64(rr.RetryAfter)
		return leaseResult{retryAfter: rr.RetryAfter, reset: rr.ResetAfter, asked: true}, nil
	}
	l.tokens += rr.Allowed
	l.expires = t + int64(leaseTTL)
	l.grantedAt = t
	if !own {
		return leaseResult{}, nil
	}
	l.tokens-- // this request's
	return leaseResult{allowed: true, remaining: rr.Remaining + l.tokens, reset: rr.ResetAfter, asked: true}, nil
}

// nextBatch sizes the next fetch from how long the last batch lasted (aiming at one fetch per
// leaseTarget) and from how many requests queued behind the last fetch. Called with mu held.
func (l *lease) nextBatch(t int64, most int) int {
	n := l.batch
	if l.grantedAt != 0 {
		switch lasted := time.Duration(t - l.grantedAt); {
		case lasted < leaseTarget/2:
			n *= 2
		case lasted > 2*leaseTarget:
			n /= 2
		}
	}
	n = max(n, l.waiters+1)
	l.waiters = 0
	l.batch = min(max(n, 1), most)
	return l.batch
}
