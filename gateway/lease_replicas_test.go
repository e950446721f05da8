package gateway_test

import (
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/day-trade/platform/gateway"
)

// TestLeasedLimitHoldsAcrossReplicas runs two gateways on one real Redis with a limit whose
// burst allows token leases (64 per day, burst 64, 2 replicas: batches of up to 4) and sends
// one caller's requests to both at once: together they never admit more than the 64 tokens
// Redis grants, and lose at most the batches they hold.
func TestLeasedLimitHoldsAcrossReplicas(t *testing.T) {
	t.Parallel()
	dial := upstream(t, func(w http.ResponseWriter, r *http.Request) {})
	cfg := gateway.Config{RateLimit: gateway.Limit{Rate: 64, Burst: 64, Period: 24 * time.Hour}, Replicas: 2}
	h1 := newHarness(t, dial, cfg, nil)
	h2 := newHarnessOn(t, h1.redis, dial, cfg, nil)
	var admitted, refused atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				h := h1
				if (g+i)%2 == 1 {
					h = h2
				}
				req, _ := http.NewRequest("GET", h.srv.URL+"/api/v1/data/stocks/X", nil)
				req.Header.Set("X-API-Key", h1.key)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusOK:
					admitted.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
			}
		}()
	}
	wg.Wait()
	const limit, held = 64, 2 * 4 // Redis grants 64; each replica may strand one batch of ≤ 4
	if n := admitted.Load(); n > limit || n < limit-held {
		t.Fatalf("two replicas admitted %d requests (refused %d); want ≤ %d and ≥ %d", n, refused.Load(), limit, limit-held)
	}
}
