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
// atomic, shared by every gateway replica) and the daily quota. When Redis cannot be asked it
// marks itself degraded for redisBackoff, so that requests do not all wait on a dead Redis,
// and each route either fails open to a local limiter of limit ÷ replicas or fails closed.
type limiter struct {
	rl       *redis_rate.Limiter
	rdb      redis.Cmdable
	replicas int
	log      *slog.Logger
	m        *metrics
	now      func() time.Time

	downUntil atomic.Int64 // unix nanos; Redis is not asked before then
	degraded  atomic.Bool
	lastLog   atomic.Int64

	mu    sync.Mutex
	local map[string]*rate.Limiter
}

const (
	redisBackoff = 500 * time.Millisecond // a returning Redis is used again within this
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
	return &limiter{rl: rl, rdb: rdb, replicas: replicas, log: log, m: m, now: time.Now, local: map[string]*rate.Limiter{}}
}

// admit decides and writes the rate-limit headers; on refusal it writes the problem.
func (l *limiter) admit(w http.ResponseWriter, r *http.Request, x *route, p *auth.Principal) bool {
	key := Keys.Key("rl", x.id, p.ID())
	now := l.now()
	if now.UnixNano() >= l.downUntil.Load() {
		ctx, cancel := context.WithTimeout(r.Context(), redisTimeout)
		res, err := l.rl.Allow(ctx, key, redis_rate.Limit{Rate: x.limit.Rate, Burst: x.limit.Burst, Period: x.limit.Period})
		if err == nil && x.quota > 0 && res.Allowed > 0 {
			err = l.quota(ctx, w, r, x, p, now)
			if err == errQuotaExceeded {
				cancel()
				l.m.decision(r.Context(), x, decQuotaDeny)
				return false
			}
		}
		cancel()
		if err == nil {
			l.up()
			setRateHeaders(w.Header(), x, res.Remaining, res.ResetAfter)
			if res.Allowed == 0 {
				l.m.decision(r.Context(), x, decDeny)
				tooMany(w, r, res.RetryAfter)
				return false
			}
			l.m.decision(r.Context(), x, decAllow)
			return true
		}
		if r.Context().Err() != nil {
			return false // the client left; nothing to answer
		}
		l.down(now, err)
	}
	if !x.failOpen {
		l.m.decision(r.Context(), x, decFailClosed)
		httpx.WriteError(w, r, nil, &httpx.Error{Code: httpx.CodeUnavailable, RetryAfter: time.Second,
			Message: "rate limiter unavailable; this route fails closed"})
		return false
	}
	lim := l.localLimiter(key, x.limit)
	if !lim.Allow() {
		l.m.decision(r.Context(), x, decDegradedDeny)
		tooMany(w, r, time.Second)
		return false
	}
	l.m.decision(r.Context(), x, decDegradedAllow)
	return true
}

var errQuotaExceeded = &httpx.Error{Code: httpx.CodeRateLimited, Message: "daily quota exceeded"}

// quota counts the call against the caller's daily quota for the route (UTC days).
func (l *limiter) quota(ctx context.Context, w http.ResponseWriter, r *http.Request, x *route, p *auth.Principal, now time.Time) error {
	day := now.UTC().Format("20060102")
	key := Keys.Key("quota", x.id, p.ID(), day)
	var incr *redis.IntCmd
	_, err := l.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		incr = pl.Incr(ctx, key)
		pl.Expire(ctx, key, 48*time.Hour)
		return nil
	})
	if err != nil {
		return err
	}
	used := incr.Val()
	h := w.Header()
	h.Set("X-Quota-Limit", strconv.Itoa(x.quota))
	h.Set("X-Quota-Remaining", strconv.FormatInt(max(int64(x.quota)-used, 0), 10))
	if used > int64(x.quota) {
		midnight := now.UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
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

func setRateHeaders(h http.Header, x *route, remaining int, reset time.Duration) {
	secs := strconv.Itoa(int(math.Ceil(reset.Seconds())))
	rem := strconv.Itoa(remaining)
	h["Ratelimit-Policy"] = x.policyHeader
	h["Ratelimit"] = []string{`"default";r=` + rem + `;t=` + secs}
	h["X-Ratelimit-Limit"] = x.limitHeader
	h["X-Ratelimit-Remaining"] = []string{rem}
	h["X-Ratelimit-Reset"] = []string{secs}
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
