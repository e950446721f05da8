package main

import (
	"net/http"
	"testing"

	"github.com/day-trade/platform/shared/batch/batchtest"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/schedule"
	"github.com/day-trade/platform/shared/workflow/builtin"
)

// TestStructuredAndBinaryModeTicksStartARunOnce: the same tick id delivered in both
// CloudEvents HTTP modes (structured first, then binary first for the next due time) is
// accepted both times and starts each due run once.
func TestStructuredAndBinaryModeTicksStartARunOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	sc := e.schedule("acme", builtin.DailyPredict, "*/5 * * * *", "", "2026-03-19 09:58:00")
	_, url := e.start()
	for i, tc := range []struct {
		id, now, due string
		modes        []bool // structured?
	}{
		{"tick-structured-first", "2026-03-19 10:00:02", "2026-03-19 10:00:00", []bool{true, false}},
		{"tick-binary-first", "2026-03-19 10:05:02", "2026-03-19 10:05:00", []bool{false, true}},
	} {
		e.clock.set(tc.now)
		for _, structured := range tc.modes {
			ev := batchtest.Event(t, tc.id, PingEventType, "/apis/v1/namespaces/day-trade/pingsources/execution-tick",
				map[string]string{"schedule": "execution-tick"})
			ev.SetTime(jst(tc.due))
			if st := batchtest.Send(t, url, ev, structured); st != http.StatusOK {
				t.Fatalf("%s (structured %v): %d", tc.id, structured, st)
			}
		}
		if n := e.fakes.count("symbols-select"); n != i+1 {
			t.Fatalf("after %s in both modes: %d runs started, want %d", tc.id, n, i+1)
		}
		if j := e.job("acme", schedule.RunID(sc.ID, jst(tc.due))); j.Status != jobs.StatusSucceeded {
			t.Fatalf("run due %s: %+v", tc.due, j)
		}
	}
}
