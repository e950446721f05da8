package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

type fixture struct {
	redis *redistest.Server
	rdb   *redis.Client
	store *jobs.Store
}

func newFixture(t *testing.T, opts jobs.Options) *fixture {
	t.Helper()
	srv := redistest.Start(t)
	rdb, err := store.Open(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rdb.Close() })
	return &fixture{redis: srv, rdb: rdb, store: jobs.NewStore(rdb, opts)}
}

func mustCreate(t *testing.T, s *jobs.Store, tenant string) jobs.Job {
	t.Helper()
	j, err := s.Create(context.Background(), jobs.Job{Kind: "ml.batch", Tenant: tenant, Total: 10})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// mustOK returns a function that unwraps a store call's result, failing t on error.
func mustOK(t *testing.T) func(jobs.Job, error) jobs.Job {
	return func(j jobs.Job, err error) jobs.Job {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
}

// fixedClock returns increasing instants so that timestamps are deterministic.
func fixedClock() func() time.Time {
	var mu sync.Mutex
	t := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		t = t.Add(time.Second)
		return t
	}
}

func TestLifecycle(t *testing.T) {
	ok := mustOK(t)
	f := newFixture(t, jobs.Options{Now: fixedClock()})
	ctx := context.Background()
	s := f.store

	j := mustCreate(t, s, "acme")
	if j.Status != jobs.StatusQueued || j.Version != 1 || j.CreatedAt.IsZero() || !j.StartedAt.IsZero() || j.ID == "" {
		t.Fatalf("created %+v", j)
	}
	j = ok(s.Start(ctx, "acme", j.ID))
	if j.Status != jobs.StatusRunning || j.StartedAt.IsZero() || !j.StartedAt.After(j.CreatedAt) {
		t.Fatalf("started %+v", j)
	}
	j = ok(s.Progress(ctx, "acme", j.ID, 4, 10))
	if j.Done != 4 || j.Total != 10 {
		t.Fatalf("progress %+v", j)
	}
	j = ok(s.Succeed(ctx, "acme", j.ID, "ml:batch:result:1", json.RawMessage(`{"predicted":10}`)))
	if j.Status != jobs.StatusSucceeded || j.FinishedAt.IsZero() || j.Done != 10 ||
		j.ResultRef != "ml:batch:result:1" || string(j.Result) != `{"predicted":10}` || j.Version != 4 {
		t.Fatalf("succeeded %+v", j)
	}
	got := ok(s.Get(ctx, "acme", j.ID))
	if a, b := mustJSON(t, got), mustJSON(t, j); a != b {
		t.Fatalf("Get = %s, want %s", a, b)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFailAndCancel(t *testing.T) {
	ok := mustOK(t)
	f := newFixture(t, jobs.Options{})
	ctx := context.Background()
	s := f.store

	failed := mustCreate(t, s, "acme")
	ok(s.Start(ctx, "acme", failed.ID))
	failed = ok(s.Fail(ctx, "acme", failed.ID, "provider unavailable"))
	if failed.Status != jobs.StatusFailed || failed.Error != "provider unavailable" || failed.FinishedAt.IsZero() {
		t.Fatalf("failed %+v", failed)
	}
	queued := mustCreate(t, s, "acme")
	if j := ok(s.Cancel(ctx, "acme", queued.ID)); j.Status != jobs.StatusCancelled {
		t.Fatalf("cancel queued: %+v", j)
	}
	running := mustCreate(t, s, "acme")
	ok(s.Start(ctx, "acme", running.ID))
	if j := ok(s.Cancel(ctx, "acme", running.ID)); j.Status != jobs.StatusCancelled {
		t.Fatalf("cancel running: %+v", j)
	}
}

func TestInvalidTransitionsAreConflicts(t *testing.T) {
	f := newFixture(t, jobs.Options{})
	ctx := context.Background()
	s := f.store
	type op func(id string) (jobs.Job, error)
	start := func(id string) (jobs.Job, error) { return s.Start(ctx, "acme", id) }
	succeed := func(id string) (jobs.Job, error) { return s.Succeed(ctx, "acme", id, "", nil) }
	fail := func(id string) (jobs.Job, error) { return s.Fail(ctx, "acme", id, "x") }
	cancel := func(id string) (jobs.Job, error) { return s.Cancel(ctx, "acme", id) }
	progress := func(id string) (jobs.Job, error) { return s.Progress(ctx, "acme", id, 1, 10) }
	cases := map[string]struct {
		setup []op
		try   op
	}{
		"succeed queued":    {nil, succeed},
		"fail queued":       {nil, fail},
		"progress queued":   {nil, progress},
		"start running":     {[]op{start}, start},
		"start succeeded":   {[]op{start, succeed}, start},
		"fail succeeded":    {[]op{start, succeed}, fail},
		"cancel succeeded":  {[]op{start, succeed}, cancel},
		"succeed failed":    {[]op{start, fail}, succeed},
		"progress failed":   {[]op{start, fail}, progress},
		"start cancelled":   {[]op{cancel}, start},
		"cancel cancelled":  {[]op{cancel}, cancel},
		"succeed cancelled": {[]op{start, cancel}, succeed},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ok := mustOK(t)
			j := mustCreate(t, s, "acme")
			for _, o := range tc.setup {
				ok(o(j.ID))
			}
			before := ok(s.Get(ctx, "acme", j.ID))
			_, err := tc.try(j.ID)
			if httpx.ErrorCode(err) != httpx.CodeConflict || !errors.Is(err, jobs.ErrInvalidTransition) {
				t.Fatalf("err = %v, want conflict", err)
			}
			if after := ok(s.Get(ctx, "acme", j.ID)); after.Version != before.Version || after.Status != before.Status {
				t.Fatalf("rejected change altered the job: %+v -> %+v", before, after)
			}
		})
	}
}

func TestCanTransition(t *testing.T) {
	all := []jobs.Status{jobs.StatusQueued, jobs.StatusRunning, jobs.StatusSucceeded, jobs.StatusFailed, jobs.StatusCancelled}
	allowed := map[[2]jobs.Status]bool{
		{jobs.StatusQueued, jobs.StatusRunning}:    true,
		{jobs.StatusQueued, jobs.StatusCancelled}:  true,
		{jobs.StatusRunning, jobs.StatusSucceeded}: true,
		{jobs.StatusRunning, jobs.StatusFailed}:    true,
		{jobs.StatusRunning, jobs.StatusCancelled}: true,
	}
	for _, from := range all {
		for _, to := range all {
			if got := jobs.CanTransition(from, to); got != allowed[[2]jobs.Status{from, to}] {
				t.Errorf("CanTransition(%s, %s) = %v", from, to, got)
			}
		}
	}
}

func TestCreateValidatesAndRejectsDuplicates(t *testing.T) {
	ok := mustOK(t)
	f := newFixture(t, jobs.Options{})
	ctx := context.Background()
	for name, j := range map[string]jobs.Job{
		"no kind":        {Tenant: "acme"},
		"no tenant":      {Kind: "k"},
		"bad id":         {ID: "a:b", Kind: "k", Tenant: "acme"},
		"negative total": {Kind: "k", Tenant: "acme", Total: -1},
	} {
		if _, err := f.store.Create(ctx, j); httpx.ErrorCode(err) != httpx.CodeInvalid {
			t.Errorf("%s: err = %v, want invalid", name, err)
		}
	}
	j := ok(f.store.Create(ctx, jobs.Job{ID: "job-1", Kind: "k", Tenant: "acme"}))
	if j.ID != "job-1" {
		t.Fatalf("id %q", j.ID)
	}
	if _, err := f.store.Create(ctx, jobs.Job{ID: "job-1", Kind: "k", Tenant: "other"}); httpx.ErrorCode(err) != httpx.CodeConflict {
		t.Fatalf("duplicate id: err = %v, want conflict", err)
	}
}

func TestProgressIsMonotonicUnderConcurrency(t *testing.T) {
	ok := mustOK(t)
	f := newFixture(t, jobs.Options{})
	ctx := context.Background()
	j := mustCreate(t, f.store, "acme")
	ok(f.store.Start(ctx, "acme", j.ID))

	const workers, updates = 8, 50
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			// Each worker reports its own sequence, interleaved with the others, some stale.
			for i := range updates {
				done := int64((i*workers + w) % (workers * updates))
				if _, err := f.store.Progress(ctx, "acme", j.ID, done, 1000); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := ok(f.store.Get(ctx, "acme", j.ID))
	if want := int64(workers*updates - 1); got.Done != want || got.Total != 1000 {
		t.Fatalf("done/total = %d/%d, want %d/1000", got.Done, got.Total, want)
	}
	// A stale update changes nothing, not even the version.
	stale := ok(f.store.Progress(ctx, "acme", j.ID, 3, 10))
	if stale.Done != got.Done || stale.Total != 1000 || stale.Version != got.Version {
		t.Fatalf("stale update moved the job: %+v -> %+v", got, stale)
	}
	if _, err := f.store.Progress(ctx, "acme", j.ID, 11, 10); httpx.ErrorCode(err) != httpx.CodeInvalid {
		t.Fatalf("done > total: err = %v, want invalid", err)
	}
}

func TestTenantIsolation(t *testing.T) {
	ok := mustOK(t)
	f := newFixture(t, jobs.Options{})
	ctx := context.Background()
	j := mustCreate(t, f.store, "acme")
	ops := map[string]func() error{
		"get":      func() error { _, err := f.store.Get(ctx, "evil", j.ID); return err },
		"start":    func() error { _, err := f.store.Start(ctx, "evil", j.ID); return err },
		"cancel":   func() error { _, err := f.store.Cancel(ctx, "evil", j.ID); return err },
		"progress": func() error { _, err := f.store.Progress(ctx, "evil", j.ID, 1, 2); return err },
		"watch":    func() error { _, err := f.store.Watch(ctx, "evil", j.ID); return err },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			err := op()
			_, missing := f.store.Get(ctx, "evil", "no-such-job")
			if !errors.Is(err, jobs.ErrNotFound) || err.Error() != missing.Error() {
				t.Fatalf("err = %v, want the same error as a missing job (%v)", err, missing)
			}
		})
	}
	if got := ok(f.store.Get(ctx, "acme", j.ID)); got.Status != jobs.StatusQueued || got.Version != 1 {
		t.Fatalf("another tenant changed the job: %+v", got)
	}
}

