package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/singleflight"

	"github.com/day-trade/platform/shared/auth"
)

// responseCache keeps successful GET answers in Redis per route, tenant, path and query
// (never shared across tenants), for the route's TTL or less when the answer's
// Cache-Control says so. Concurrent misses for one key make one upstream call (single flight).
type responseCache struct {
	rdb     redis.Cmdable
	maxBody int
	log     *slog.Logger
	sf      singleflight.Group
}

func newResponseCache(rdb redis.Cmdable, maxBody int, log *slog.Logger) *responseCache {
	return &responseCache{rdb: rdb, maxBody: maxBody, log: log}
}

type cachedResponse struct {
	Status int                 `json:"s"`
	Header map[string][]string `json:"h"`
	Body   []byte              `json:"b"`
	Stored time.Time           `json:"t"`
}

// Cache outcomes, as metric attributes and X-Cache values.
const (
	cacheHit = iota
	cacheMiss
	cacheBypass
	numCacheResults
)

var cacheResultNames = [numCacheResults]string{"HIT", "MISS", "BYPASS"}

func (c *responseCache) key(x *route, p *auth.Principal, r *http.Request) string {
	sum := sha256.Sum256([]byte(r.URL.Path + "?" + r.URL.RawQuery))
	return Keys.Key("cache", x.id, p.Tenant, hex.EncodeToString(sum[:16]))
}

func (c *responseCache) serve(w http.ResponseWriter, r *http.Request, x *route, p *auth.Principal) {
	reqCC := r.Header.Get("Cache-Control")
	if hasDirective(reqCC, "no-store") {
		c.mark(w, r, x, cacheBypass)
		x.forward(w, r, p)
		return
	}
	key := c.key(x, p, r)
	ctx := r.Context()
	if !hasDirective(reqCC, "no-cache") && !strings.Contains(r.Header.Get("Pragma"), "no-cache") {
		lctx, cancel := context.WithTimeout(ctx, redisTimeout)
		b, err := c.rdb.Get(lctx, key).Bytes()
		cancel()
		if err == nil {
			var cr cachedResponse
			if json.Unmarshal(b, &cr) == nil {
				c.mark(w, r, x, cacheHit)
				c.write(w, &cr, true)
				return
			}
		} else if !errors.Is(err, redis.Nil) {
			c.log.Debug("response cache unavailable", "err", err.Error())
		}
	}
	// Miss: one upstream call per key; the others wait for its answer.
	v, _, _ := c.sf.Do(key, func() (any, error) {
		rec := newRecorder()
		// The leader must not fail its followers when its own client leaves.
		lr := r.WithContext(context.WithoutCancel(ctx))
		lr.Header = r.Header.Clone()
		lr.Header.Del("Accept-Encoding") // store identity bodies; the transport still gzips the hop
		x.forward(rec, lr, p)
		for _, k := range notReplayed {
			delete(rec.header, k)
		}
		cr := &cachedResponse{Status: rec.status, Header: rec.header, Body: rec.body.Bytes(), Stored: time.Now().UTC()}
		if ttl := storeTTL(cr, x.cacheTTL); ttl > 0 && len(cr.Body) <= c.maxBody {
			if b, err := json.Marshal(cr); err == nil {
				sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), redisTimeout)
				if err := c.rdb.Set(sctx, key, b, ttl).Err(); err != nil {
					c.log.Debug("response cache store failed", "err", err.Error())
				}
				cancel()
			}
		}
		return cr, nil
	})
	c.mark(w, r, x, cacheMiss)
	c.write(w, v.(*cachedResponse), false)
}

func (c *responseCache) mark(w http.ResponseWriter, r *http.Request, x *route, res int) {
	w.Header()["X-Cache"] = []string{cacheResultNames[res]}
	if sw := writerState(w); sw != nil {
		sw.cache = cacheResultNames[res]
	}
	x.g.metrics.cacheResult(r.Context(), x, res)
}

// storeTTL is how long an answer may be kept: only 200s without no-store/private/Set-Cookie,
// for the route's TTL capped by the answer's s-maxage or max-age.
func storeTTL(cr *cachedResponse, routeTTL time.Duration) time.Duration {
	if cr.Status != http.StatusOK || len(cr.Header["Set-Cookie"]) > 0 {
		return 0
	}
	cc := strings.Join(cr.Header["Cache-Control"], ",")
	if hasDirective(cc, "no-store") || hasDirective(cc, "private") || hasDirective(cc, "no-cache") {
		return 0
	}
	ttl := routeTTL
	for _, d := range []string{"s-maxage", "max-age"} {
		if v, ok := directiveValue(cc, d); ok {
			age, ok := deltaSeconds(v)
			if !ok {
				return 0 // invalid freshness information: stale at once (RFC 9111 §4.2.1)
			}
			ttl = min(ttl, age)
			break
		}
	}
	return ttl
}

// deltaSeconds parses delta-seconds (RFC 9111 §1.2.2): digits only; a value too large to
// represent is taken as 2^31 seconds, as the RFC asks, rather than overflowing.
func deltaSeconds(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<31 {
			n = n*10 + int64(c-'0')
		}
	}
	return time.Duration(min(n, 1<<31)) * time.Second, true
}

func (c *responseCache) write(w http.ResponseWriter, cr *cachedResponse, hit bool) {
	h := w.Header()
	for k, vs := range cr.Header {
		h[k] = vs
	}
	if hit {
		h.Set("Age", strconv.Itoa(int(time.Since(cr.Stored).Seconds())))
	}
	h.Set("Content-Length", strconv.Itoa(len(cr.Body)))
	status := cr.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(cr.Body)
}

// hasDirective reports whether a Cache-Control value holds directive d (case-insensitive).
func hasDirective(cc, d string) bool {
	_, ok := directiveValue(cc, d)
	return ok
}

func directiveValue(cc, d string) (string, bool) {
	for part := range strings.SplitSeq(cc, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		if strings.EqualFold(strings.TrimSpace(name), d) {
			return strings.Trim(strings.TrimSpace(val), `"`), true
		}
	}
	return "", false
}

// notReplayed are answer headers that belong to one exchange, not to the cached answer.
var notReplayed = []string{"X-Request-Id", "Date", "Content-Length", "X-Cache", "Age", "Traceparent", "Tracestate"}

// recorder buffers an answer so that it can be stored and shared with waiting followers.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) Flush() {}
