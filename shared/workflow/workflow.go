// Package workflow is a small saga runner. A Workflow is an ordered list of steps, each with
// an optional compensation. A run of it is a jobs.Job whose progress is the number of steps
// done; when a step fails, the steps done before it are compensated in reverse order and the
// run ends failed with the step's reason.
//
// Runs survive crashes. Every step's completion, the failure and every compensation are
// recorded in Redis before the run moves on, and a run is executed under a lease, so that a
// second executor (another replica, or the same one after a restart) resumes where the first
// stopped: a step recorded done is never run again and a compensation recorded done is never
// run again. The one window left is a crash after a step's effect but before its record; steps
// and compensations therefore make their effects idempotent (e.g. an Idempotency-Key derived
// from the run id), which turns a repeat into a replay.
package workflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/store"
)

// Step is one unit of a workflow.
type Step struct {
	Name string
	// Do performs the step. Its error's message becomes the run's failure reason, so it must
	// be safe to show to the tenant.
	Do func(ctx context.Context, run *Run) error
	// Compensate undoes a completed Do; nil means there is nothing to undo (a read).
	Compensate func(ctx context.Context, run *Run) error
}

// Workflow is a named, ordered list of steps.
type Workflow struct {
	Name  string
	Steps []Step
}

// JobKind is the jobs.Job kind of the workflow's runs.
func (w Workflow) JobKind() string { return "workflow." + w.Name }

// Options configures a Runner. Zero values take the defaults.
type Options struct {
	// Lease bounds one execution: the run's context ends at it and another executor may
	// resume the run after it. Default 5m.
	Lease time.Duration
	// TTL is how long a run's records are kept. Default 7 days.
	TTL time.Duration
	Log *slog.Logger
}

// Runner executes workflow runs.
type Runner struct {
	rdb  redis.UniversalClient
	keys store.Keys
	jobs *jobs.Store
	opts Options
	log  *slog.Logger
}

// NewRunner returns a Runner keeping run records in keys' space and runs as jobs in js.
func NewRunner(rdb redis.UniversalClient, keys store.Keys, js *jobs.Store, opts Options) *Runner {
	if opts.Lease <= 0 {
		opts.Lease = 5 * time.Minute
	}
	if opts.TTL <= 0 {
		opts.TTL = 7 * 24 * time.Hour
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	return &Runner{rdb: rdb, keys: keys, jobs: js, opts: opts, log: opts.Log}
}

// Run is one execution of a workflow as its steps see it.
type Run struct {
	ID       string
	Tenant   string
	Workflow string
	Config   json.RawMessage
	rdb      redis.UniversalClient
	dataKey  string
	ttl      time.Duration
}

// ErrNoValue is returned by Load for a name no step saved.
var ErrNoValue = errors.New("workflow: no such value")

// Save stores v (as JSON) under name for later steps, compensations and resumed runs.
func (r *Run) Save(ctx context.Context, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("workflow: save %s: %w", name, err)
	}
	if _, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, r.dataKey, name, b)
		p.Expire(ctx, r.dataKey, r.ttl)
		return nil
	}); err != nil {
		return httpx.Wrap(err, httpx.CodeUnavailable, "workflow state unavailable")
	}
	return nil
}

// Load reads what a step saved under name into v.
func (r *Run) Load(ctx context.Context, name string, v any) error {
	b, err := r.rdb.HGet(ctx, r.dataKey, name).Bytes()
	if errors.Is(err, redis.Nil) {
		return fmt.Errorf("%w: %s", ErrNoValue, name)
	}
	if err != nil {
		return httpx.Wrap(err, httpx.CodeUnavailable, "workflow state unavailable")
	}
	return json.Unmarshal(b, v)
}

// resultName is the value Succeed reports as the job's summary.
const resultName = "_result"

// SetResult sets the run's result summary (a small JSON value) reported when it succeeds.
func (r *Run) SetResult(ctx context.Context, v any) error { return r.Save(ctx, resultName, v) }

func (r *Runner) metaKey(id string) string  { return r.keys.Key("wf", "run", id) }
func (r *Runner) stateKey(id string) string { return r.keys.Key("wf", "run", id, "steps") }
func (r *Runner) dataKey(id string) string  { return r.keys.Key("wf", "run", id, "data") }
func (r *Runner) leaseKey(id string) string { return r.keys.Key("wf", "run", id, "lease") }

