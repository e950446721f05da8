package schedule

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/market"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

func jst(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, market.JST)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ expr, want string }{
		"empty":            {"", "required"},
		"30 February":      {"0 9 30 2 *", "never fires"},
		"31 April":         {"0 9 31 4 *", "never fires"},
		"seconds field":    {"* * * * * *", "seconds field is not allowed"},
		"seconds, 6 field": {"*/1 0 9 * * 1-5", "seconds field"},
		"every":            {"@every 1s", "@every is not supported"},
		"four fields":      {"* * * *", "4 fields"},
		"bad minute":       {"61 * * * *", "minute field"},
		"bad hour":         {"0 25 * * *", "hour field"},
		"bad dom":          {"0 9 0 * *", "day of month field"},
		"bad month":        {"0 9 1 13 *", "month field"},
		"bad dow":          {"0 9 * * 8", "day of week field"},
		"bad zone":         {"CRON_TZ=Mars/Olympus 0 9 * * *", "Mars/Olympus"},
		"market step":      {"market_hours/0m", "market_hours"},
		"market junk":      {"market_hoursx", "market_hours"},
		"too long":         {strings.Repeat("1,", 150) + "1 * * * *", "at most"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse("schedule", tc.expr)
			e := httpx.AsError(err)
			if err == nil || e.Code != httpx.CodeInvalid || len(e.Fields) != 1 || e.Fields[0].Field != "schedule" {
				t.Fatalf("Parse(%q) = %v (%+v), want an invalid error on field schedule", tc.expr, err, e)
			}
			if !strings.Contains(e.Fields[0].Reason, tc.want) {
				t.Errorf("reason %q lacks %q", e.Fields[0].Reason, tc.want)
			}
		})
	}
}

func TestCronNext(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		expr    string
		after   time.Time
		wantJST string
	}{
		"weekday open, read in JST": {"30 9 * * 1-5", jst("2026-03-06 10:00"), "2026-03-09 09:30"}, // Fri → Mon
		"step":                      {"*/15 * * * *", jst("2026-03-06 10:01"), "2026-03-06 10:15"},
		"leap day fires":            {"0 0 29 2 *", jst("2026-03-01 00:00"), "2028-02-29 00:00"},
		"descriptor":                {"@daily", jst("2026-03-06 10:00"), "2026-03-07 00:00"},
		"own zone":                  {"CRON_TZ=UTC 0 0 * * *", jst("2026-03-06 10:00"), "2026-03-07 09:00"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, err := Parse("schedule", tc.expr)
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Next(tc.after); !got.Equal(jst(tc.wantJST)) {
				t.Errorf("Next = %s, want %s JST", got.In(market.JST), tc.wantJST)
			}
		})
	}
}

// TestMarketHours: a market_hours schedule is due at a minute only inside a TSE session on a
// business day. 2026-03-20 (Fri) is the Vernal Equinox holiday, 2026-03-21/22 a weekend.
func TestMarketHours(t *testing.T) {
	t.Parallel()
	every, err := Parse("schedule", "market_hours")
	if err != nil {
		t.Fatal(err)
	}
	quarter, err := Parse("schedule", "market_hours/15m")
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		spec    Spec
		after   string // JST
		wantJST string
	}{
		"before the open":           {every, "2026-03-19 08:30", "2026-03-19 09:00"},
		"in the morning session":    {every, "2026-03-19 10:00", "2026-03-19 10:01"},
		"last morning minute":       {every, "2026-03-19 11:28", "2026-03-19 11:29"},
		"lunch break skipped":       {every, "2026-03-19 11:29", "2026-03-19 12:30"},
		"during lunch":              {every, "2026-03-19 12:00", "2026-03-19 12:30"},
		"last afternoon minute":     {every, "2026-03-19 15:28", "2026-03-19 15:29"},
		"close, holiday, weekend":   {every, "2026-03-19 15:29", "2026-03-23 09:00"},
		"on the holiday":            {every, "2026-03-20 10:00", "2026-03-23 09:00"},
		"saturday":                  {every, "2026-03-21 10:00", "2026-03-23 09:00"},
		"year-end break":            {every, "2025-12-30 15:30", "2026-01-05 09:00"},
		"before 2024-11-05 15:00":   {every, "2024-11-01 14:58", "2024-11-01 14:59"}, // close was 15:00
		"old close":                 {every, "2024-11-01 14:59", "2024-11-05 09:00"}, // 11-04 is a holiday
		"15m step":                  {quarter, "2026-03-19 09:01", "2026-03-19 09:15"},
		"15m step over lunch":       {quarter, "2026-03-19 11:15", "2026-03-19 12:30"},
		"15m step, afternoon close": {quarter, "2026-03-19 15:15", "2026-03-23 09:00"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := tc.spec.Next(jst(tc.after))
			if !got.Equal(jst(tc.wantJST)) {
				t.Errorf("Next(%s) = %s, want %s JST", tc.after, got.In(market.JST).Format("2006-01-02 15:04"), tc.wantJST)
			}
			if !market.InSession(got) || !market.IsTradingDay(got) {
				t.Errorf("due time %s outside a session", got.In(market.JST))
			}
		})
	}
}

