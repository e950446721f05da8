package workflow

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/redistest"
	"github.com/day-trade/platform/shared/store"
)

// counter counts calls per name.
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *counter) inc(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[name]++
}

func (c *counter) get(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[name]
}

func newRunner(t *testing.T) (*Runner, *jobs.Store, redis.UniversalClient) {
	t.Helper()
	srv := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: srv.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	js := jobs.NewStore(rdb, jobs.Options{})
	return NewRunner(rdb, store.NewKeys("exec"), js, Options{Lease: time.Minute}), js, rdb
}

// steps builds a workflow of names; fail[name] makes that step's Do fail with the error.
func steps(c *counter, names []string, fail map[string]error, failComp map[string]func() error) Workflow {
	wf := Workflow{Name: "test"}
	for _, n := range names {
		wf.Steps = append(wf.Steps, Step{
			Name: n,
			Do: func(ctx context.Context, run *Run) error {
				c.inc("do:" + n)
				if err := fail[n]; err != nil {
					return err
				}
				return run.Save(ctx, n, n+"-output")
			},
			Compensate: func(ctx context.Context, run *Run) error {
				c.inc("comp:" + n)
				var out string
				if err := run.Load(ctx, n, &out); err != nil || out != n+"-output" {
					return errors.New("compensation lost the step's output")
				}
				if f := failComp[n]; f != nil {
					return f()
				}
				return nil
			},
		})
	}
	return wf
}

func TestThirdStepFailsCompensatesEarlierStepsOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, _ := newRunner(t)
	var c counter
	wf := steps(&c, []string{"one", "two", "three", "four"},
		map[string]error{"three": httpx.Errorf(httpx.CodeUpstream, "symbols-select answered 502")}, nil)
	if _, err := r.Create(ctx, wf, "run-1", "acme", nil); err != nil {
		t.Fatal(err)
	}
	j, err := r.Execute(ctx, wf, "acme", "run-1")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != jobs.StatusFailed {
		t.Fatalf("status %s, want failed", j.Status)
	}
	for _, want := range []string{"step three failed", "symbols-select answered 502", "compensated: two, one"} {
		if !strings.Contains(j.Error, want) {
			t.Errorf("reason %q lacks %q", j.Error, want)
		}
	}
	if j.Done != 2 || j.Total != 4 {
		t.Errorf("progress %d/%d, want 2/4", j.Done, j.Total)
	}
	// Executing again (a redelivered tick, a second replica) changes nothing.
	for range 3 {
		if _, err := r.Execute(ctx, wf, "acme", "run-1"); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]int{
		"do:one": 1, "do:two": 1, "do:three": 1, "do:four": 0,
		"comp:one": 1, "comp:two": 1, "comp:three": 0, "comp:four": 0,
	} {
		if got := c.get(name); got != want {
			t.Errorf("%s ran %d times, want %d", name, got, want)
		}
	}
}

func TestSucceededRunReportsResult(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, _ := newRunner(t)
	var c counter
	wf := steps(&c, []string{"a", "b"}, nil, nil)
	wf.Steps = append(wf.Steps, Step{Name: "c", Do: func(ctx context.Context, run *Run) error {
		return run.SetResult(ctx, map[string]int{"orders": 2})
	}})
	if _, err := r.Create(ctx, wf, "run-ok", "acme", []byte(`{"x":1}`)); err != nil {
		t.Fatal(err)
	}
	j, err := r.Execute(ctx, wf, "acme", "run-ok")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != jobs.StatusSucceeded || j.Done != 3 || string(j.Result) != `{"orders":2}` {
		t.Fatalf("job %+v", j)
	}
	if c.get("comp:a")+c.get("comp:b") != 0 {
		t.Error("a succeeded run compensated")
	}
}

