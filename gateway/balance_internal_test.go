package gateway

import (
	"fmt"
	"log/slog"
	"testing"
	"time"
)

func testPool(weights ...int64) *pool {
	p := newPool("data-stocks", "http", "data-stocks.day-trade.svc.cluster.local")
	var list []*instance
	for i, w := range weights {
		in := &instance{id: fmt.Sprint(i), url: fmt.Sprintf("http://10.0.0.%d:8080", i), scheme: "http", host: fmt.Sprintf("10.0.0.%d:8080", i), registered: true}
		in.weight.Store(w)
		list = append(list, in)
	}
	if len(list) > 0 {
		p.set(list)
	}
	return p
}

// TestPickPrefersUntriedAndUsable: a retry never returns to an instance already tried while
// another usable one is left, and when every instance is out one is still chosen.
func TestPickPrefersUntriedAndUsable(t *testing.T) {
	t.Parallel()
	for _, policy := range []BalancePolicy{RoundRobin, Weighted, LeastOutstanding} {
		t.Run(string(policy), func(t *testing.T) {
			p := testPool(1, 1, 5)
			list := p.instances()
			for i := 0; i < 100; i++ {
				if _, at := p.pick(policy, 0b011); at != 2 {
					t.Fatalf("tried {0,1}: picked %d", at)
				}
			}
			list[2].down.Store(true)
			for i := 0; i < 100; i++ {
				if _, at := p.pick(policy, 0b001); at != 1 {
					t.Fatalf("tried 0, 2 down: picked %d", at)
				}
			}
			list[1].ejectedUntil.Store(time.Now().Add(time.Hour).UnixNano())
			for i := 0; i < 100; i++ {
				if _, at := p.pick(policy, 0b001); at != 0 {
					t.Fatalf("0 tried, 1 ejected, 2 down: picked %d, want the tried but usable 0", at)
				}
			}
			list[0].down.Store(true)
			if in, _ := p.pick(policy, 0); in == nil {
				t.Fatal("nothing picked with every instance out")
			}
			list[1].ejectedUntil.Store(time.Now().Add(-time.Second).UnixNano())
			for i := 0; i < 100; i++ {
				if _, at := p.pick(policy, 0); at != 1 {
					t.Fatalf("1's ejection is over: picked %d", at)
				}
			}
		})
	}
}

// TestEjectionCap: never more than MaxEjectedPercent of the instances out at once, and a
// repeated ejection lasts longer up to the cap.
func TestEjectionCap(t *testing.T) {
	t.Parallel()
	u := &upstream{name: "data-stocks", log: slog.New(slog.DiscardHandler)}
	u.balancing = balancing{pool: testPool(1, 1, 1, 1), health: HealthConfig{ConsecutiveFailures: 1}}
	u.health.defaults()
	list := u.pool.instances()
	for _, in := range list {
		u.observe(in, false)
	}
	out := 0
	for _, in := range list {
		if in.ejectedUntil.Load() != 0 {
			out++
		}
	}
	if out != 2 {
		t.Fatalf("%d of 4 ejected, want 2 (50%%)", out)
	}
	in := list[0]
	first := time.Duration(in.ejectedUntil.Load() - time.Now().UnixNano())
	in.ejectedUntil.Store(1) // its time is over
	u.observe(in, false)
	second := time.Duration(in.ejectedUntil.Load() - time.Now().UnixNano())
	if in.ejections != 2 || second <= first+u.health.BaseEjection/2 {
		t.Fatalf("second ejection %v after a first of %v (ejections %d): want about twice as long", second, first, in.ejections)
	}
	for i := 0; i < 20; i++ {
		in.ejectedUntil.Store(1)
		u.observe(in, false)
	}
	if d := time.Duration(in.ejectedUntil.Load() - time.Now().UnixNano()); d > u.health.MaxEjection {
		t.Fatalf("ejection of %v exceeds the cap %v", d, u.health.MaxEjection)
	}
}

// BenchmarkPick is the per-attempt cost of choosing an instance: the catalog's single
// instance (every upstream without registrations) and three registered instances.
func BenchmarkPick(b *testing.B) {
	for _, n := range []int{1, 3} {
		for _, policy := range []BalancePolicy{RoundRobin, Weighted, LeastOutstanding} {
			b.Run(fmt.Sprintf("%s/%d", policy, n), func(b *testing.B) {
				p := testPool()
				if n > 1 {
					p = testPool(1, 2, 3)
				}
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						p.pick(policy, 0)
					}
				})
			})
		}
	}
}
