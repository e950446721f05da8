// Package resilience owns the one layer of retries, circuit breaking and load shedding
// (STYLE.md habit 8): jittered exponential backoff under a retry budget, a failure-rate
// circuit breaker over sony/gobreaker/v2, and a bulkhead that rejects at once rather than
// queueing. Callers classify their own errors; this package only decides whether and when.
package resilience

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Backoff is a capped exponential backoff with full jitter (AWS architecture blog, "Exponential
// Backoff And Jitter"): attempt n waits a uniform random time in [0, min(Max, Base·2^n)).
type Backoff struct {
	Base time.Duration
	Max  time.Duration
}

// Delay returns the wait before retry number attempt (0 for the first retry).
func (b Backoff) Delay(attempt int) time.Duration {
	base, ceil := b.Base, b.Max
	if base <= 0 {
		base = 25 * time.Millisecond
	}
	if ceil <= 0 {
		ceil = time.Second
	}
	d := base
	for i := 0; i < attempt && d < ceil; i++ {
		d *= 2
	}
	d = min(d, ceil)
	return time.Duration(rand.Int64N(int64(d)) + 1)
}

// Sleep waits d or until ctx ends, whichever is first.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Budget bounds retries to a share of recent traffic, so that retries cannot multiply load
// on an upstream that is already failing (the "retry storm"): every request deposits Ratio
// tokens, every retry withdraws one, and MinPerSecond tokens per second are always available
// so that a quiet upstream can still be retried. This is Finagle's RetryBudget, simplified.
type Budget struct {
	ratio  float64
	minPS  float64
	cap    float64
	mu     sync.Mutex
	tokens float64
	last   time.Time
	now    func() time.Time
}

// NewBudget allows retries of up to ratio (e.g. 0.1 = 10%) of requests, plus minPerSecond.
func NewBudget(ratio, minPerSecond float64) *Budget {
	c := max(10*minPerSecond, 10)
	return &Budget{ratio: ratio, minPS: minPerSecond, cap: c, tokens: c, now: time.Now}
}

// Deposit records one request.
func (b *Budget) Deposit() {
	if b == nil {
		return
	}
	b.mu.Lock()
	b.refill()
	b.tokens = min(b.cap, b.tokens+b.ratio)
	b.mu.Unlock()
}

// Withdraw takes one retry from the budget; false means "do not retry".
func (b *Budget) Withdraw() bool {
	if b == nil {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *Budget) refill() {
	now := b.now()
	if !b.last.IsZero() {
		b.tokens = min(b.cap, b.tokens+now.Sub(b.last).Seconds()*b.minPS)
	}
	b.last = now
}

// Retry is a retry policy: at most Attempts tries in all, waiting Backoff between them,
// each retry paid from Budget (nil = unbounded).
type Retry struct {
	Attempts int
	Backoff  Backoff
	Budget   *Budget
}

// ErrBudgetExhausted is joined to the last error when a retry was refused by the budget.
var ErrBudgetExhausted = errors.New("resilience: retry budget exhausted")

// Do calls f until it succeeds, retryable says its error is not worth another try, the
// attempts or the budget run out, or ctx ends.
func (p Retry) Do(ctx context.Context, f func(ctx context.Context) error, retryable func(error) bool) error {
	p.Budget.Deposit()
	attempts := max(p.Attempts, 1)
	var err error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			if !p.Budget.Withdraw() {
				return errors.Join(err, ErrBudgetExhausted)
			}
			if serr := Sleep(ctx, p.Backoff.Delay(i-1)); serr != nil {
				return errors.Join(err, serr)
			}
		}
		if err = f(ctx); err == nil || !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
	return err
}

// Bulkhead caps the concurrent calls to one upstream. Excess calls are rejected at once:
// queueing them would only turn an overloaded upstream into a slow gateway.
type Bulkhead struct {
	max      int64
	inflight atomic.Int64
}

// NewBulkhead allows max concurrent calls; max <= 0 means unlimited.
func NewBulkhead(max int) *Bulkhead { return &Bulkhead{max: int64(max)} }

// TryAcquire takes a slot; the caller must Release it when ok.
func (b *Bulkhead) TryAcquire() bool {
	if b == nil || b.max <= 0 {
		return true
	}
	if b.inflight.Add(1) > b.max {
		b.inflight.Add(-1)
		return false
	}
	return true
}

// Release returns a slot taken by TryAcquire.
func (b *Bulkhead) Release() {
	if b == nil || b.max <= 0 {
		return
	}
	b.inflight.Add(-1)
}

// InFlight is the number of slots taken.
func (b *Bulkhead) InFlight() int64 { return b.inflight.Load() }