func TestTTLSetOnlyAfterTerminalState(t *testing.T) {
	ok := mustOK(t)
	const ttl = 48 * time.Hour
	f := newFixture(t, jobs.Options{ResultTTL: ttl})
	ctx := context.Background()
	j := mustCreate(t, f.store, "acme")
	key := store.NewKeys("jobs").Key("job", j.ID)
	pttl := func() time.Duration {
		d, err := f.rdb.PTTL(ctx, key).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	ok(f.store.Start(ctx, "acme", j.ID))
	ok(f.store.Progress(ctx, "acme", j.ID, 1, 10))
	if d := pttl(); d != -1 { // -1: the key exists without expiry
		t.Fatalf("running job has TTL %v, want none", d)
	}
	ok(f.store.Succeed(ctx, "acme", j.ID, "", nil))
	if d := pttl(); d <= 0 || d > ttl {
		t.Fatalf("finished job TTL %v, want in (0, %v]", d, ttl)
	}
}

func TestWatchSeesEveryTransitionAndCloses(t *testing.T) {
	ok := mustOK(t)
	f := newFixture(t, jobs.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second) // against hangs only
	defer cancel()
	s := f.store
	j := mustCreate(t, s, "acme")
	ch, err := s.Watch(ctx, "acme", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Changes are made without waiting for the watcher, as a fast worker would.
	ok(s.Start(ctx, "acme", j.ID))
	for i := int64(1); i <= 3; i++ {
		ok(s.Progress(ctx, "acme", j.ID, i, 10))
	}
	ok(s.Progress(ctx, "acme", j.ID, 2, 10)) // stale: no change, no event
	ok(s.Succeed(ctx, "acme", j.ID, "ref", nil))

	var seen []string
	var versions []int64
	for got := range ch {
		seen = append(seen, string(got.Status)+":"+strconv.FormatInt(got.Done, 10))
		versions = append(versions, got.Version)
	}
	want := []string{"queued:0", "running:0", "running:1", "running:2", "running:3", "succeeded:10"}
	if mustJSON(t, seen) != mustJSON(t, want) {
		t.Fatalf("watch saw %v, want %v (versions %v)", seen, want, versions)
	}
	for i, v := range versions {
		if v != int64(i+1) {
			t.Fatalf("versions %v, want 1..%d", versions, len(want))
		}
	}
}

func TestWatchTerminalJobSendsOnceAndCloses(t *testing.T) {
	ok := mustOK(t)
	f := newFixture(t, jobs.Options{})
	ctx := context.Background()
	j := mustCreate(t, f.store, "acme")
	ok(f.store.Cancel(ctx, "acme", j.ID))
	ch, err := f.store.Watch(ctx, "acme", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	var n int
	for got := range ch {
		n++
		if got.Status != jobs.StatusCancelled {
			t.Fatalf("status %s", got.Status)
		}
	}
	if n != 1 {
		t.Fatalf("got %d values, want 1", n)
	}
}

func TestWatchClosesWhenContextEnds(t *testing.T) {
	f := newFixture(t, jobs.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	j := mustCreate(t, f.store, "acme")
	ch, err := f.store.Watch(ctx, "acme", j.ID)
	if err != nil {
		t.Fatal(err)
	}
	<-ch // initial state
	cancel()
	for range ch { // must terminate
	}
}

func TestRedisDownIsUnavailable(t *testing.T) {
	f := newFixture(t, jobs.Options{})
	ctx := context.Background()
	j := mustCreate(t, f.store, "acme")
	f.redis.Kill()
	for name, op := range map[string]func() error{
		"create": func() error { _, err := f.store.Create(ctx, jobs.Job{Kind: "k", Tenant: "acme"}); return err },
		"get":    func() error { _, err := f.store.Get(ctx, "acme", j.ID); return err },
		"start":  func() error { _, err := f.store.Start(ctx, "acme", j.ID); return err },
		"watch":  func() error { _, err := f.store.Watch(ctx, "acme", j.ID); return err },
	} {
		if err := op(); httpx.ErrorCode(err) != httpx.CodeUnavailable {
			t.Errorf("%s: err = %v, want unavailable", name, err)
		}
	}
}
