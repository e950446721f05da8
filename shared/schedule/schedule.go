// Package schedule says when scheduled workflows are due: five-field cron expressions
// (minute granularity, read in Asia/Tokyo unless they name a zone with CRON_TZ=) and
// market_hours schedules that fire only while the Tokyo Stock Exchange is in session on a
// business day, with Japanese market holidays from shared/market's table. It also keeps the
// tenants' schedules in Redis (Store).
//
// Due times are deterministic functions of the schedule alone, never of when someone asks:
// the scheduler dedups runs on (schedule id, due time), so two replicas, a repeated tick and
// a late tick all name the same due times.
package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
)

// Spec is a parsed schedule.
type Spec interface {
	// Next returns the first due time strictly after t, or the zero time if there is none
	// within the search horizon (about five years).
	Next(t time.Time) time.Time
}

// MarketHours is the keyword of the market-hours schedule: every minute (or every N minutes
// with "market_hours/Nm") while the TSE continuous session is open.
const MarketHours = "market_hours"

// MaxLen bounds an expression; real ones are a few dozen bytes.
const MaxLen = 200

// parser reads standard five-field cron plus descriptors such as @daily. There is no seconds
// field: a schedule fires at most once a minute, the PingSource's resolution.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// fieldNames name the five fields in error messages.
var fieldNames = []string{"minute", "hour", "day of month", "month", "day of week"}

// Parse reads a schedule expression. Every error is an httpx CodeInvalid error whose field
// is field (the request field the expression came from) and whose reason names the part of
// the expression at fault.
func Parse(field, expr string) (Spec, error) {
	bad := func(format string, args ...any) error {
		return httpx.Invalid("invalid schedule", httpx.FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
	}
	expr = strings.TrimSpace(expr)
	switch {
	case expr == "":
		return nil, bad("required: a five-field cron expression (e.g. \"30 9 * * 1-5\") or %q", MarketHours)
	case len(expr) > MaxLen:
		return nil, bad("at most %d bytes", MaxLen)
	}
	if rest, ok := strings.CutPrefix(expr, MarketHours); ok {
		return parseMarketHours(rest, bad)
	}
	body := expr
	if strings.HasPrefix(body, "CRON_TZ=") || strings.HasPrefix(body, "TZ=") {
		_, after, _ := strings.Cut(body, " ")
		body = strings.TrimSpace(after)
	}
	if strings.HasPrefix(body, "@every") {
		// A constant delay is counted from whenever it is asked, so its due times are not
		// stable across ticks and replicas; a cron step says the same thing deterministically.
		return nil, bad("@every is not supported: use a cron step such as \"*/5 * * * *\"")
	}
	if !strings.HasPrefix(body, "@") {
		switch n := len(strings.Fields(body)); {
		case n == 6:
			return nil, bad("6 fields: a seconds field is not allowed; schedules fire at most once a minute (minute hour day-of-month month day-of-week)")
		case n != 5:
			return nil, bad("%d fields: want 5 (minute hour day-of-month month day-of-week)", n)
		}
		for i, f := range strings.Fields(body) {
			if _, err := parser.Parse(fieldProbe(i, f)); err != nil {
				return nil, bad("%s field %q: %s", fieldNames[i], f, cronReason(err))
			}
		}
	}
	s, err := parser.Parse(expr)
	if err != nil {
		return nil, bad("%s", cronReason(err))
	}
	cs := cronSpec{s}
	// The horizon search finds impossible dates such as 30 February (a leap day fires
	// within four years and is found).
	if cs.Next(time.Date(2000, 1, 1, 0, 0, 0, 0, market.JST)).IsZero() {
		return nil, bad("never fires: the day of month and month never coincide (e.g. 30 February)")
	}
	return cs, nil
}

// fieldProbe builds an expression that is valid except for field i, so that a parse error
// can be pinned to that field.
func fieldProbe(i int, f string) string {
	parts := []string{"0", "0", "1", "1", "*"}
	parts[i] = f
	return strings.Join(parts, " ")
}

// cronReason strips the library's wrapping from a parse error.
func cronReason(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}

// cronSpec reads a cron expression in JST unless it carries its own zone.
type cronSpec struct{ s cron.Schedule }

func (c cronSpec) Next(t time.Time) time.Time {
	n := c.s.Next(t.In(market.JST))
	if n.IsZero() {
		return n
	}
	return n.UTC()
}

func parseMarketHours(rest string, bad func(string, ...any) error) (Spec, error) {
	every := 1
	if rest != "" {
		step, ok := strings.CutPrefix(rest, "/")
		n, err := strconv.Atoi(strings.TrimSuffix(step, "m"))
		if !ok || !strings.HasSuffix(step, "m") || err != nil || n < 1 || n > 330 {
			return nil, bad("%s takes an optional step in minutes, e.g. %q (1 to 330)", MarketHours, MarketHours+"/15m")
		}
		every = n
	}
	return marketHours{every: every}, nil
}

// marketHours fires at the start of every minute of the TSE continuous session whose
// minute-of-day (JST) is a multiple of every.
type marketHours struct{ every int }

// maxSearchDays bounds Next's search; the longest TSE closure (year end plus a weekend, or
// Golden Week) is about a week.
const maxSearchDays = 31

func (m marketHours) Next(t time.Time) time.Time {
	cur := t.In(market.JST).Truncate(time.Minute).Add(time.Minute)
	limit := cur.AddDate(0, 0, maxSearchDays)
	for cur.Before(limit) {
		if !market.IsTradingDay(cur) {
			y, mo, d := cur.Date()
			cur = time.Date(y, mo, d+1, 0, 0, 0, 0, market.JST)
			continue
		}
		if market.InSession(cur) && (cur.Hour()*60+cur.Minute())%m.every == 0 {
			return cur.UTC()
		}
		cur = cur.Add(time.Minute)
	}
	return time.Time{}
}

// ErrTooMany is returned by Due when a window holds more due times than asked for.
var ErrTooMany = errors.New("schedule: more due times than the limit")

// Due returns the due times d of s with from < d <= to, oldest first, at most max of them;
// with more it returns the newest max and ErrTooMany.
func Due(s Spec, from, to time.Time, max int) ([]time.Time, error) {
	var out []time.Time
	var err error
	for d := s.Next(from); !d.IsZero() && !d.After(to); d = s.Next(d) {
		out = append(out, d)
		if len(out) > max {
			out = out[1:]
			err = ErrTooMany
		}
	}
	return out, err
}
