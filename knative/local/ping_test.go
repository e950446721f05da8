package local

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/functions"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// fakeClock drives a pinger: after(d) moves the clock d (plus an injected jump) at once, and
// blocks for ever once the clock passes stopAt.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	stopAt time.Time
	calls  int
	jumps  map[int]time.Duration // extra time on the n-th call: a stalled process
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) after(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.t = c.t.Add(max(d, 0) + c.jumps[c.calls])
	if c.t.After(c.stopAt) {
		return nil
	}
	ch := make(chan time.Time, 1)
	ch <- c.t
	return ch
}

var jst = time.FixedZone("JST", 9*3600)

func tickSchedule(cron string) functions.Schedule {
	return functions.Schedule{Name: "test-tick", Cron: cron, Timezone: "Asia/Tokyo", Type: typeTick, Data: `{"schedule":"test-tick"}`}
}

// runPinger runs pg until its clock stops, then waits for want sends.
func runPinger(t *testing.T, pg *pinger, sent func() int, want int) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); pg.run(ctx) }()
	eventuallyTrue(t, strconv.Itoa(want)+" ticks", func() bool { return sent() >= want })
	cancel()
	<-done
}

// TestPingTicksOncePerDueTimeThroughTheBroker: five minutes of a "* * * * *" schedule on a
// fake clock reach the subscriber through the real Broker as five ticks, one per minute,
// each with the id, source and time of its due time.
func TestPingTicksOncePerDueTimeThroughTheBroker(t *testing.T) {
	t.Parallel()
	f := newBrokerFixture(t, BrokerOptions{Retry: 1, BackoffDelay: 10 * time.Millisecond})
	b, _ := f.start(t)
	send, err := brokerSender(b.url)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 5, 9, 0, 30, 0, jst)
	clock := &fakeClock{t: start, stopAt: start.Add(5 * time.Minute)}
	pg, err := newPinger(tickSchedule("* * * * *"), ns, slog.New(slog.DiscardHandler), send)
	if err != nil {
		t.Fatal(err)
	}
	pg.now, pg.after = clock.now, clock.after
	runPinger(t, pg, func() int { return len(f.subs.deliveries("sub-tick")) }, 5)
	eventuallyTrue(t, "every tick delivered and acked", func() bool { return pending(t, f.rdb, b) == 0 })

	got := f.subs.deliveries("sub-tick")
	if len(got) != 5 {
		t.Fatalf("%d ticks delivered, want 5: %v", len(got), ids(got))
	}
	seen := map[string]bool{}
	for _, r := range got {
		seen[r.e.ID()] = true
		if r.e.Type() != typeTick || r.e.Source() != "/apis/v1/namespaces/day-trade/pingsources/test-tick" {
			t.Errorf("tick %s: type %s source %s", r.e.ID(), r.e.Type(), r.e.Source())
		}
		if string(r.e.Data()) != `{"schedule":"test-tick"}` {
			t.Errorf("tick %s data %s", r.e.ID(), r.e.Data())
		}
	}
	for m := 1; m <= 5; m++ {
		due := time.Date(2026, 1, 5, 9, m, 0, 0, jst)
		id := "test-tick-" + strconv.FormatInt(due.Unix(), 10)
		if !seen[id] {
			t.Errorf("no tick %s for %s; got %v", id, due, ids(got))
		}
	}
	for _, r := range got {
		if r.e.Time().Second() != 0 || r.e.Time().Before(start) {
			t.Errorf("tick %s time %s is not a due minute", r.e.ID(), r.e.Time())
		}
	}
}

// TestPingSkipsDueTimesMissedInAStall: like a PingSource, a pinger that was stalled for
// minutes sends the latest due time once, not a burst of the missed ones.
func TestPingSkipsDueTimesMissedInAStall(t *testing.T) {
	t.Parallel()
	var (
		mu   sync.Mutex
		sent []cloudevents.Event
	)
	send := func(_ context.Context, e cloudevents.Event) error {
		mu.Lock()
		defer mu.Unlock()
		sent = append(sent, e)
		return nil
	}
	start := time.Date(2026, 1, 5, 9, 0, 30, 0, jst)
	// The second wait oversleeps by 10 minutes: due 09:02 ... 09:11 pass unseen.
	clock := &fakeClock{t: start, stopAt: time.Date(2026, 1, 5, 9, 13, 0, 0, jst), jumps: map[int]time.Duration{2: 10 * time.Minute}}
	pg, err := newPinger(tickSchedule("* * * * *"), ns, slog.New(slog.DiscardHandler), send)
	if err != nil {
		t.Fatal(err)
	}
	pg.now, pg.after = clock.now, clock.after
	runPinger(t, pg, func() int { mu.Lock(); defer mu.Unlock(); return len(sent) }, 3)
	var got []string
	for _, e := range sent {
		got = append(got, e.Time().In(jst).Format("15:04"))
	}
	want := []string{"09:01", "09:12", "09:13"}
	if !slices.Equal(got, want) {
		t.Errorf("ticks at %v, want %v", got, want)
	}
}

