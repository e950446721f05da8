package resilience

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackoffStaysWithinCap(t *testing.T) {
	b := Backoff{Base: 10 * time.Millisecond, Max: 80 * time.Millisecond}
	for attempt := 0; attempt < 20; attempt++ {
		for i := 0; i < 100; i++ {
			if d := b.Delay(attempt); d <= 0 || d > 80*time.Millisecond {
				t.Fatalf("attempt %d: delay %s", attempt, d)
			}
		}
	}
}

func TestBudgetBoundsRetries(t *testing.T) {
	now := time.Unix(0, 0)
	b := NewBudget(0.1, 0)
	b.now = func() time.Time { return now }
	b.tokens = 0
	for i := 0; i < 100; i++ {
		b.Deposit()
	}
	n := 0
	for b.Withdraw() {
		n++
	}
	if n < 9 || n > 10 {
		t.Fatalf("%d retries after 100 requests at 10%%", n)
	}
}

func TestRetryDo(t *testing.T) {
	transient := errors.New("transient")
	calls := 0
	err := Retry{Attempts: 3, Backoff: Backoff{Base: time.Microsecond, Max: time.Microsecond}}.Do(context.Background(),
		func(context.Context) error { calls++; return transient }, func(error) bool { return true })
	if !errors.Is(err, transient) || calls != 3 {
		t.Fatalf("%v after %d calls", err, calls)
	}
	calls = 0
	_ = Retry{Attempts: 3}.Do(context.Background(), func(context.Context) error { calls++; return transient }, func(error) bool { return false })
	if calls != 1 {
		t.Fatalf("non-retryable error tried %d times", calls)
	}
}

func TestBreakerTripsOnFailureRateAfterMinimum(t *testing.T) {
	var changes []State
	b := NewBreaker("up", BreakerSettings{MinRequests: 10, FailureRatio: 0.5, OpenFor: time.Hour,
		OnStateChange: func(_ string, _, to State) { changes = append(changes, to) }})
	for i := 0; i < 9; i++ { // 9 failures: below the sample size, still closed
		done, err := b.Allow()
		if err != nil {
			t.Fatalf("call %d refused", i)
		}
		done(false)
	}
	if b.State() != StateClosed {
		t.Fatal("tripped below the minimum sample size")
	}
	done, _ := b.Allow()
	done(false)
	if b.State() != StateOpen || len(changes) != 1 {
		t.Fatalf("state %s after 10/10 failures", b.State())
	}
	if _, err := b.Allow(); !errors.Is(err, ErrOpen) {
		t.Fatal("open breaker allowed a call")
	}
}

func TestBulkhead(t *testing.T) {
	b := NewBulkhead(2)
	first, second, third := b.TryAcquire(), b.TryAcquire(), b.TryAcquire()
	if !first || !second || third {
		t.Fatal("bulkhead of 2 admitted a wrong number")
	}
	b.Release()
	if !b.TryAcquire() {
		t.Fatal("released slot not reusable")
	}
}