// TestInterruptedCompensationResumesWithoutRepeats: the executor dies (its context ends)
// while compensating step one, after step two's compensation was recorded; the resumed run
// compensates step one once more and never step two again.
func TestInterruptedCompensationResumesWithoutRepeats(t *testing.T) {
	t.Parallel()
	r, _, _ := newRunner(t)
	var c counter
	ctx1, crash := context.WithCancel(context.Background())
	crashed := false
	crashOnce := func() error {
		if crashed {
			return nil
		}
		crashed = true
		crash()
		return context.Canceled
	}
	wf := steps(&c, []string{"one", "two", "three"},
		map[string]error{"three": errors.New("boom")},
		map[string]func() error{"one": crashOnce})
	if _, err := r.Create(context.Background(), wf, "run-2", "acme", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Execute(ctx1, wf, "acme", "run-2"); !errors.Is(err, context.Canceled) {
		t.Fatalf("first execution: %v, want interrupted", err)
	}
	j, err := r.Execute(context.Background(), wf, "acme", "run-2")
	if err != nil {
		t.Fatal(err)
	}
	if j.Status != jobs.StatusFailed || !strings.Contains(j.Error, "compensated: two, one") {
		t.Fatalf("job %s %q", j.Status, j.Error)
	}
	// comp:one ran twice: the interrupted attempt (which did not complete) and the resumed one.
	for name, want := range map[string]int{"do:three": 1, "comp:two": 1, "comp:one": 2} {
		if got := c.get(name); got != want {
			t.Errorf("%s ran %d times, want %d", name, got, want)
		}
	}
	for _, s := range []string{"one", "two"} {
		if ok, err := r.Compensated(context.Background(), "run-2", s); err != nil || !ok {
			t.Errorf("compensation of %s recorded %v, %v", s, ok, err)
		}
	}
}

// TestInterruptedStepResumesAfterDoneSteps: the executor dies inside step two; the resumed
// run does not redo step one.
func TestInterruptedStepResumesAfterDoneSteps(t *testing.T) {
	t.Parallel()
	r, _, _ := newRunner(t)
	var c counter
	ctx1, crash := context.WithCancel(context.Background())
	first := true
	wf := steps(&c, []string{"one", "two"}, nil, nil)
	do2 := wf.Steps[1].Do
	wf.Steps[1].Do = func(ctx context.Context, run *Run) error {
		if first {
			first = false
			crash()
			return ctx.Err()
		}
		return do2(ctx, run)
	}
	if _, err := r.Create(context.Background(), wf, "run-3", "acme", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Execute(ctx1, wf, "acme", "run-3"); err == nil {
		t.Fatal("interrupted execution returned no error")
	}
	j, err := r.Execute(context.Background(), wf, "acme", "run-3")
	if err != nil || j.Status != jobs.StatusSucceeded {
		t.Fatalf("resumed: %v %+v", err, j)
	}
	if n := c.get("do:one"); n != 1 {
		t.Errorf("step one ran %d times", n)
	}
}

func TestLeaseKeepsOneExecutor(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, _ := newRunner(t)
	entered, release := make(chan struct{}), make(chan struct{})
	wf := Workflow{Name: "slow", Steps: []Step{{Name: "wait", Do: func(ctx context.Context, _ *Run) error {
		close(entered)
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}}}}
	if _, err := r.Create(ctx, wf, "run-4", "acme", nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := r.Execute(ctx, wf, "acme", "run-4"); done <- err }()
	<-entered
	if _, err := r.Execute(ctx, wf, "acme", "run-4"); !errors.Is(err, ErrBusy) {
		t.Errorf("second executor: %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestOtherTenantCannotExecute(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, _, _ := newRunner(t)
	var c counter
	wf := steps(&c, []string{"one"}, nil, nil)
	if _, err := r.Create(ctx, wf, "run-5", "acme", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Execute(ctx, wf, "evil", "run-5"); httpx.ErrorCode(err) != httpx.CodeNotFound {
		t.Errorf("other tenant: %v", err)
	}
	if c.get("do:one") != 0 {
		t.Error("step ran for another tenant")
	}
}