func unavailable(err error) error {
	return httpx.Wrap(err, httpx.CodeUnavailable, "workflow state unavailable")
}

// Create records a run of wf for tenant with config and creates its job (queued, total =
// number of steps). Creating a run that exists returns its job unchanged, so a caller that
// retries after a crash gets the same run.
func (r *Runner) Create(ctx context.Context, wf Workflow, id, tenant string, config json.RawMessage) (jobs.Job, error) {
	if len(config) == 0 {
		config = json.RawMessage("{}")
	}
	if _, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSetNX(ctx, r.metaKey(id), "workflow", wf.Name)
		p.HSetNX(ctx, r.metaKey(id), "tenant", tenant)
		p.HSetNX(ctx, r.metaKey(id), "config", string(config))
		p.Expire(ctx, r.metaKey(id), r.opts.TTL)
		return nil
	}); err != nil {
		return jobs.Job{}, unavailable(err)
	}
	j, err := r.jobs.Create(ctx, jobs.Job{ID: id, Kind: wf.JobKind(), Tenant: tenant, Total: int64(len(wf.Steps))})
	if httpx.ErrorCode(err) == httpx.CodeConflict {
		return r.jobs.Get(ctx, tenant, id)
	}
	return j, err
}

// ErrBusy is returned by Execute when another executor holds the run's lease.
var ErrBusy = &httpx.Error{Code: httpx.CodeConflict, Message: "workflow run is being executed elsewhere"}

// Step states in the run's state hash (field = step name, or "comp:" + step name).
const (
	stateDone   = "done"
	failureName = "_failure" // field holding "<step index> <reason>"
	compPrefix  = "comp:"
)

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Execute runs, or resumes, run id of wf for tenant and returns its job as it ends. A run
// that already ended is returned as is. When ctx ends (or the lease runs out) before the run
// does, Execute returns ctx's error and leaves the run to be resumed.
func (r *Runner) Execute(ctx context.Context, wf Workflow, tenant, id string) (jobs.Job, error) {
	token := newToken()
	ok, err := r.rdb.SetNX(ctx, r.leaseKey(id), token, r.opts.Lease).Result()
	if err != nil {
		return jobs.Job{}, unavailable(err)
	}
	if !ok {
		return jobs.Job{}, ErrBusy
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		_ = releaseScript.Run(rctx, r.rdb, []string{r.leaseKey(id)}, token).Err()
	}()
	// Stop a little before the lease so that a resumer never overlaps this executor.
	ctx, cancel := context.WithTimeout(ctx, r.opts.Lease-r.opts.Lease/10)
	defer cancel()

	j, err := r.jobs.Get(ctx, tenant, id)
	if err != nil {
		return j, err
	}
	switch {
	case j.Status.Terminal():
		return j, nil
	case j.Status == jobs.StatusQueued:
		if j, err = r.jobs.Start(ctx, tenant, id); err != nil {
			return j, err
		}
	}
	meta, err := r.rdb.HGetAll(ctx, r.metaKey(id)).Result()
	if err != nil {
		return j, unavailable(err)
	}
	if meta["workflow"] != "" && meta["workflow"] != wf.Name {
		return j, httpx.Errorf(httpx.CodeConflict, "run %s is a %s run, not %s", id, meta["workflow"], wf.Name)
	}
	run := &Run{ID: id, Tenant: tenant, Workflow: wf.Name, Config: json.RawMessage(meta["config"]),
		rdb: r.rdb, dataKey: r.dataKey(id), ttl: r.opts.TTL}
	if len(run.Config) == 0 {
		run.Config = json.RawMessage("{}")
	}
	state, err := r.rdb.HGetAll(ctx, r.stateKey(id)).Result()
	if err != nil {
		return j, unavailable(err)
	}
	log := r.log.With(slog.String("run", id), slog.String("workflow", wf.Name), slog.String("tenant", tenant))

	failedAt, reason := len(wf.Steps), ""
	if f, ok := state[failureName]; ok {
		i, rest, _ := strings.Cut(f, " ")
		failedAt, _ = strconv.Atoi(i)
		reason = rest
	} else {
		for i, s := range wf.Steps {
			if state[s.Name] == stateDone {
				continue
			}
			err := s.Do(ctx, run)
			if ctx.Err() != nil {
				// Interrupted, not failed: the step is redone by whoever resumes the run.
				return j, fmt.Errorf("workflow: run %s interrupted in step %s: %w", id, s.Name, ctx.Err())
			}
			if err != nil {
				failedAt, reason = i, fmt.Sprintf("step %s failed: %s", s.Name, stepMessage(err))
				log.Warn("workflow step failed", slog.String("step", s.Name), slog.Any("err", err))
				if err := r.record(ctx, id, failureName, strconv.Itoa(i)+" "+reason); err != nil {
					return j, err
				}
				break
			}
			if err := r.record(ctx, id, s.Name, stateDone); err != nil {
				return j, err
			}
			j, err = r.jobs.Progress(ctx, tenant, id, int64(i+1), int64(len(wf.Steps)))
			if err != nil {
				if httpx.ErrorCode(err) == httpx.CodeConflict {
					// Cancelled meanwhile: undo what was done and leave the job cancelled.
					_, cerr := r.compensate(ctx, log, wf, run, i+1)
					j, _ = r.jobs.Get(ctx, tenant, id)
					return j, cerr
				}
				return j, err
			}
		}
	}
	if failedAt == len(wf.Steps) {
		var summary json.RawMessage
		if err := run.Load(ctx, resultName, &summary); err != nil && !errors.Is(err, ErrNoValue) {
			return j, err
		}
		return r.jobs.Succeed(ctx, tenant, id, "", summary)
	}
	notes, err := r.compensate(ctx, log, wf, run, failedAt)
	if err != nil {
		return j, err
	}
	if notes != "" {
		reason += "; " + notes
	}
	return r.jobs.Fail(ctx, tenant, id, reason)
}

