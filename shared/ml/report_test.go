package ml

import (
	"strings"
	"testing"
	"time"

	"github.com/day-trade/platform/shared/market"
)

// TestReportPrintsJSTTradingDays: a bar of 2026-01-05 (midnight JST, 2026-01-04 15:00 UTC)
// is reported as 2026-01-05, even when the times arrive in UTC (as JSON decodes them).
func TestReportPrintsJSTTradingDays(t *testing.T) {
	from := time.Date(2026, 1, 5, 0, 0, 0, 0, market.JST).UTC()
	to := time.Date(2026, 3, 31, 0, 0, 0, 0, market.JST).UTC()
	r := &Report{Rows: 1, From: from, To: to, Folds: []FoldReport{{Fold: 1, TestFrom: from, TestTo: to}}}
	table := r.Table()
	if !strings.Contains(table, "data 2026-01-05..2026-03-31") {
		t.Errorf("report header does not show the JST trading days:\n%s", table)
	}
	if strings.Contains(table, "2026-01-04") || strings.Contains(table, "2026-03-30") {
		t.Errorf("report shows a UTC date, a day early:\n%s", table)
	}
}
