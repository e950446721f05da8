package market

import (
	"math"
	"testing"
	"time"
)

func TestIsTradingDay(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		at   time.Time
		want bool
	}{
		"ordinary Wednesday":          {jst(2024, 6, 12, 10, 0), true},
		"Saturday":                    {jst(2024, 6, 15, 10, 0), false},
		"Sunday":                      {jst(2024, 6, 16, 10, 0), false},
		"Dec 31 on a weekday":         {jst(2024, 12, 31, 10, 0), false},
		"Jan 2":                       {jst(2025, 1, 2, 10, 0), false},
		"Jan 3":                       {jst(2025, 1, 3, 10, 0), false},
		"Jan 6 first session of 2025": {jst(2025, 1, 6, 10, 0), true},
		"Coming of Age Day 2024":      {jst(2024, 1, 8, 10, 0), false},
		"Golden Week substitute 2024": {jst(2024, 5, 6, 10, 0), false},
		"Citizens' Holiday 2026":      {jst(2026, 9, 22, 10, 0), false},
		"late UTC evening is next JST day": {
			time.Date(2024, 1, 7, 16, 0, 0, 0, time.UTC), // 2024-01-08 01:00 JST, a holiday
			false,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := IsTradingDay(tc.at); got != tc.want {
				t.Errorf("IsTradingDay(%v) = %v, want %v", tc.at, got, tc.want)
			}
		})
	}
}

// A weekend date in the table would be a typo for another date.
func TestHolidayTableHasOnlyWeekdays(t *testing.T) {
	t.Parallel()
	for date, name := range tseHolidays {
		d, err := time.ParseInLocation(time.DateOnly, date, JST)
		if err != nil {
			t.Fatalf("%s (%s): %v", date, name, err)
		}
		if d.Weekday() == time.Saturday || d.Weekday() == time.Sunday {
			t.Errorf("%s (%s) falls on a %s", date, name, d.Weekday())
		}
	}
}

func TestInSession(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		at   time.Time
		want bool
	}{
		"before the open":                 {jst(2024, 12, 4, 8, 59), false},
		"the open":                        {jst(2024, 12, 4, 9, 0), true},
		"last morning minute":             {jst(2024, 12, 4, 11, 29), true},
		"lunch":                           {jst(2024, 12, 4, 11, 30), false},
		"afternoon open":                  {jst(2024, 12, 4, 12, 30), true},
		"15:10 after the 2024-11-05 move": {jst(2024, 12, 4, 15, 10), true},
		"15:10 before it":                 {jst(2024, 11, 1, 15, 10), false},
		"the close":                       {jst(2024, 12, 4, 15, 30), false},
		"Saturday morning":                {jst(2024, 12, 7, 10, 0), false},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := InSession(tc.at); got != tc.want {
				t.Errorf("InSession(%v) = %v, want %v", tc.at, got, tc.want)
			}
		})
	}
}

func TestTickSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		price, tick, rounded float64
	}{
		{0.4, 1, 1}, // never below one tick
		{999.4, 1, 999},
		{3000, 1, 3000},
		{3000.4, 5, 3000},
		{3003, 5, 3005},
		{4999, 5, 5000},
		{5001, 10, 5000},
		{29996, 10, 30000},
		{30020, 50, 30000},
		{30030, 50, 30050},
		{50049, 100, 50000},
		{300_250, 500, 300_500},
		{2_999_400, 1_000, 2_999_000},
		{4_000_100, 5_000, 4_000_000},
		{29_996_000, 10_000, 30_000_000},
		{40_020_000, 50_000, 40_000_000},
		{60_040_000, 100_000, 60_000_000},
	}
	for _, tc := range tests {
		if got := TickSize(tc.price); got != tc.tick {
			t.Errorf("TickSize(%v) = %v, want %v", tc.price, got, tc.tick)
		}
		if got := RoundToTick(tc.price); got != tc.rounded {
			t.Errorf("RoundToTick(%v) = %v, want %v", tc.price, got, tc.rounded)
		}
	}
}

// The synthetic market folds minute bars in log space and relies on rounding never
// reversing the order of two prices, even across a band edge.
func TestRoundToTickIsMonotoneAndOnGrid(t *testing.T) {
	t.Parallel()
	prev := 0.0
	for p := 1.0; p < 120_000; p *= 1.0007 {
		r := RoundToTick(p)
		if r < prev {
			t.Fatalf("RoundToTick(%v) = %v < %v for a smaller price", p, r, prev)
		}
		if math.Mod(r, TickSize(r)) != 0 {
			t.Fatalf("RoundToTick(%v) = %v is off the %v grid", p, r, TickSize(r))
		}
		prev = r
	}
}