// compensate undoes the completed steps before step `before`, newest first, each at most
// once, and says what it did.
func (r *Runner) compensate(ctx context.Context, log *slog.Logger, wf Workflow, run *Run, before int) (string, error) {
	fresh, err := r.rdb.HGetAll(ctx, r.stateKey(run.ID)).Result()
	if err != nil {
		return "", unavailable(err)
	}
	var undone, failed []string
	for i := before - 1; i >= 0; i-- {
		s := wf.Steps[i]
		if fresh[s.Name] != stateDone || s.Compensate == nil {
			continue
		}
		if fresh[compPrefix+s.Name] == stateDone {
			undone = append(undone, s.Name)
			continue
		}
		err := s.Compensate(ctx, run)
		if ctx.Err() != nil {
			return "", fmt.Errorf("workflow: run %s interrupted compensating %s: %w", run.ID, s.Name, ctx.Err())
		}
		if err != nil {
			log.Error("workflow compensation failed", slog.String("step", s.Name), slog.Any("err", err))
			failed = append(failed, s.Name+" ("+stepMessage(err)+")")
			if err := r.record(ctx, run.ID, compPrefix+s.Name, "failed"); err != nil {
				return "", err
			}
			continue
		}
		if err := r.record(ctx, run.ID, compPrefix+s.Name, stateDone); err != nil {
			return "", err
		}
		undone = append(undone, s.Name)
	}
	var notes []string
	if len(undone) > 0 {
		notes = append(notes, "compensated: "+strings.Join(undone, ", "))
	}
	if len(failed) > 0 {
		notes = append(notes, "compensation failed: "+strings.Join(failed, ", "))
	}
	return strings.Join(notes, "; "), nil
}

func (r *Runner) record(ctx context.Context, id, field, value string) error {
	// The record outlives a cancelled ctx: losing it would redo a step.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
	defer cancel()
	if _, err := r.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, r.stateKey(id), field, value)
		p.Expire(ctx, r.stateKey(id), r.opts.TTL)
		return nil
	}); err != nil {
		return unavailable(err)
	}
	return nil
}

// Compensated reports whether step's compensation of run id is recorded done.
func (r *Runner) Compensated(ctx context.Context, id, step string) (bool, error) {
	v, err := r.rdb.HGet(ctx, r.stateKey(id), compPrefix+step).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, unavailable(err)
	}
	return v == stateDone, nil
}

// stepMessage is the caller-safe text of a step's error: an httpx error's message (and
// detail), else the error's text, bounded.
func stepMessage(err error) string {
	msg := err.Error()
	var he *httpx.Error
	if errors.As(err, &he) {
		msg = he.Message
		if he.Code == httpx.CodeInternal {
			msg = "internal error"
		}
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return msg
}

func newToken() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
