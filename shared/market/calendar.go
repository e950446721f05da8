package market

import (
	"math"
	"time"
)

// tseHolidays lists the weekday dates (JST) on which the Tokyo Stock Exchange is closed for a
// Japanese national holiday. Weekends and the year-end break (Dec 31 – Jan 3) are closed by
// rule and need no entry. The table is deliberately small (2024–2027): extend it, year by
// year, from the JPX holiday calendar. Dates outside the table count as trading days unless a
// rule closes them.
var tseHolidays = map[string]string{
	"2024-01-08": "Coming of Age Day",
	"2024-02-12": "National Foundation Day (substitute)",
	"2024-02-23": "Emperor's Birthday",
	"2024-03-20": "Vernal Equinox Day",
	"2024-04-29": "Showa Day",
	"2024-05-03": "Constitution Memorial Day",
	"2024-05-06": "Children's Day (substitute)",
	"2024-07-15": "Marine Day",
	"2024-08-12": "Mountain Day (substitute)",
	"2024-09-16": "Respect for the Aged Day",
	"2024-09-23": "Autumnal Equinox Day (substitute)",
	"2024-10-14": "Sports Day",
	"2024-11-04": "Culture Day (substitute)",

	"2025-01-13": "Coming of Age Day",
	"2025-02-11": "National Foundation Day",
	"2025-02-24": "Emperor's Birthday (substitute)",
	"2025-03-20": "Vernal Equinox Day",
	"2025-04-29": "Showa Day",
	"2025-05-05": "Children's Day",
	"2025-05-06": "Greenery Day (substitute)",
	"2025-07-21": "Marine Day",
	"2025-08-11": "Mountain Day",
	"2025-09-15": "Respect for the Aged Day",
	"2025-09-23": "Autumnal Equinox Day",
	"2025-10-13": "Sports Day",
	"2025-11-03": "Culture Day",
	"2025-11-24": "Labour Thanksgiving Day (substitute)",

	"2026-01-12": "Coming of Age Day",
	"2026-02-11": "National Foundation Day",
	"2026-02-23": "Emperor's Birthday",
	"2026-03-20": "Vernal Equinox Day",
	"2026-04-29": "Showa Day",
	"2026-05-04": "Greenery Day",
	"2026-05-05": "Children's Day",
	"2026-05-06": "Constitution Memorial Day (substitute)",
	"2026-07-20": "Marine Day",
	"2026-08-11": "Mountain Day",
	"2026-09-21": "Respect for the Aged Day",
	"2026-09-22": "Citizens' Holiday",
	"2026-09-23": "Autumnal Equinox Day",
	"2026-10-12": "Sports Day",
	"2026-11-03": "Culture Day",
	"2026-11-23": "Labour Thanksgiving Day",

	"2027-01-11": "Coming of Age Day",
	"2027-02-11": "National Foundation Day",
	"2027-02-23": "Emperor's Birthday",
	"2027-03-22": "Vernal Equinox Day (substitute)",
	"2027-04-29": "Showa Day",
	"2027-05-03": "Constitution Memorial Day",
	"2027-05-04": "Greenery Day",
	"2027-05-05": "Children's Day",
	"2027-07-19": "Marine Day",
	"2027-08-11": "Mountain Day",
	"2027-09-20": "Respect for the Aged Day",
	"2027-09-23": "Autumnal Equinox Day",
	"2027-10-11": "Sports Day",
	"2027-11-03": "Culture Day",
	"2027-11-23": "Labour Thanksgiving Day",
}

// IsTradingDay reports whether the TSE trades on t's date in JST: a weekday outside the
// year-end break (Dec 31 – Jan 3) and not in the holiday table.
func IsTradingDay(t time.Time) bool {
	d := t.In(JST)
	switch d.Weekday() {
	case time.Saturday, time.Sunday:
		return false
	}
	m, day := d.Month(), d.Day()
	if (m == time.December && day == 31) || (m == time.January && day <= 3) {
		return false
	}
	_, holiday := tseHolidays[d.Format(time.DateOnly)]
	return !holiday
}

// afternoonCloseChange is the first day the TSE closed at 15:30 instead of 15:00 (arrowhead
// 4.0 extended the afternoon session by 30 minutes).
var afternoonCloseChange = time.Date(2024, 11, 5, 0, 0, 0, 0, JST)

// session is one continuous trading session of a day.
type session struct{ start, end time.Time }

// sessions returns the morning and afternoon sessions of date d (any instant on the JST
// date): 09:00–11:30 and 12:30–15:30, or 12:30–15:00 before 2024-11-05. No sessions on
// non-trading days.
func sessions(d time.Time) []session {
	if !IsTradingDay(d) {
		return nil
	}
	y, m, day := d.In(JST).Date()
	at := func(h, min int) time.Time { return time.Date(y, m, day, h, min, 0, 0, JST) }
	closeH, closeM := 15, 30
	if at(0, 0).Before(afternoonCloseChange) {
		closeM = 0
	}
	return []session{{at(9, 0), at(11, 30)}, {at(12, 30), at(closeH, closeM)}}
}

// InSession reports whether the TSE continuous session is open at instant t.
func InSession(t time.Time) bool {
	for _, s := range sessions(t) {
		if !t.Before(s.start) && t.Before(s.end) {
			return true
		}
	}
	return false
}

// tickBands is the TSE tick-size table for stocks outside the TOPIX 500 ("other issues"):
// a price up to limit moves in steps of tick.
var tickBands = []struct{ limit, tick float64 }{
	{3_000, 1},
	{5_000, 5},
	{30_000, 10},
	{50_000, 50},
	{300_000, 100},
	{500_000, 500},
	{3_000_000, 1_000},
	{5_000_000, 5_000},
	{30_000_000, 10_000},
	{50_000_000, 50_000},
}

// TickSize returns the TSE tick size for a price (non-TOPIX 500 table).
func TickSize(price float64) float64 {
	for _, b := range tickBands {
		if price <= b.limit {
			return b.tick
		}
	}
	return 100_000
}

// RoundToTick rounds price to the nearest valid TSE price, never below one tick.
func RoundToTick(price float64) float64 {
	tick := TickSize(price)
	return math.Max(tick, math.Round(price/tick)*tick)
}