// TestPingRetriesASendWithTheSameID: a tick the Broker refused is sent again with the same id
// (so a receiver that got it anyway drops the copy), and only until the next due time.
func TestPingRetriesASendWithTheSameID(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		attempts []string
	)
	send := func(_ context.Context, e cloudevents.Event) error {
		mu.Lock()
		defer mu.Unlock()
		attempts = append(attempts, e.ID())
		if len(attempts) <= 2 {
			return errors.New("broker down")
		}
		return nil
	}
	start := time.Date(2026, 1, 5, 9, 0, 59, 0, jst)
	clock := &fakeClock{t: start, stopAt: start.Add(30 * time.Second)}
	pg, err := newPinger(tickSchedule("* * * * *"), ns, slog.New(slog.DiscardHandler), send)
	if err != nil {
		t.Fatal(err)
	}
	pg.now, pg.after = clock.now, clock.after
	runPinger(t, pg, func() int { mu.Lock(); defer mu.Unlock(); return len(attempts) }, 3)
	want := "test-tick-" + strconv.FormatInt(time.Date(2026, 1, 5, 9, 1, 0, 0, jst).Unix(), 10)
	for i, id := range attempts {
		if id != want {
			t.Errorf("attempt %d sent %s, want %s", i+1, id, want)
		}
	}
}

// TestPingTickSentTwiceIsOneEffect: two pingers (a platform restarted within the minute)
// send the same due time; events.Receiver, which every subscriber mounts, runs the handler
// once.
func TestPingTickSentTwiceIsOneEffect(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	recv, err := events.NewReceiver(rdb, store.NewKeys("exec"), events.ReceiverOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu  sync.Mutex
		ran int
	)
	recv.Handle(typeTick, func(context.Context, cloudevents.Event) error { mu.Lock(); ran++; mu.Unlock(); return nil })
	httpSrv := newHTTPServer(t, recv)
	send, err := brokerSender(httpSrv)
	if err != nil {
		t.Fatal(err)
	}
	due := time.Date(2026, 1, 5, 9, 1, 0, 0, jst)
	for range 2 {
		pg, err := newPinger(tickSchedule("* * * * *"), ns, slog.New(slog.DiscardHandler), send)
		if err != nil {
			t.Fatal(err)
		}
		pg.fire(t.Context(), due, due.Add(time.Minute))
	}
	mu.Lock()
	defer mu.Unlock()
	if ran != 1 {
		t.Errorf("handler ran %d times for one due time, want 1", ran)
	}
}

// TestPingEverySecondOnTheRealClock: the test-only "@every 1s" schedule on the real clock
// sends ticks for consecutive seconds, none twice.
func TestPingEverySecondOnTheRealClock(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for three seconds of ticks")
	}
	f := newBrokerFixture(t, BrokerOptions{Retry: 1, BackoffDelay: 10 * time.Millisecond})
	b, _ := f.start(t)
	send, err := brokerSender(b.url)
	if err != nil {
		t.Fatal(err)
	}
	pg, err := newPinger(tickSchedule("@every 1s"), ns, slog.New(slog.DiscardHandler), send)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { defer close(done); pg.run(ctx) }()
	eventuallyTrue(t, "three ticks", func() bool { return len(f.subs.deliveries("sub-tick")) >= 3 })
	cancel()
	<-done
	got := f.subs.deliveries("sub-tick")
	seen := map[string]bool{}
	for i, r := range got {
		if seen[r.e.ID()] {
			t.Errorf("tick %s delivered twice", r.e.ID())
		}
		seen[r.e.ID()] = true
		if i > 0 {
			if d := r.e.Time().Sub(got[i-1].e.Time()); d != time.Second {
				t.Errorf("ticks %s and %s are %s apart, want one due time per second", got[i-1].e.ID(), r.e.ID(), d)
			}
		}
	}
}

func TestPingScheduleIsChecked(t *testing.T) {
	for name, s := range map[string]functions.Schedule{
		"bad cron": {Name: "x", Cron: "every minute", Type: typeTick},
		"bad zone": {Name: "x", Cron: "* * * * *", Timezone: "Mars/Olympus", Type: typeTick},
		"bad data": {Name: "x", Cron: "* * * * *", Type: typeTick, Data: "{"},
	} {
		if _, err := newPinger(s, ns, slog.New(slog.DiscardHandler), nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The catalog's own schedules must parse here as they do for the PingSources.
	for _, s := range functions.Schedules() {
		if _, err := parseSchedule(s); err != nil {
			t.Error(err)
		}
	}
}

// newHTTPServer serves recv like a subscriber function mounts it, and returns its URL.
func newHTTPServer(t *testing.T, recv *events.Receiver) string {
	t.Helper()
	srv := httptest.NewServer(recv.HTTPHandler())
	t.Cleanup(srv.Close)
	return srv.URL
}
