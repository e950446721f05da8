package batch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
)

// Outcome is what a WorkFunc produced for one symbol: a value to store, or Err, a failure
// of that symbol alone (unknown symbol, too little history) that is recorded, not retried.
type Outcome struct {
	Value any
	Err   error
}

// WorkFunc does the work for one chunk of symbols and returns an outcome per symbol. A
// symbol missing from the map is recorded as failed. An error fails the whole chunk: it
// stops the run, nothing of the chunk is written, and the error goes back to the Receiver,
// so a Retryable code makes the Broker redeliver the request, which resumes the job.
type WorkFunc func(ctx context.Context, symbols []string) (map[string]Outcome, error)

// Spec names one job's work.
type Spec struct {
	Tenant  string
	JobID   string
	Symbols []string
}

// Summary is where a run left the job.
type Summary struct {
	Status    jobs.Status
	ResultRef string
	OK        int      // symbols with a value
	Failed    []string // symbols recorded as failed, sorted
	Error     string   // why the job failed, when it did
}

// summaryJSON is the small result summary stored on the job.
type summaryJSON struct {
	OK     int      `json:"ok"`
	Failed []string `json:"failed,omitempty"`
}

// Runner carries out batch jobs. Chunk and Parallel default to 10 and 4.
type Runner struct {
	Jobs     *jobs.Store
	Results  *Results
	Chunk    int // symbols per WorkFunc call and per progress update
	Parallel int // chunks in flight at once
	Log      *slog.Logger
}

