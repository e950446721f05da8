package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs every scenario in smoke mode (seconds-long phases, tiny counts) against
// real processes, so that `make test` keeps the harness from rotting. It checks what must
// hold at any scale (nothing lost, nothing doubled, the limiter never answers 5xx on a
// fail-open route, fail-closed refusals place nothing, a job survives its worker's death)
// and never a duration: those are the report's numbers, not a test's.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the platform seven times; skipped in -short")
	}
	o := defaultOptions()
	o.moduleDir = filepath.Join("..", "..")
	o = o.smokeOptions()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	rep, err := run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Errors) > 0 {
		t.Fatalf("scenarios failed: %s", strings.Join(rep.Errors, "\n"))
	}
	if len(rep.Rows) != len(scenarioNames) { // smoke runs the Redis kill at one rate
		t.Fatalf("%d rows for %d scenarios", len(rep.Rows), len(scenarioNames))
	}
	if s := rep.Soak; s.AckedMissing != 0 || s.Duplicated != 0 || s.Foreign != 0 || s.WrongOrderID != 0 || s.Acked != s.Trades || s.RebuildMismatches != 0 {
		t.Errorf("soak: %+v", s)
	}
	for _, k := range rep.RedisKill {
		if k.Limiter5xx != 0 || k.TradesOutage.PlacedAfterLimiter503 != 0 || k.TradesAll.AckedMissing != 0 || k.TradesAll.Duplicated != 0 ||
			k.TradesOutage.FailClosed != k.TradesOutage.FailClosedRetry {
			t.Errorf("redis kill: %+v", k)
		}
	}
	if s := rep.SlowRedis; s.TradesAll.AckedMissing != 0 || s.TradesAll.Duplicated != 0 {
		t.Errorf("slow redis: %+v", s.TradesAll)
	}
	if b := rep.Breaker; b.UpstreamAttempts == 0 || b.Phases[1].OK != 0 {
		t.Errorf("100%% 503: the failure did not reach the client: %+v", b.Phases[1])
	}
	if f := rep.Flaky; f.Upstream503 == 0 || f.UpstreamAttempts < int64(f.Client.Requests) {
		t.Errorf("50%%: %d attempts, %d failed, for %d requests", f.UpstreamAttempts, f.Upstream503, f.Client.Requests)
	}
	if h := rep.Hang; h.Hanging[1].OK != 0 || h.Hanging[1].Status["504"] == 0 {
		t.Errorf("hang: %s", h.Hanging[1].statusString())
	}
	if m := rep.MidJob; m.Succeeded != m.Jobs || m.Lost != 0 || m.Doubled != 0 {
		t.Errorf("mid-job: %+v", m)
	}
	out := filepath.Join(t.TempDir(), "reliability.md")
	if err := write(out, rep); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), "| 7. worker killed mid-job |") {
		t.Fatalf("report: %v\n%s", err, b)
	}
	if _, err := os.Stat(strings.TrimSuffix(out, ".md") + ".json"); err != nil {
		t.Fatal(err)
	}
}
