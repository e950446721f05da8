package batch

import (
	"context"
	"net/http"
	"time"

	"github.com/day-trade/platform/shared/httpx"
	"github.com/day-trade/platform/shared/jobs"
)

// Publisher is the part of events.Publisher a Submitter needs.
type Publisher interface {
	PublishID(ctx context.Context, id, typ, source, subject string, data any) (string, error)
}

// Submitter creates a job and publishes the event that asks a worker to carry it out.
type Submitter struct {
	Jobs      *jobs.Store
	Publisher Publisher
	Kind      string // job kind, e.g. "ml.batch"
	Type      string // event type, e.g. events.TypeMLBatchRequested
	Source    string // event source, e.g. events.SourceMLBatchPredict
}

// Accepted is the 202 answer to a batch request.
type Accepted struct {
	JobID     string `json:"job_id"`
	Status    string `json:"status"`
	StatusURL string `json:"status_url"`
	EventsURL string `json:"events_url"` // Server-Sent Events of the job's progress
}

// StatusPath is where a job's status is served (function execution-jobs).
func StatusPath(jobID string) string { return "/api/v1/execution/jobs/" + jobID }

// Submit creates a queued job of total units for tenant and publishes payload(jobID) with
// the event id "<job id>.requested", so a retried publish is deduplicated downstream. When
// the Broker cannot be reached the job is cancelled and the error (Unavailable) returned:
// the caller is told to retry, and no job is left queued with no worker coming.
func (s *Submitter) Submit(ctx context.Context, tenant string, total int, payload func(jobID string) any) (jobs.Job, error) {
	j, err := s.Jobs.Create(ctx, jobs.Job{Kind: s.Kind, Tenant: tenant, Total: int64(total)})
	if err != nil {
		return jobs.Job{}, err
	}
	if _, err := s.Publisher.PublishID(ctx, j.ID+".requested", s.Type, s.Source, j.ID, payload(j.ID)); err != nil {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		_, _ = s.Jobs.Cancel(cctx, tenant, j.ID)
		he := httpx.AsError(err)
		return jobs.Job{}, &httpx.Error{Code: httpx.CodeUnavailable, Message: "cannot queue the job; retry later", RetryAfter: time.Second, Err: he}
	}
	return j, nil
}

// WriteAccepted answers 202 with the job's links and a Location header.
func WriteAccepted(w http.ResponseWriter, j jobs.Job) error {
	w.Header().Set("Location", StatusPath(j.ID))
	return httpx.Encode(w, http.StatusAccepted, Accepted{
		JobID: j.ID, Status: string(j.Status),
		StatusURL: StatusPath(j.ID), EventsURL: StatusPath(j.ID) + "/events",
	})
}
