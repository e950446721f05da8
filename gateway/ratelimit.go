package gateway

import (
	"context"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"
	"golang.org/x/time/rate"

	"github.com/day-trade/platform/shared/auth"
	"github.com/day-trade/platform/shared/httpx"
)

// limiter applies each route's GCRA limit per caller in Redis (redis_rate: one Lua script,
// atomic, shared by every gateway replica; busy callers lease tokens in batches, lease.go)
// and the daily and monthly quotas. When Redis cannot be asked it marks itself degraded and stops asking
// on requests' behalf: each route either fails open to a local limiter of limit ÷ replicas or
// fails closed, and every redisBackoff a background PING (started by traffic) checks whether
// Redis is back, so that no request waits on a dead Redis and a returning one is used within
// redisBackoff plus one round trip.
type limiter struct {
	rl       *redis_rate.Limiter
	rdb      redis.Cmdable
	replicas int
	log      *slog.Logger
	m        *metrics
	now      func() time.Time

	downUntil atomic.Int64 // unix nanos; while degraded, the next probe is not before then
	degraded  atomic.Bool
	probing   atomic.Bool
	lastLog   atomic.Int64

	leases *leaseBook

	mu    sync.Mutex
	local map[string]*rate.Limiter
}

const (
	redisBackoff = 200 * time.Millisecond // a returning Redis is used again within this (+ a PING)
	redisTimeout = 300 * time.Millisecond // a hung Redis delays a request at most this
	maxLocal     = 10000
)

// Limiter decisions, as metric attributes.
const (
	decAllow = iota
	decDeny
	decDegradedAllow
	decDegradedDeny
	decFailClosed
	decQuotaDeny
	numDecisions
)

var decisionNames = [numDecisions]string{"allow", "deny", "degraded_allow", "degraded_deny", "fail_closed", "quota_deny"}

func newLimiter(rl *redis_rate.Limiter, rdb redis.Cmdable, replicas int, log *slog.Logger, m *metrics) *limiter {
	return &limiter{rl: rl, rdb: rdb, replicas: replicas, log: log, m: m, now: time.Now, leases: newLeaseBook(), local: map[string]*rate.Limiter{}}
}

// admit decides and writes the rate-limit headers; on refusal it writes the problem. A caller
// is limited per route by its key or subject and, when the route has a tenant limit, by its
// tenant's cell as well (all of the tenant's callers together); a call the tenant's cell refuses
// has still spent the caller's own token.
func (l *limiter) admit(w http.ResponseWriter, r *http.Request, x *route, p *auth.Principal) bool {
	now := l.now()
	up := true
	if l.degraded.Load() {
		up = false
		if now.UnixNano() >= l.downUntil.Load() {
			l.probe(now)
		}
	}
	ctx := r.Context()
	callerKey := func() string { return Keys.Key("rl", x.id, p.ID()) }
	res, err := l.take(ctx, x.limit, up, newLeaseKey(x, p), callerKey)
	var tres leaseResult
	tenant := false // the tenant's cell was asked
	if err == nil && res.allowed && !x.tenant.zero() && p.Tenant != "" {
		tenant = true
		tres, err = l.take(ctx, x.tenant, up, leaseKey{route: x.id, kind: 't', id: p.Tenant}, func() string { return tenantKey(x, p) })
	}
	if err == nil && (x.quota > 0 || x.monthly > 0) && res.allowed && (!tenant || tres.allowed) {
		qctx, cancel := context.WithTimeout(ctx, redisTimeout)
		err = l.quota(qctx, w, r, x, p, now)
		cancel()
		if err == errQuotaExceeded {
			l.m.decision(ctx, x, decQuotaDeny)
			return false
		}
	}
	if err == nil {
		if res.asked || tres.asked {
			l.up()
		}
		setRateHeaders(w.Header(), x, res, tres, tenant)
		switch {
		case !res.allowed:
			l.m.decision(ctx, x, decDeny)
			tooMany(w, r, res.retryAfter)
			return false
		case tenant && !tres.allowed:
			l.m.decision(ctx, x, decDeny)
			tooManyMsg(w, r, tres.retryAfter, "tenant rate limit exceeded")
			return false
		}
		l.m.decision(ctx, x, decAllow)
		return true
	}
	if ctx.Err() != nil {
		return false // the client left; nothing to answer
	}
	if err != errLimiterDown {
		l.down(now, err)
	}
	if !x.failOpen {
		l.m.decision(ctx, x, decFailClosed)
		httpx.WriteError(w, r, nil, &httpx.Error{Code: httpx.CodeUnavailable, RetryAfter: time.Second,
			Message: "rate limiter unavailable; this route fails closed"})
		return false
	}
	if !l.localLimiter(callerKey(), x.limit).Allow() ||
		(!x.tenant.zero() && p.Tenant != "" && !l.localLimiter(tenantKey(x, p), x.tenant).Allow()) {
		l.m.decision(ctx, x, decDegradedDeny)
		tooMany(w, r, time.Second)
		return false
	}
	l.m.decision(ctx, x, decDegradedAllow)
	return true
}

