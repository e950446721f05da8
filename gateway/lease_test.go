package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-redis/redis_rate/v10"
)

// fakeClock advances by step every time it is read, so that batch sizing is deterministic.
type fakeClock struct {
	t    atomic.Int64
	step atomic.Int64
}

func newFakeClock(step time.Duration) *fakeClock {
	c := &fakeClock{}
	c.t.Store(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC).UnixNano())
	c.step.Store(int64(step))
	return c
}

func (c *fakeClock) now() time.Time { return time.Unix(0, c.t.Add(c.step.Load())) }

// bucket is a token bucket without refill standing in for the GCRA cell: AllowAtMost grants
// min(n, left), as redis_rate's script does.
type bucket struct {
	mu    sync.Mutex
	left  int
	calls int
	asked []int
}

func (b *bucket) lastAsked() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.asked[len(b.asked)-1]
}

func (b *bucket) ask(_ context.Context, n int) (*redis_rate.Result, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	b.asked = append(b.asked, n)
	if b.left == 0 {
		return &redis_rate.Result{RetryAfter: time.Second, ResetAfter: time.Minute}, nil
	}
	got := min(n, b.left)
	b.left -= got
	return &redis_rate.Result{Allowed: got, Remaining: b.left, RetryAfter: -1, ResetAfter: time.Minute}, nil
}

var testLimit = Limit{Rate: 1000, Burst: 1000, Period: time.Second}

func TestLeaseSpendsOnlyGrantedTokens(t *testing.T) {
	t.Parallel()
	const budget, most = 500, 16
	b := &bucket{left: budget}
	clk := newFakeClock(20 * time.Microsecond)
	l := &lease{}
	var admitted, denied atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				res, err := l.take(context.Background(), testLimit, most, clk.now, true, b.ask)
				if err != nil {
					t.Error(err)
					return
				}
				if res.allowed {
					admitted.Add(1)
				} else {
					denied.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != budget || denied.Load() != 800-budget {
		t.Fatalf("admitted %d, denied %d; want exactly the %d granted tokens admitted", admitted.Load(), denied.Load(), budget)
	}
	for _, n := range b.asked {
		if n < 1 || n > most {
			t.Fatalf("asked for %d tokens; batches must stay within 1..%d", n, most)
		}
	}
	// Batching did its job: far fewer Redis calls than requests (the refusal is remembered, so
	// the 300 denied requests cost one call).
	if b.calls > budget/4 {
		t.Errorf("%d Redis calls for %d admitted requests", b.calls, budget)
	}
}

func TestLeaseBatchFollowsDemand(t *testing.T) {
	t.Parallel()
	b := &bucket{left: 1 << 30}
	clk := newFakeClock(50 * time.Microsecond) // 20,000 requests/s on this key
	l := &lease{}
	take := func() {
		t.Helper()
		if res, err := l.take(context.Background(), testLimit, maxLeaseBatch, clk.now, true, b.ask); err != nil || !res.allowed {
			t.Fatalf("take: %+v %v", res, err)
		}
	}
	for i := 0; i < 2000; i++ {
		take()
	}
	l.mu.Lock()
	batch := l.batch
	l.mu.Unlock()
	// Refills are asked ahead, for the batch less what is still held.
	if last := b.lastAsked(); batch != maxLeaseBatch || last < maxLeaseBatch/2 {
		t.Fatalf("a hot key's batch is %d and it asked for %d tokens, want %d", batch, last, maxLeaseBatch)
	}
	// The caller slows to one request per 4 lease targets (200 ms): the batch shrinks back to exact.
	clk.step.Store(int64(4 * leaseTarget))
	for i := 0; i < 2*maxLeaseBatch; i++ {
		take()
	}
	if last := b.lastAsked(); last != 1 {
		t.Fatalf("a slow key still asks for %d tokens at a time", last)
	}
}

func TestLeaseRemembersRefusalAndDropsStaleTokens(t *testing.T) {
	t.Parallel()
	b := &bucket{left: 0}
	clk := newFakeClock(time.Millisecond)
	l := &lease{}
	for i := 0; i < 100; i++ {
		res, err := l.take(context.Background(), testLimit, 8, clk.now, true, b.ask)
		if err != nil || res.allowed || res.retryAfter <= 0 {
			t.Fatalf("take %d: %+v %v", i, res, err)
		}
	}
	if b.calls != 1 {
		t.Fatalf("%d Redis calls within one Retry-After; want 1", b.calls)
	}
	clk.t.Add(int64(time.Second))
	b.left = 100
	l.batch = 8
	if res, _ := l.take(context.Background(), testLimit, 8, clk.now, true, b.ask); !res.allowed || b.calls != 2 {
		t.Fatalf("after Retry-After: %+v, %d calls", res, b.calls)
	}
	if l.tokens == 0 {
		t.Fatal("no tokens held after a batch")
	}
	clk.t.Add(int64(leaseTTL)) // held tokens expire: the next request asks Redis again
	if _, _ = l.take(context.Background(), testLimit, 8, clk.now, true, b.ask); b.calls != 3 {
		t.Fatalf("stale tokens were spent: %d calls", b.calls)
	}
}

func TestLeaseWhileRedisIsDown(t *testing.T) {
	t.Parallel()
	b := &bucket{left: 100}
	clk := newFakeClock(time.Microsecond)
	l := &lease{}
	for i := 0; i < 2; i++ { // a batch of 1, then (the first lasted no time) one of 4
		if res, err := l.take(context.Background(), testLimit, 4, clk.now, true, b.ask); err != nil || !res.allowed || !res.asked {
			t.Fatalf("take %d: %+v %v", i, res, err)
		}
		l.batch = 4
	}
	// Redis is known to be down: the three held tokens still admit, then the lease says so.
	for i := 0; i < 3; i++ {
		if res, err := l.take(context.Background(), testLimit, 4, clk.now, false, b.ask); err != nil || !res.allowed || res.asked {
			t.Fatalf("held token %d: %+v %v", i, res, err)
		}
	}
	if _, err := l.take(context.Background(), testLimit, 4, clk.now, false, b.ask); !errors.Is(err, errLimiterDown) {
		t.Fatalf("empty lease while down: %v", err)
	}
	// A failing fetch fails the requests waiting on it too, not only the one that asked.
	boom := errors.New("connection refused")
	release := make(chan struct{})
	failing := func(context.Context, int) (*redis_rate.Result, error) { <-release; return nil, boom }
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			_, err := l.take(context.Background(), testLimit, 4, clk.now, true, failing)
			errs <- err
		}()
	}
	time.Sleep(10 * time.Millisecond) // let them queue behind the first; not an assertion
	close(release)
	for i := 0; i < 4; i++ {
		if err := <-errs; !errors.Is(err, boom) {
			t.Fatalf("request %d: %v, want the fetch's error", i, err)
		}
	}
}

func TestLeaseMaxIsExactForSmallBursts(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		burst, replicas, want int
	}{
		{2, 1, 1}, {7, 1, 1}, {8, 1, 1}, {16, 1, 2}, {200, 1, 25}, {200, 4, 6}, {100000, 1, maxLeaseBatch}, {100, 20, 1},
	} {
		if got := leaseMax(Limit{Rate: c.burst, Burst: c.burst, Period: time.Second}, c.replicas); got != c.want {
			t.Errorf("leaseMax(burst %d, %d replicas) = %d, want %d", c.burst, c.replicas, got, c.want)
		}
	}
}
