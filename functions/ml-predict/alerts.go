package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// alerts runs the accuracy alert's check (shared/ml/alert, the one ml-batch-worker runs
// after a job) after a request has scored earlier predictions, off the request path: poke
// returns at once, so the check can neither slow nor fail a prediction. At most one check
// runs at a time per instance, at most one starts per gap, and each is bounded by timeout;
// a poke while one runs is dropped, since the running check reads the same window. The
// check itself makes the platform publish at most once per period, and a failed publish
// releases the period for the next check.
type alerts struct {
	check   func(context.Context) error
	log     *slog.Logger
	timeout time.Duration
	gap     time.Duration
	running atomic.Bool
	last    atomic.Int64 // UnixNano of the latest start
	wg      sync.WaitGroup
}

// Bounds of the background check: a check reads one Redis list and, at most once an hour,
// publishes one event (the publisher's retries take ~3 s at most); checking more often than
// every few seconds per instance would only repeat the same answer.
const (
	alertTimeout = 15 * time.Second
	alertGap     = 5 * time.Second
)

// poke starts a check in the background unless one is running or one started within gap.
// A nil *alerts (no event sink configured) does nothing.
func (a *alerts) poke() {
	if a == nil {
		return
	}
	now := time.Now().UnixNano()
	if a.gap > 0 && now-a.last.Load() < int64(a.gap) {
		return
	}
	if !a.running.CompareAndSwap(false, true) {
		return
	}
	a.last.Store(now)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		defer a.running.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
		defer cancel()
		if err := a.check(ctx); err != nil {
			a.log.WarnContext(ctx, "accuracy alert check failed; the next scored prediction checks again", "err", err)
		}
	}()
}

// wait returns when no check is running, or when ctx ends.
func (a *alerts) wait(ctx context.Context) error {
	if a == nil {
		return nil
	}
	done := make(chan struct{})
	go func() { a.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
