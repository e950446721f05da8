package events_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/day-trade/platform/events"
)

// TestConsumersOfOneEventInOneKeySpace: execution-scheduler and execution-fills both take
// every execution tick in the "exec" space. With their Consumer set each processes the tick
// once; without it the first one's mark made the other skip the tick.
func TestConsumersOfOneEventInOneKeySpace(t *testing.T) {
	for name, tc := range map[string]struct {
		a, b string
		want int64 // effects of b
	}{
		"named consumers": {"scheduler", "fills", 1},
		"unnamed":         {"", "", 0}, // the shape that lost ticks: kept to show why Consumer exists
	} {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, events.ReceiverOptions{Consumer: tc.a})
			var effA, effB atomic.Int64
			f.recv.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error { effA.Add(1); return nil })
			b := mustReceiver(t, f.rdb, events.ReceiverOptions{Consumer: tc.b})
			b.Handle(events.TypeExecutionTick, func(context.Context, cloudevents.Event) error { effB.Add(1); return nil })
			srvB := httptest.NewServer(b.HTTPHandler())
			t.Cleanup(srvB.Close)
			for range 2 { // each Trigger may redeliver: still once per consumer
				for _, url := range []string{f.srv.URL, srvB.URL} {
					if code := do(t, binary(t, url, "tick-1", events.TypeExecutionTick, tickData)); code != http.StatusOK {
						t.Fatalf("%s: status %d", url, code)
					}
				}
			}
			if effA.Load() != 1 || effB.Load() != tc.want {
				t.Errorf("effects a=%d b=%d, want 1 and %d", effA.Load(), effB.Load(), tc.want)
			}
		})
	}
}