// Run works through spec's symbols that have no result yet, in chunks, updating the job's
// progress after each, then ends the job: succeeded when at least one symbol has a value,
// failed when every symbol failed. Calling Run again for the same job (a redelivery, or a
// restart after a crash) resumes it; for a job that already ended it only reports how it
// ended. A cancelled job stops at the next chunk.
func (r *Runner) Run(ctx context.Context, spec Spec, work WorkFunc) (Summary, error) {
	log := r.logger().With("job_id", spec.JobID, "tenant", spec.Tenant)
	j, err := r.begin(ctx, spec)
	if err != nil {
		return Summary{}, err
	}
	if j.Status.Terminal() {
		log.InfoContext(ctx, "job already ended; nothing to do", "status", j.Status)
		return r.summarise(ctx, j)
	}

	written, err := r.Results.Written(ctx, spec.JobID)
	if err != nil {
		return Summary{}, err
	}
	var todo []string
	for _, s := range spec.Symbols {
		if !written[s] {
			todo = append(todo, s)
		}
	}
	total := int64(len(spec.Symbols))
	if _, err := r.Jobs.Progress(ctx, spec.Tenant, spec.JobID, int64(len(written)), total); err != nil {
		return r.stopped(ctx, spec, err)
	}
	if len(written) > 0 {
		log.InfoContext(ctx, "resuming job", "done", len(written), "total", total)
	}

	// A failed chunk stops new chunks from starting but does not cancel its siblings: what
	// they already computed is still written, so a resumed run has less to redo.
	var (
		g      errgroup.Group
		failed atomic.Bool
	)
	g.SetLimit(max(r.Parallel, 1))
	for chunk := range slices.Chunk(todo, max(r.Chunk, 1)) {
		if failed.Load() || ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			err := r.chunk(ctx, spec, chunk, total, work)
			if err != nil {
				failed.Store(true)
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return r.stopped(ctx, spec, err)
	}
	if err := ctx.Err(); err != nil {
		return Summary{}, httpx.Wrap(err, httpx.CodeUnavailable, "job interrupted")
	}
	return r.finish(ctx, spec)
}

// begin moves a queued job to running; a running or ended job is returned as it is.
func (r *Runner) begin(ctx context.Context, spec Spec) (jobs.Job, error) {
	j, err := r.Jobs.Start(ctx, spec.Tenant, spec.JobID)
	if errors.Is(err, jobs.ErrInvalidTransition) {
		return r.Jobs.Get(ctx, spec.Tenant, spec.JobID)
	}
	return j, err
}

func (r *Runner) chunk(ctx context.Context, spec Spec, symbols []string, total int64, work WorkFunc) error {
	if err := r.Results.Attempt(ctx, spec.JobID, symbols); err != nil {
		return err
	}
	outcomes, err := work(ctx, symbols)
	if err != nil {
		return err
	}
	for _, s := range symbols {
		it := Item{Symbol: s}
		o, ok := outcomes[s]
		switch {
		case !ok:
			it.Error = "no result"
		case o.Err != nil:
			it.Error = httpx.AsError(o.Err).Message
		default:
			b, err := json.Marshal(o.Value)
			if err != nil {
				return httpx.Wrap(err, httpx.CodeInternal, "cannot encode result")
			}
			it.OK, it.Value = true, b
		}
		if _, err := r.Results.Put(ctx, spec.JobID, it); err != nil {
			return err
		}
	}
	n, err := r.Results.Count(ctx, spec.JobID)
	if err != nil {
		return err
	}
	_, err = r.Jobs.Progress(ctx, spec.Tenant, spec.JobID, min(n, total), total)
	return err
}

// stopped turns a run's error into its answer: a job that ended meanwhile (cancelled, or
// finished by a concurrent run) is reported as it is, anything else is returned.
func (r *Runner) stopped(ctx context.Context, spec Spec, err error) (Summary, error) {
	if errors.Is(err, jobs.ErrInvalidTransition) {
		j, gerr := r.Jobs.Get(ctx, spec.Tenant, spec.JobID)
		if gerr == nil && j.Status.Terminal() {
			return r.summarise(ctx, j)
		}
	}
	if ctx.Err() != nil && httpx.ErrorCode(err) == httpx.CodeInternal {
		err = httpx.Wrap(err, httpx.CodeUnavailable, "job interrupted")
	}
	return Summary{}, err
}

func (r *Runner) finish(ctx context.Context, spec Spec) (Summary, error) {
	items, err := r.Results.All(ctx, spec.JobID)
	if err != nil {
		return Summary{}, err
	}
	if len(items) < len(spec.Symbols) {
		// Never end a job with symbols missing: a later run completes it.
		return Summary{}, httpx.Errorf(httpx.CodeUnavailable, "job %s has %d of %d results", spec.JobID, len(items), len(spec.Symbols))
	}
	s := tally(items)
	var j jobs.Job
	if s.OK == 0 {
		j, err = r.Jobs.Fail(ctx, spec.Tenant, spec.JobID, fmt.Sprintf("all %d symbols failed", len(items)))
	} else {
		b, _ := json.Marshal(summaryJSON{OK: s.OK, Failed: s.Failed})
		j, err = r.Jobs.Succeed(ctx, spec.Tenant, spec.JobID, r.Results.Key(spec.JobID), b)
	}
	if err != nil {
		return r.stopped(ctx, spec, err)
	}
	r.logger().InfoContext(ctx, "job ended", "job_id", spec.JobID, "status", j.Status, "ok", s.OK, "failed", len(s.Failed))
	return r.summarise(ctx, j)
}

func (r *Runner) summarise(ctx context.Context, j jobs.Job) (Summary, error) {
	items, err := r.Results.All(ctx, j.ID)
	if err != nil {
		return Summary{}, err
	}
	s := tally(items)
	s.Status, s.Error = j.Status, j.Error
	if j.Status == jobs.StatusSucceeded {
		s.ResultRef = r.Results.Key(j.ID)
	}
	return s, nil
}

func tally(items []Item) Summary {
	var s Summary
	for _, it := range items {
		if it.OK {
			s.OK++
		} else {
			s.Failed = append(s.Failed, it.Symbol)
		}
	}
	return s
}

func (r *Runner) logger() *slog.Logger {
	if r.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.Log
}
