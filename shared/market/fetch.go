package market

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// maxBody bounds a provider response; ten years of daily bars is about 1 MB.
const maxBody = 32 << 20

// fetcher GETs URLs for one HTTP provider and owns its retry policy, shared by yahoo and
// jquants so they behave alike: 429, 5xx and transport failures are retried with capped
// exponential backoff and jitter, honouring Retry-After; anything else is returned for the
// provider to classify.
type fetcher struct {
	provider      string
	client        *http.Client
	userAgent     string
	attempts      int
	backoffBase   time.Duration
	backoffMax    time.Duration
	maxRetryAfter time.Duration
	sleep         func(context.Context, time.Duration) error
	now           func() time.Time
}

func newFetcher(provider string, o Options) *fetcher {
	return &fetcher{
		provider:      provider,
		client:        o.HTTPClient,
		userAgent:     o.UserAgent,
		attempts:      o.MaxAttempts,
		backoffBase:   o.BackoffBase,
		backoffMax:    o.BackoffMax,
		maxRetryAfter: o.MaxRetryAfter,
		sleep:         o.Sleep,
		now:           o.Now,
	}
}

// response is a final (non-retryable) HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// get fetches url. It returns a response for any status it does not retry, an
// *UnavailableError when retries run out (carrying the last Retry-After), or the context's
// error when ctx ends first.
func (f *fetcher) get(ctx context.Context, url string, header http.Header) (*response, error) {
	var lastErr error
	var retryAfter time.Duration
	for attempt := 0; attempt < f.attempts; attempt++ {
		if attempt > 0 {
			wait := f.backoff(attempt)
			if retryAfter > wait {
				wait = retryAfter
			}
			if err := f.sleep(ctx, wait); err != nil {
				return nil, fmt.Errorf("%s: giving up after %d attempts: %w (last: %v)", f.provider, attempt, err, lastErr)
			}
		}
		resp, err := f.once(ctx, url, header)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%s: %w", f.provider, ctx.Err())
			}
			lastErr, retryAfter = err, 0
			continue
		}
		if resp.status != http.StatusTooManyRequests && resp.status < 500 {
			return resp, nil
		}
		lastErr = fmt.Errorf("HTTP %d%s", resp.status, snippet(resp.body))
		retryAfter = parseRetryAfter(resp.header.Get("Retry-After"), f.now())
		if retryAfter > f.maxRetryAfter {
			// Waiting this long would hold the caller's request; let it schedule the retry.
			return nil, &UnavailableError{Provider: f.provider, RetryAfter: retryAfter, Err: fmt.Errorf("%w; server asks to retry after %s", lastErr, retryAfter)}
		}
	}
	return nil, &UnavailableError{Provider: f.provider, RetryAfter: retryAfter, Err: fmt.Errorf("%w after %d attempts", lastErr, f.attempts)}
}

func (f *fetcher) once(ctx context.Context, url string, header http.Header) (*response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	req.Header.Set("User-Agent", f.userAgent)
	req.Header.Set("Accept", "application/json")
	res, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading response: %w", err)
	}
	if len(body) > maxBody {
		return nil, errors.New("response larger than 32 MiB")
	}
	return &response{status: res.StatusCode, header: res.Header, body: body}, nil
}

// backoff is the wait before retry number attempt (1-based): base·2^(attempt-1) capped at
// max, with "equal jitter" (half fixed, half random) so clients spread out but still back off.
func (f *fetcher) backoff(attempt int) time.Duration {
	d := f.backoffBase << (attempt - 1)
	if d > f.backoffMax || d <= 0 {
		d = f.backoffMax
	}
	return d/2 + rand.N(d/2+1)
}

// parseRetryAfter reads a Retry-After header: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(min(s, 24*3600)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return min(t.Sub(now), 24*time.Hour).Round(time.Second)
	}
	return 0
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// snippet quotes the start of a body for an error message.
func snippet(body []byte) string {
	const n = 120
	if len(body) == 0 {
		return ""
	}
	s := string(body)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return fmt.Sprintf(": %q", s)
}
