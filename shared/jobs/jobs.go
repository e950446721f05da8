// Package jobs tracks long-running work (batch predictions, data fetches, training) that an
// HTTP call starts and a CloudEvent worker carries out: its status, progress and result, kept
// in Redis under "jobs:" so that any replica can answer for it, and watchable for a
// Server-Sent Events stream.
//
// A job moves queued → running → succeeded | failed | cancelled, or queued → cancelled. Every
// change is validated and applied atomically in Redis, so two workers racing on the same job
// cannot both win. A job is visible only to its tenant.
package jobs

import (
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/day-trade/platform/shared/httpx"
)

// Status is where a job is in its life.
type Status string

const (
	StatusQueued    Status = "queued"
	StatusRunning   Status = "running"
	StatusSucceeded Status = "succeeded"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Terminal reports whether no transition leaves s.
func (s Status) Terminal() bool {
	return s == StatusSucceeded || s == StatusFailed || s == StatusCancelled
}

// transitions lists, for each target status, the statuses it may be entered from.
var transitions = map[Status][]Status{
	StatusRunning:   {StatusQueued},
	StatusSucceeded: {StatusRunning},
	StatusFailed:    {StatusRunning},
	StatusCancelled: {StatusQueued, StatusRunning},
}

// CanTransition reports whether a job may move from one status to another.
func CanTransition(from, to Status) bool { return slices.Contains(transitions[to], from) }

// Job is one unit of tracked work, as stored and as served (JSON) to its tenant.
type Job struct {
	ID     string `json:"id"`
	Kind   string `json:"kind"` // what the job does, e.g. "ml.batch", "data.batch"
	Tenant string `json:"tenant"`
	Status Status `json:"status"`
	// Done and Total are units of work (e.g. symbols); both only ever grow. Total 0 means
	// not known yet.
	Done       int64     `json:"done"`
	Total      int64     `json:"total"`
	CreatedAt  time.Time `json:"created_at"`
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// ResultRef locates the full result, e.g. the Redis key holding the predictions.
	ResultRef string `json:"result_ref,omitempty"`
	// Error is the caller-safe reason a job failed.
	Error string `json:"error,omitempty"`
	// Result is a small free-form summary of the outcome, e.g. {"predicted":42}.
	Result json.RawMessage `json:"result,omitempty"`
	// Version counts changes, starting at 1; an SSE stream can use it as the event id.
	Version int64 `json:"version"`
}

// ErrNotFound is returned for a job that does not exist, has expired or belongs to another
// tenant; the three are indistinguishable on purpose.
var ErrNotFound = &httpx.Error{Code: httpx.CodeNotFound, Message: "job not found"}

// ErrInvalidTransition is wrapped by the CodeConflict error returned when a job's current
// status does not allow the requested change.
var ErrInvalidTransition = errors.New("jobs: invalid status transition")
