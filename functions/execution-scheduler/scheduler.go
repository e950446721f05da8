package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/go-chi/chi/v5"
	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/events"
	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/schedule"
	"github.com/day-trade/platform/shared/store"
	"github.com/day-trade/platform/shared/workflow"
)

// PingEventType is what a Knative PingSource sends; its Trigger delivers it here as an
// execution tick (see knative/manifests.Schedule).
const PingEventType = "dev.knative.sources.ping"

// settings tune the scheduler.
type settings struct {
	// CatchUp is how far back a tick looks for due times no tick covered (the scheduler was
	// down, ticks were lost): missed runs inside it start late, older ones are skipped.
	CatchUp time.Duration
	// MaxPerSchedule bounds the runs one schedule starts in one tick (the newest win).
	MaxPerSchedule int
	// Concurrency bounds the runs executed at once.
	Concurrency int
	// ClaimTTL is how long a (schedule, due time) claim is remembered; it exceeds CatchUp.
	ClaimTTL time.Duration
}

// scheduler turns ticks into workflow runs.
type scheduler struct {
	log       *slog.Logger
	rdb       redis.UniversalClient
	keys      store.Keys
	schedules *schedule.Store
	runner    *workflow.Runner
	jobs      *jobs.Store
	workflows map[string]workflow.Workflow
	set       settings
	now       func() time.Time
}

// newServer mounts the CloudEvents receiver for ticks, in both the platform's type and the
// PingSource's, on POST /.
func newServer(s *scheduler, recv *events.Receiver) http.Handler {
	handle := func(ctx context.Context, e cloudevents.Event) error {
		var t events.ExecutionTick
		_ = events.DecodeData(e, &t) // the body only informs the log; the clock decides
		started, resumed, err := s.tick(ctx)
		s.log.Info("tick", slog.String("event", e.ID()), slog.String("type", e.Type()),
			slog.Time("sent_for", e.Time()), slog.Int("started", started), slog.Int("executed", resumed), slog.Any("err", err))
		return err
	}
	recv.Handle(events.TypeExecutionTick, handle)
	recv.Handle(PingEventType, handle)
	r := chi.NewRouter()
	r.NotFound(httpx.NotFoundHandler().ServeHTTP)
	r.MethodNotAllowed(httpx.MethodNotAllowedHandler().ServeHTTP)
	r.Method(http.MethodPost, "/", recv.HTTPHandler())
	return r
}

func (s *scheduler) claimKey(scheduleID string, due time.Time) string {
	return s.keys.Key("sched-fire", scheduleID, strconv.FormatInt(due.Unix(), 10))
}
func (s *scheduler) pendingKey() string { return s.keys.Key("sched-pending") }