// tenantKey names the tenant's cell on the route.
func tenantKey(x *route, p *auth.Principal) string { return Keys.Key("rl", x.id, "tenant", p.Tenant) }

// take decides one GCRA cell: from a lease when the limit allows batches (lease.go), else with
// one Redis call bounded by redisTimeout. up false means Redis is known to be down.
func (l *limiter) take(ctx context.Context, lim Limit, up bool, lk leaseKey, key func() string) (leaseResult, error) {
	rl := redis_rate.Limit{Rate: lim.Rate, Burst: lim.Burst, Period: lim.Period}
	if most := leaseMax(lim, l.replicas); most > 1 {
		// take bounds its own Redis call by redisTimeout; waiting on another request's call
		// is bounded by that call. A held token admits even while Redis is down.
		return l.leases.get(lk).take(ctx, lim, most, l.now, up, func(ctx context.Context, n int) (*redis_rate.Result, error) {
			return l.rl.AllowAtMost(ctx, key(), rl, n)
		})
	}
	if !up {
		return leaseResult{}, errLimiterDown
	}
	ctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	rr, err := l.rl.Allow(ctx, key(), rl)
	if err != nil {
		return leaseResult{}, err
	}
	return leaseResult{allowed: rr.Allowed > 0, remaining: rr.Remaining, reset: rr.ResetAfter, retryAfter: rr.RetryAfter, asked: true}, nil
}

var errQuotaExceeded = &httpx.Error{Code: httpx.CodeRateLimited, Message: "quota exceeded"}

// Quota counters live this long past their period's end (a day's 24 h, a month's 28–31 days).
const (
	dayQuotaTTL   = 48 * time.Hour
	monthQuotaTTL = 62 * 24 * time.Hour
)

// quota counts the call against the caller's daily and monthly quotas for the route (UTC
// days and calendar months), kept apart from the rate limit: the counters are their own
// Redis keys, one round trip for both, and a call that one quota refuses is given back to
// the other, so that only admitted calls use up a quota. The headers are X-Quota-Limit and
// X-Quota-Remaining for the day, X-Quota-Monthly-Limit and X-Quota-Monthly-Remaining for the
// month; a refusal is 429 with Retry-After until the period that refused resets (the later
// one when both do).
func (l *limiter) quota(ctx context.Context, w http.ResponseWriter, r *http.Request, x *route, p *auth.Principal, now time.Time) error {
	now = now.UTC()
	var (
		dayKey, monthKey string
		day, month       *redis.IntCmd
	)
	_, err := l.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		if x.quota > 0 {
			dayKey = Keys.Key("quota", x.id, p.ID(), now.Format("20060102"))
			day = pl.Incr(ctx, dayKey)
			pl.Expire(ctx, dayKey, dayQuotaTTL)
		}
		if x.monthly > 0 {
			monthKey = Keys.Key("quota", x.id, p.ID(), now.Format("2006-01"))
			month = pl.Incr(ctx, monthKey)
			pl.Expire(ctx, monthKey, monthQuotaTTL)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var dayUsed, monthUsed int64
	if day != nil {
		dayUsed = day.Val()
	}
	if month != nil {
		monthUsed = month.Val()
	}
	dayOver := day != nil && dayUsed > int64(x.quota)
	monthOver := month != nil && monthUsed > int64(x.monthly)
	if dayOver != monthOver && (day != nil && month != nil) {
		// Refused by one quota: give the call back to the other (best effort).
		refund, used := dayKey, &dayUsed
		if dayOver {
			refund, used = monthKey, &monthUsed
		}
		if l.rdb.Decr(ctx, refund).Err() == nil {
			*used--
		}
	}
	h := w.Header()
	if day != nil {
		h.Set("X-Quota-Limit", strconv.Itoa(x.quota))
		h.Set("X-Quota-Remaining", strconv.FormatInt(max(int64(x.quota)-dayUsed, 0), 10))
	}
	if month != nil {
		h.Set("X-Quota-Monthly-Limit", strconv.Itoa(x.monthly))
		h.Set("X-Quota-Monthly-Remaining", strconv.FormatInt(max(int64(x.monthly)-monthUsed, 0), 10))
	}
	switch {
	case monthOver:
		next := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		tooManyMsg(w, r, next.Sub(now), "monthly quota of "+strconv.Itoa(x.monthly)+" requests exceeded")
		return errQuotaExceeded
	case dayOver:
		midnight := now.Truncate(24 * time.Hour).Add(24 * time.Hour)
		tooManyMsg(w, r, midnight.Sub(now), "daily quota of "+strconv.Itoa(x.quota)+" requests exceeded")
		return errQuotaExceeded
	}
	return nil
}

func (l *limiter) up() {
	if l.degraded.Load() && l.degraded.CompareAndSwap(true, false) {
		l.log.Info("rate limiter recovered: using Redis again")
		l.m.setDegraded(false)
	}
}

// probe checks in the background whether Redis is back (one PING at a time, at most one per
// redisBackoff) and ends the degraded state when it answers.
func (l *limiter) probe(now time.Time) {
	l.downUntil.Store(now.Add(redisBackoff).UnixNano())
	if !l.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer l.probing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
		defer cancel()
		if l.rdb.Ping(ctx).Err() == nil {
			l.up()
		}
	}()
}

