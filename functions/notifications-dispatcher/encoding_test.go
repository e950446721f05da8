package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/batch/batchtest"
	"github.com/day-trade/platform/shared/notify"
)

// TestStructuredAndBinaryModeNotifyOnce: the same fill event id delivered in both
// CloudEvents HTTP modes (structured first, then binary first for a second fill) is accepted
// both times and reaches the webhook once.
func TestStructuredAndBinaryModeNotifyOnce(t *testing.T) {
	f := newFixture(t, 0)
	for i, tc := range []struct {
		id, order string
		modes     []bool // structured?
	}{
		{"fill-structured-first", "o-1", []bool{true, false}},
		{"fill-binary-first", "o-2", []bool{false, true}},
	} {
		fill := events.OrderFilled{OrderID: tc.order, Tenant: "acme", Symbol: "7203.T", Side: "buy", Quantity: decimal.NewFromInt(100),
			Price: decimal.RequireFromString("2650.5"), Fee: decimal.RequireFromString("26.5"), Currency: "JPY", FilledAt: time.Now()}
		for _, structured := range tc.modes {
			e := batchtest.Event(t, tc.id, events.TypeExecutionOrderFilled, events.SourceExecutionTrade, fill)
			if st := batchtest.Send(t, f.url, e, structured); st != http.StatusOK {
				t.Fatalf("%s (structured %v): %d", tc.id, structured, st)
			}
		}
		f.hooks.mu.Lock()
		got := append([]string(nil), f.hooks.got...)
		f.hooks.mu.Unlock()
		if len(got) != i+1 || !strings.Contains(got[i], tc.order) {
			t.Fatalf("after %s in both modes: webhook got %d messages %v, want %d", tc.id, len(got), got, i+1)
		}
		rec, err := f.store.Get(t.Context(), notify.EventNotificationID(events.SourceExecutionTrade, tc.id))
		if err != nil || rec.Overall() != notify.OverallDelivered || rec.Channels[0].Attempts != 1 {
			t.Fatalf("%s: %+v %v", tc.id, rec, err)
		}
	}
}
