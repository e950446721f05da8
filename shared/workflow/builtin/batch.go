package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/day-trade/platform/shared/jobs"
	"github.com/day-trade/platform/shared/workflow"
)

// Functions of the batch prediction: ml-batch-predict queues a job for all the symbols at
// once (202 and the job id; ml-batch-worker predicts them through the ensemble chunk by
// chunk), execution-jobs serves the job's status.
const (
	fnBatchPredict = "ml-batch-predict"
	fnJobs         = "execution-jobs"
)

// defaultPoll is the wait between two reads of a batch job's status: a job of the 1..20
// symbols a workflow selects takes seconds.
const defaultPoll = time.Second

// Run values of the batch step.
const (
	valBatchJob = "batch_job" // the job id, saved as soon as the job is queued
	valBatch    = "batch"     // the job as it ended (a Batch)
)

// Batch is a run's batch prediction job as it ended. The predictions themselves stay with
// the job (result_ref, in ml-batch-worker's store) and are announced by its own
// ml.batch.completed notification.
type Batch struct {
	JobID     string   `json:"job_id"`
	Status    string   `json:"status"`
	Predicted int      `json:"predicted"`
	Failed    []string `json:"failed,omitempty"`
	ResultRef string   `json:"result_ref,omitempty"`
}

// batchPredict predicts every selected symbol with one call to ml-batch-predict and waits for
// the job to end, reading its status from execution-jobs every s.poll until the run's context
// ends (the lease: WORKFLOW_RUN_LEASE). The job id is saved before the wait, so a run resumed
// after a crash or an expired lease waits for the same job instead of queuing another; only
// a crash between the 202 and that save queues a second job (ml-batch-predict takes no
// Idempotency-Key), which predicts the same symbols again and is harmless.
func (s steps) batchPredict(ctx context.Context, run *workflow.Run) error {
	syms, err := symbolsOf(ctx, run)
	if err != nil {
		return err
	}
	var id string
	switch err := run.Load(ctx, valBatchJob, &id); {
	case errors.Is(err, workflow.ErrNoValue):
		var acc struct {
			JobID string `json:"job_id"`
		}
		if err := s.c.Call(ctx, fnBatchPredict, http.MethodPost, "/api/v1/ml/batch-predict", run.Tenant, nil, map[string]any{"symbols": syms}, &acc); err != nil {
			return err
		}
		if acc.JobID == "" {
			return fmt.Errorf("%s answered without a job id", fnBatchPredict)
		}
		id = acc.JobID
		// The job exists now: record it even if the run is being stopped, so that the
		// resumed run finds it.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		err := run.Save(sctx, valBatchJob, id)
		cancel()
		if err != nil {
			return err
		}
	case err != nil:
		return err
	}
	j, err := s.waitJob(ctx, run.Tenant, id)
	if err != nil {
		return err
	}
	b := Batch{JobID: j.ID, Status: string(j.Status), ResultRef: j.ResultRef}
	var sum struct {
		OK     int      `json:"ok"`
		Failed []string `json:"failed"`
	}
	if len(j.Result) > 0 && json.Unmarshal(j.Result, &sum) == nil {
		b.Predicted, b.Failed = sum.OK, sum.Failed
	}
	switch j.Status {
	case jobs.StatusSucceeded:
		return run.Save(ctx, valBatch, b)
	case jobs.StatusFailed:
		return fmt.Errorf("batch prediction job %s failed: %s", j.ID, j.Error)
	}
	return fmt.Errorf("batch prediction job %s was %s", j.ID, j.Status)
}

// waitJob reads job id's status from execution-jobs until it is terminal or ctx ends.
func (s steps) waitJob(ctx context.Context, tenant, id string) (jobs.Job, error) {
	poll := s.poll
	if poll <= 0 {
		poll = defaultPoll
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return jobs.Job{}, ctx.Err()
		case <-t.C:
		}
		var j jobs.Job
		if err := s.c.Call(ctx, fnJobs, http.MethodGet, "/api/v1/execution/jobs/"+url.PathEscape(id), tenant, nil, nil, &j); err != nil {
			return j, err
		}
		if j.Status.Terminal() {
			return j, nil
		}
		t.Reset(poll)
	}
}