func (l *limiter) down(now time.Time, err error) {
	l.downUntil.Store(now.Add(redisBackoff).UnixNano())
	if l.degraded.CompareAndSwap(false, true) {
		l.m.setDegraded(true)
	}
	// One log line per 10 s is enough to say it; the metric counts every decision.
	if last := l.lastLog.Load(); now.UnixNano()-last > int64(10*time.Second) && l.lastLog.CompareAndSwap(last, now.UnixNano()) {
		l.log.Warn("rate limiter degraded: Redis unavailable; routes fail open to the local limiter or fail closed",
			"err", err.Error(), "replicas", l.replicas)
	}
}

// localLimiter is the fallback for key: the route's limit divided by the replica count, so
// that all replicas together admit about what Redis would have.
func (l *limiter) localLimiter(key string, lim Limit) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	if rl, ok := l.local[key]; ok {
		return rl
	}
	if len(l.local) >= maxLocal {
		clear(l.local)
	}
	perSec := float64(lim.Rate) / lim.Period.Seconds() / float64(l.replicas)
	burst := max(lim.Burst/l.replicas, 1)
	rl := rate.NewLimiter(rate.Limit(perSec), burst)
	l.local[key] = rl
	return rl
}

// setRateHeaders writes both IETF draft headers (one item per policy: the caller's, and the
// tenant's when its cell was asked) and the X-RateLimit-* trio for the policy with the fewest
// requests left.
func setRateHeaders(h http.Header, x *route, res, tres leaseResult, tenant bool) {
	// One backing array for the three per-request values (this runs on every request).
	v := make([]string, 3)
	v[0] = strconv.Itoa(res.remaining)
	v[1] = strconv.Itoa(int(math.Ceil(res.reset.Seconds())))
	v[2] = `"default";r=` + v[0] + `;t=` + v[1]
	limit := x.limitHeader
	if tenant {
		tr, tt := strconv.Itoa(tres.remaining), strconv.Itoa(int(math.Ceil(tres.reset.Seconds())))
		v[2] += `, "tenant";r=` + tr + `;t=` + tt
		if tres.remaining < res.remaining {
			v[0], v[1], limit = tr, tt, x.tenantLimitHeader
		}
	}
	h["Ratelimit-Policy"] = x.policyHeader
	h["Ratelimit"] = v[2:3:3]
	h["X-Ratelimit-Limit"] = limit
	h["X-Ratelimit-Remaining"] = v[0:1:1]
	h["X-Ratelimit-Reset"] = v[1:2:2]
}

func tooMany(w http.ResponseWriter, r *http.Request, retry time.Duration) {
	tooManyMsg(w, r, retry, "rate limit exceeded")
}

func tooManyMsg(w http.ResponseWriter, r *http.Request, retry time.Duration, msg string) {
	if retry < time.Second {
		retry = time.Second
	}
	httpx.WriteError(w, r, nil, &httpx.Error{Code: httpx.CodeRateLimited, Message: msg, RetryAfter: retry})
}