// tick starts every run that is due now and not started yet, then executes the pending runs
// (the new ones and any a crashed or interrupted executor left). It returns how many runs it
// claimed and how many it executed to the end. It never starts a run twice: a run is claimed
// with SET NX on (schedule, due time), and its job id is a function of the same pair.
func (s *scheduler) tick(ctx context.Context) (claimed, executed int, err error) {
	now := s.now()
	active, err := s.schedules.Active(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, sc := range active {
		n, err := s.claim(ctx, sc, now)
		claimed += n
		if err != nil {
			return claimed, 0, err
		}
	}
	executed, err = s.executePending(ctx)
	return claimed, executed, err
}

// claim records the schedule's runs due in the catch-up window as pending.
func (s *scheduler) claim(ctx context.Context, sc schedule.Schedule, now time.Time) (int, error) {
	spec, err := sc.Spec()
	if err != nil {
		s.log.Error("stored schedule does not parse", slog.String("schedule", sc.ID), slog.Any("err", err))
		return 0, nil
	}
	from := now.Add(-s.set.CatchUp)
	if sc.CreatedAt.After(from) {
		from = sc.CreatedAt
	}
	due, err := schedule.Due(spec, from, now, s.set.MaxPerSchedule)
	if errors.Is(err, schedule.ErrTooMany) {
		s.log.Warn("schedule has more missed runs than the limit; the oldest are skipped", slog.String("schedule", sc.ID))
	}
	n := 0
	for _, d := range due {
		runID := schedule.RunID(sc.ID, d)
		// The claim and the pending entry are written in one step: a crash leaves both or
		// neither, and only the first claimer of (schedule, due time) queues the run.
		won, err := claimScript.Run(ctx, s.rdb, []string{s.claimKey(sc.ID, d), s.pendingKey()},
			runID, int64(s.set.ClaimTTL/time.Second), d.Unix()).Bool()
		if err != nil {
			return n, httpx.Wrap(err, httpx.CodeUnavailable, "scheduler state unavailable")
		}
		if won {
			n++
			s.log.Info("run due", slog.String("schedule", sc.ID), slog.String("workflow", sc.Workflow),
				slog.String("tenant", sc.Tenant), slog.Time("due", d), slog.String("run", runID))
		}
	}
	return n, nil
}

// claimScript: KEYS[1] claim, KEYS[2] pending set; ARGV run id, claim TTL s, due (unix).
var claimScript = redis.NewScript(`
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  redis.call('ZADD', KEYS[2], 'NX', ARGV[3], ARGV[1])
  return 1
end
return 0`)

// maxPending bounds the runs one tick executes; the rest wait for the next tick.
const maxPending = 100

// executePending runs (or resumes) pending runs, oldest first.
func (s *scheduler) executePending(ctx context.Context) (int, error) {
	ids, err := s.rdb.ZRange(ctx, s.pendingKey(), 0, maxPending-1).Result()
	if err != nil {
		return 0, httpx.Wrap(err, httpx.CodeUnavailable, "scheduler state unavailable")
	}
	var (
		mu       sync.Mutex
		executed int
		errs     []error
		wg       sync.WaitGroup
		sem      = make(chan struct{}, s.set.Concurrency)
	)
	for _, id := range ids {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return executed, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			done, err := s.execute(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if done {
				executed++
			}
			if err != nil {
				errs = append(errs, err)
			}
		}()
	}
	wg.Wait()
	return executed, errors.Join(errs...)
}

// parseRunID splits "run.<schedule id>.<unix>".
func parseRunID(id string) (scheduleID string, due time.Time, ok bool) {
	rest, ok := strings.CutPrefix(id, "run.")
	if !ok {
		return "", time.Time{}, false
	}
	i := strings.LastIndex(rest, ".")
	if i < 0 {
		return "", time.Time{}, false
	}
	sec, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil {
		return "", time.Time{}, false
	}
	return rest[:i], time.Unix(sec, 0).UTC(), true
}

// execute runs one pending run under its schedule's tenant. It reports whether the run
// ended (and left the pending set). A run another replica is executing is skipped; an
// interrupted one stays pending and is resumed by a later tick.
func (s *scheduler) execute(ctx context.Context, runID string) (bool, error) {
	drop := func() error {
		if err := s.rdb.ZRem(context.WithoutCancel(ctx), s.pendingKey(), runID).Err(); err != nil {
			return httpx.Wrap(err, httpx.CodeUnavailable, "scheduler state unavailable")
		}
		return nil
	}
	schedID, _, ok := parseRunID(runID)
	if !ok {
		return false, drop()
	}
	sc, err := s.schedules.Lookup(ctx, schedID)
	if errors.Is(err, schedule.ErrNotFound) {
		return false, drop()
	}
	if err != nil {
		return false, err
	}
	log := s.log.With(slog.String("run", runID), slog.String("tenant", sc.Tenant), slog.String("workflow", sc.Workflow))
	wf, ok := s.workflows[sc.Workflow]
	if !ok {
		log.Error("schedule names an unknown workflow")
		return false, drop()
	}
	j, err := s.runner.Create(ctx, wf, runID, sc.Tenant, sc.Config)
	if err != nil {
		return false, err
	}
	if sc.Status == schedule.StatusCancelled && j.Status == jobs.StatusQueued {
		// Cancelled after the claim, before the start: the run never starts.
		if _, err := s.jobs.Cancel(ctx, sc.Tenant, runID); err != nil && httpx.ErrorCode(err) != httpx.CodeConflict {
			return false, err
		}
		return false, drop()
	}
	j, err = s.runner.Execute(ctx, wf, sc.Tenant, runID)
	switch {
	case errors.Is(err, workflow.ErrBusy):
		return false, nil
	case err != nil && ctx.Err() != nil:
		// Retryable: the redelivered tick (or the next one) resumes the run.
		log.Warn("run interrupted; a later tick resumes it", slog.Any("err", err))
		return false, httpx.Wrap(err, httpx.CodeUnavailable, "run "+runID+" interrupted")
	case err != nil:
		return false, fmt.Errorf("run %s: %w", runID, err)
	}
	if !j.Status.Terminal() {
		return false, nil
	}
	log.Info("run ended", slog.String("status", string(j.Status)), slog.String("error", j.Error))
	return true, drop()
}
