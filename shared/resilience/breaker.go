package resilience

import (
	"errors"
	"time"

	"github.com/sony/gobreaker/v2"
)

// State is a breaker's state.
type State = gobreaker.State

// Breaker states, re-exported so callers need not import gobreaker.
const (
	StateClosed   = gobreaker.StateClosed
	StateHalfOpen = gobreaker.StateHalfOpen
	StateOpen     = gobreaker.StateOpen
)

// ErrOpen is returned by Allow while the breaker is open or its half-open probes are taken.
var ErrOpen = errors.New("resilience: circuit open")

// BreakerSettings configure a failure-rate breaker.
type BreakerSettings struct {
	// MinRequests is the sample size below which the breaker never trips (default 20).
	MinRequests uint32
	// FailureRatio trips the breaker when failures/requests reaches it (default 0.5).
	FailureRatio float64
	// Window is the rolling window over which the ratio is counted (default 10s).
	Window time.Duration
	// OpenFor is how long the breaker stays open before letting probes through (default 5s).
	OpenFor time.Duration
	// HalfOpenProbes is how many requests may probe a half-open upstream (default 3); that
	// many consecutive successes close it, one failure opens it again.
	HalfOpenProbes uint32
	// OnStateChange is told every transition (for a metric and a log line).
	OnStateChange func(name string, from, to State)
}

// Breaker is a two-step failure-rate circuit breaker: Allow before a call, then report.
type Breaker struct {
	cb      *gobreaker.TwoStepCircuitBreaker[struct{}]
	openFor time.Duration
}

var errFailed = errors.New("failed")

// NewBreaker returns a breaker named after the upstream it protects.
func NewBreaker(name string, s BreakerSettings) *Breaker {
	if s.MinRequests == 0 {
		s.MinRequests = 20
	}
	if s.FailureRatio <= 0 || s.FailureRatio > 1 {
		s.FailureRatio = 0.5
	}
	if s.Window <= 0 {
		s.Window = 10 * time.Second
	}
	if s.OpenFor <= 0 {
		s.OpenFor = 5 * time.Second
	}
	if s.HalfOpenProbes == 0 {
		s.HalfOpenProbes = 3
	}
	st := gobreaker.Settings{
		Name:         name,
		MaxRequests:  s.HalfOpenProbes,
		Interval:     s.Window,
		BucketPeriod: s.Window / 10, // a rolling window, not a cleared one
		Timeout:      s.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.Requests >= s.MinRequests && float64(c.TotalFailures) >= s.FailureRatio*float64(c.Requests)
		},
		OnStateChange: s.OnStateChange,
	}
	return &Breaker{cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](st), openFor: s.OpenFor}
}

// Allow asks to make one call. On success the caller must call done exactly once with
// whether the call succeeded; on ErrOpen it must not call the upstream.
func (b *Breaker) Allow() (done func(success bool), err error) {
	d, err := b.cb.Allow()
	if err != nil {
		return nil, ErrOpen
	}
	return func(ok bool) {
		if ok {
			d(nil)
		} else {
			d(errFailed)
		}
	}, nil
}

// State is the breaker's current state.
func (b *Breaker) State() State { return b.cb.State() }

// Name is the upstream's name.
func (b *Breaker) Name() string { return b.cb.Name() }

// OpenFor is how long an open breaker rejects calls (a Retry-After hint).
func (b *Breaker) OpenFor() time.Duration { return b.openFor }