func TestDue(t *testing.T) {
	t.Parallel()
	s, err := Parse("schedule", "*/5 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	got, err := Due(s, jst("2026-03-19 10:00"), jst("2026-03-19 10:20"), 10)
	if err != nil || len(got) != 4 || !got[0].Equal(jst("2026-03-19 10:05")) || !got[3].Equal(jst("2026-03-19 10:20")) {
		t.Fatalf("Due = %v, %v; want 10:05..10:20 (from exclusive, to inclusive)", got, err)
	}
	got, err = Due(s, jst("2026-03-19 10:00"), jst("2026-03-19 11:00"), 2)
	if err != ErrTooMany || len(got) != 2 || !got[1].Equal(jst("2026-03-19 11:00")) {
		t.Fatalf("bounded Due = %v, %v; want the newest 2 and ErrTooMany", got, err)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"* * * * *", "0 9 30 2 *", "market_hours/15m", "CRON_TZ=UTC 0 0 * * *", "@daily", "* * * * * *", "1-5/2 9-15 L * MON"} {
		f.Add(s)
	}
	from := jst("2026-03-19 10:00")
	f.Fuzz(func(t *testing.T, expr string) {
		s, err := Parse("schedule", expr)
		if err != nil {
			if e := httpx.AsError(err); e.Code != httpx.CodeInvalid {
				t.Fatalf("Parse(%q) error code %s", expr, e.Code)
			}
			return
		}
		n := s.Next(from)
		if n.IsZero() {
			t.Fatalf("accepted %q never fires", expr)
		}
		if !n.After(from) || n.Sub(n.Truncate(time.Minute)) != 0 {
			t.Fatalf("Next(%q) = %s: not a later whole minute", expr, n)
		}
	})
}

func TestStore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	st := NewStore(rdb, store.NewKeys("exec"), 2, nil)

	a, err := st.Create(ctx, Schedule{ID: NewID(), Tenant: "acme", Workflow: "daily-predict", Expr: "0 9 * * 1-5", Config: []byte(`{"count":3}`)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, Schedule{ID: NewID(), Tenant: "acme", Workflow: "paper-trade", Expr: MarketHours}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Create(ctx, Schedule{ID: NewID(), Tenant: "acme", Workflow: "paper-trade", Expr: MarketHours}); httpx.ErrorCode(err) != httpx.CodeUnprocessable {
		t.Errorf("third schedule over a limit of 2: %v", err)
	}
	b, err := st.Create(ctx, Schedule{ID: NewID(), Tenant: "other", Workflow: "daily-predict", Expr: "* * * * *"})
	if err != nil {
		t.Fatal(err)
	}
	list, err := st.List(ctx, "acme")
	if err != nil || len(list) != 2 || list[0].ID != a.ID || string(list[0].Config) != `{"count":3}` {
		t.Fatalf("List(acme) = %+v, %v", list, err)
	}
	if _, err := st.Get(ctx, "acme", b.ID); err != ErrNotFound {
		t.Errorf("another tenant's schedule: %v", err)
	}
	if _, err := st.Cancel(ctx, "acme", b.ID); err != ErrNotFound {
		t.Errorf("cancel another tenant's schedule: %v", err)
	}
	c, err := st.Cancel(ctx, "acme", a.ID)
	if err != nil || c.Status != StatusCancelled || c.CancelledAt.IsZero() || string(c.Config) != `{"count":3}` {
		t.Fatalf("Cancel = %+v, %v", c, err)
	}
	if again, err := st.Cancel(ctx, "acme", a.ID); err != nil || !again.CancelledAt.Equal(c.CancelledAt) {
		t.Errorf("second cancel = %+v, %v", again, err)
	}
	active, err := st.Active(ctx)
	if err != nil || len(active) != 2 {
		t.Fatalf("Active = %d, %v; want 2", len(active), err)
	}
	for _, sc := range active {
		if sc.ID == a.ID {
			t.Error("a cancelled schedule is still active")
		}
	}
	srv.Kill()
	if _, err := st.List(ctx, "acme"); httpx.ErrorCode(err) != httpx.CodeUnavailable {
		t.Errorf("List with Redis down: %v", err)
	}
}
